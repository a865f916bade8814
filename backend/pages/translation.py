"""Page translation with AI: propose, review side by side, accept into a linked page; glossary; staleness.

A page's translatable units are its title, body, meta title and description and every string of its
blocks (URLs excepted). One structured-output call (`AIService.generate_content(response_schema=...)`,
the site's own provider, policy, budget, ledger attributed to the page) translates the units asked for;
the site's glossary is in the prompt and checked in the answer (a miss gets one corrective retry, then
is shown to the reviewer). The streamed screen sends the same call (`call_for`) as a stream and validates
the finished text here (`from_stream`); it makes no corrective retry and shows the misses to the reviewer.
Nothing is saved until a person accepts: the translation page is created or updated, with a provenance
row per field and, per unit, the hash of the source text it came from.
When the source changes, the units whose hash differs are stale and re-translating sends only those.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from integrations.ai import AIService as CoreAIService
from integrations.ai.gateway.structured import problems
from integrations.ai.ledger import usage
from integrations.ai.providers.errors import InvalidRequest
from prompts.versions import BuiltinPrompt, register_builtin

from . import provenance
from .models import META_DESCRIPTION_MAX, META_TITLE_MAX, Block, GlossaryTerm, Page, PageTranslation, SiteLanguage

PAGE_FIELDS = ("title", "meta_title", "meta_description", "body")
LIMITS = {"title": 200, "meta_title": META_TITLE_MAX, "meta_description": META_DESCRIPTION_MAX}
SYSTEM_PROMPT = (
    "You translate website content. Answer with one JSON object with exactly the keys you are given, each "
    "value the translation of that key's text. Keep HTML tags, Markdown and placeholders unchanged; follow the "
    "glossary exactly."
)
PARAMETERS = {"max_tokens": 4000, "temperature": 0.2}


class TranslationError(InvalidRequest):
    """A translation request that cannot be made (no such language, the page is itself a translation...)."""

    code = "invalid_translation"


def unit_hash(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# -- units ---------------------------------------------------------------------------------------------
def _leaves(content: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    """(path, text) of every translatable string in a block's content; URLs stay as they are."""
    if isinstance(content, dict):
        return [
            leaf
            for key, value in content.items()
            if not str(key).endswith("url")
            for leaf in _leaves(value, (*path, key))
        ]
    if isinstance(content, list):
        return [leaf for index, value in enumerate(content) for leaf in _leaves(value, (*path, index))]
    return [(path, content)] if isinstance(content, str) and content.strip() else []


def block_key(block_id: int) -> str:
    return f"block:{block_id}"


def leaf_key(block_id: int, path: tuple) -> str:
    """A JSON-schema property name every vendor accepts (Anthropic: [a-zA-Z0-9_.-]{1,64})."""
    return ".".join([f"b{block_id}", *(str(p) for p in path)])[:64]


def source_units(page: Page) -> dict[str, Any]:
    """{unit key: source value} of `page`: its fields and each block's whole content (hashed for staleness)."""
    units: dict[str, Any] = {name: getattr(page, name) for name in PAGE_FIELDS}
    for block in page.blocks.all():
        units[block_key(block.pk)] = block.content
    return units


def texts_to_translate(page: Page, keys: list[str]) -> dict[str, str]:
    """{prompt key: text} for the units `keys` (a block contributes one entry per string leaf)."""
    texts: dict[str, str] = {}
    blocks = {block_key(b.pk): b for b in page.blocks.all()}
    for key in keys:
        if key in PAGE_FIELDS:
            if getattr(page, key).strip():
                texts[key] = getattr(page, key)
        elif key in blocks:
            for path, text in _leaves(blocks[key].content):
                texts[leaf_key(blocks[key].pk, path)] = text
    return texts


# -- glossary ------------------------------------------------------------------------------------------
def glossary_for(site_id: int, language: str) -> list[GlossaryTerm]:
    terms = GlossaryTerm.objects.filter(site_id=site_id, language__in=("", language)).order_by("term", "-language")
    chosen: dict[str, GlossaryTerm] = {}
    for term in terms:  # a language's own entry wins over the all-languages one
        if term.language or term.term.lower() not in chosen:
            chosen[term.term.lower()] = term
    return list(chosen.values())


def glossary_misses(sources: dict[str, str], answer: dict[str, str], terms: list[GlossaryTerm]) -> list[str]:
    """Why the answer breaks the glossary: a term in a source text whose required form is not in its translation."""
    misses = []
    for key, text in sources.items():
        for term in terms:
            if (
                re.search(rf"\b{re.escape(term.term)}\b", text, re.IGNORECASE)
                and term.required.lower() not in str(answer.get(key, "")).lower()
            ):
                misses.append(
                    f"{key}: “{term.term}” must be "
                    + (f"translated as “{term.translation}”" if term.translation else "kept as it is")
                )
    return misses


def prompt_for(
    texts: dict[str, str], source_language: SiteLanguage | None, target: SiteLanguage, terms: list[GlossaryTerm]
) -> str:
    source_name = f"{source_language.name} ({source_language.code})" if source_language else "the source language"
    lines = [f"Translate the values of the JSON object below from {source_name} into {target.name} ({target.code})."]
    if terms:
        lines += ["", "Glossary (apply exactly):"]
        lines += [f'- "{t.term}" -> ' + (f'"{t.translation}"' if t.translation else "keep as is") for t in terms]
    lines += ["", "Fields:", json.dumps(texts, ensure_ascii=False, indent=0)]
    return "\n".join(lines)


PROMPT = register_builtin(
    BuiltinPrompt(
        "pages.translate",
        SYSTEM_PROMPT,
        prompt_for(
            {"title": "{title}"},
            None,
            SiteLanguage(code="{code}", name="{language}"),
            [GlossaryTerm(term="{term}", translation="{translation}")],
        ),
    )
)


# -- languages and links -------------------------------------------------------------------------------
def default_language(site_id: int) -> SiteLanguage | None:
    return SiteLanguage.objects.filter(site_id=site_id, is_default=True).first()


def target_languages(page: Page) -> list[SiteLanguage]:
    """The languages `page` can be translated into: its site's, except the default one."""
    if PageTranslation.objects.filter(page=page).exists():
        return []
    return list(SiteLanguage.objects.filter(site_id=page.site_id, is_default=False))


def language_of(site_id: int, code: str) -> SiteLanguage:
    language = SiteLanguage.objects.filter(site_id=site_id, code=code, is_default=False).first()
    if language is None:
        raise TranslationError(
            f"“{code}” is not one of this site's translation languages: add it under Site languages first."
        )
    return language


def stale_units(link: PageTranslation) -> dict[str, str]:
    """{unit key: why} for the units of the source that changed, appeared or went since they were translated."""
    source = Page.objects.prefetch_related("blocks").get(pk=link.source_id)  # as it is now, not as cached
    now = {key: unit_hash(value) for key, value in source_units(source).items()}
    hashes = PageTranslation.objects.filter(pk=link.pk).values_list("source_hashes", flat=True).first() or {}
    reasons = {}
    for key, digest in now.items():
        if key not in hashes:
            reasons[key] = "new in the source"
        elif hashes[key] != digest:
            reasons[key] = "changed in the source"
    for key in hashes:
        if key not in now:
            reasons[key] = "removed from the source"
    return reasons


# -- proposals -----------------------------------------------------------------------------------------
@dataclass
class Proposal:
    """A translation waiting for review: what was asked, what came back, and what the call ran on."""

    source_id: int
    language: str
    units: list[str]  # the unit keys translated (fields, block:<id>)
    sources: dict[str, str]  # prompt key -> source text
    translated: dict[str, str]  # prompt key -> translation
    hashes: dict[str, str]  # unit key -> hash of the source it was made from
    misses: list[str] = field(default_factory=list)  # glossary terms the answer still breaks
    origin: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Proposal:
        return cls(**data)


@dataclass
class TranslationCall:
    """One translation call, ready to send: what is translated, the prompt and the schema the answer must
    match. The plain path (`propose`) and the streamed screen (`from_stream`) both start from it, so the
    prompt, the schema and the rules applied to the answer are the same on both."""

    source: Page
    code: str
    keys: list[str]  # the unit keys (fields, block:<id>)
    hashes: dict[str, str]
    texts: dict[str, str]  # prompt key -> source text; empty: nothing to send
    terms: list[GlossaryTerm]
    prompt: str
    schema: dict[str, Any]
    attribute_to: Page  # the page the call's cost belongs to: the translation, or the source the first time
    model: str | None = None

    def service(self) -> CoreAIService:
        return CoreAIService(site=self.source.site_id, service="pages.translate")

    def call_parameters(self) -> dict[str, Any]:
        """The call's keyword arguments besides the prompt (the structured call adds `response_schema`)."""
        return {"model": self.model, "system_prompt": SYSTEM_PROMPT, **PARAMETERS}

    def misses(self, answer: dict[str, str]) -> list[str]:
        return glossary_misses(self.texts, answer, self.terms)

    def proposal(self, answer: dict[str, str], results: list[Any]) -> Proposal:
        """The proposal from the model's (schema-valid) answer: glossary misses named, the limited fields
        trimmed to their limits, the origin of the call(s). Nothing is saved."""
        if not self.texts:
            return Proposal(self.source.pk, self.code, self.keys, {}, {}, self.hashes)
        answer = {key: str(value) for key, value in answer.items()}
        misses = self.misses(answer)
        from .services.ai_service import trim_to_words

        for key, limit in LIMITS.items():
            if key in answer:
                answer[key] = trim_to_words(answer[key], limit)
        origin = provenance.origin_of(
            results,
            self.source,
            PROMPT,
            {**PARAMETERS, "model": self.model or "", "source_page": self.source.pk, "language": self.code},
        )
        origin = dataclasses.replace(origin, source_hash="")  # staleness of translations: `stale_units`
        return Proposal(self.source.pk, self.code, self.keys, self.texts, answer, self.hashes, misses, origin.as_dict())


def call_for(source: Page, code: str, only_stale: bool = False, model: str | None = None) -> TranslationCall:
    """The call translating `source` into language `code` (all its units, or with `only_stale` those changed
    since the last translation). Raises TranslationError for a page that is itself a translation or a
    language the site does not translate into."""
    if PageTranslation.objects.filter(page=source).exists():
        raise TranslationError("This page is itself a translation: translate its source page instead.")
    target = language_of(source.site_id, code)
    link = PageTranslation.objects.filter(source=source, language=code).select_related("page").first()
    units = source_units(source)
    keys = list(units)
    if only_stale and link is not None:
        keys = list(stale_units(link))  # a unit removed from the source is removed on accept
    hashes = {key: unit_hash(units[key]) for key in keys if key in units}
    texts = texts_to_translate(source, keys)
    terms = glossary_for(source.site_id, code) if texts else []
    schema = {
        "type": "object",
        "properties": {key: {"type": "string"} for key in texts},
        "required": list(texts),
        "additionalProperties": False,
    }
    prompt = prompt_for(texts, default_language(source.site_id), target, terms) if texts else ""
    attribute_to = link.page if link is not None else source  # cost per page
    return TranslationCall(source, code, keys, hashes, texts, terms, prompt, schema, attribute_to, model)


def propose(source: Page, code: str, only_stale: bool = False, model: str | None = None) -> Proposal:
    """Translate `source` into language `code` (see `call_for`); nothing is saved. One structured call,
    plus one corrective retry for glossary misses."""
    call = call_for(source, code, only_stale, model)
    if not call.texts:
        return call.proposal({}, [])
    ai = call.service()
    params = {**call.call_parameters(), "response_schema": call.schema}
    results = []
    with usage.attributed_to(call.attribute_to):
        result = ai.generate_content(call.prompt, **params)
        results.append(result)
        answer = {key: str(value) for key, value in (result.parsed or {}).items()}
        misses = call.misses(answer)
        if misses:  # one corrective retry naming each miss
            retry = (
                f"{call.prompt}\n\nYour previous answer broke the glossary:\n- "
                + "\n- ".join(misses)
                + "\nAnswer again with every field, following the glossary."
            )
            result = ai.generate_content(retry, **params)
            results.append(result)
            answer = {key: str(value) for key, value in (result.parsed or {}).items()}
    return call.proposal(answer, results)


def from_stream(call: TranslationCall, text: str, result: Any) -> tuple[Proposal | None, list[str]]:
    """The proposal from a streamed answer's finished `text`, validated here against the call's schema (a
    stream cannot carry validated JSON): (proposal, []) or (None, the ways it fails). No corrective retry
    for glossary misses: the proposal names them and the review screen shows them to the reviewer."""
    data, errors = problems(text, call.schema)
    if errors:
        return None, errors
    return call.proposal(data, [result]), []


# -- accepting ------------------------------------------------------------------------------------------
def _unique_slug(source: Page, code: str) -> str:
    base = slugify(f"{source.slug}-{code}")[:190] or f"page-{source.pk}-{code}"
    slug, n = base, 2
    while Page.objects.filter(site_id=source.site_id, slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def _set_leaf(content: Any, path: tuple, value: str) -> None:
    for step in path[:-1]:
        content = content[step]
    content[path[-1]] = value


def accept(proposal: Proposal, accepted: dict[str, str], user: Any = None) -> Page:
    """Save the reviewed translation: `accepted` is {prompt key: text} of the keys the person kept (edited or
    not). Creates the linked page the first time; records provenance per field and each unit's source hash.
    A unit is marked translated only when all of its keys were accepted."""
    problems = [
        f"{Page._meta.get_field(k).verbose_name.capitalize()} is {len(accepted[k])} characters; at most {limit}."
        for k, limit in LIMITS.items()
        if k in accepted and len(accepted[k]) > limit
    ]
    if "title" in accepted and not accepted["title"].strip():
        problems.append("Title is empty: write one or untick it.")
    if problems:
        raise ValidationError(problems)
    source = Page.objects.select_related("site").get(pk=proposal.source_id)
    origin = provenance.Origin.from_dict(proposal.origin)
    with transaction.atomic():
        link = PageTranslation.objects.select_for_update().filter(source=source, language=proposal.language).first()
        if link is None:
            page = Page.objects.create(
                site_id=source.site_id,
                title=accepted.get("title") or source.title,
                slug=_unique_slug(source, proposal.language),
                status="draft",
            )
            link = PageTranslation.objects.create(source=source, page=page, language=proposal.language)
        page = link.page
        done: list[str] = []
        page_rows: list[tuple[str, str, str | None]] = []  # (field, accepted, proposed)
        block_rows: list[tuple[int, Block, Any]] = []  # (source block id, translated block, proposed content)
        for unit in proposal.units:
            if unit in PAGE_FIELDS:
                if unit in accepted or not getattr(source, unit).strip():
                    setattr(page, unit, accepted.get(unit, ""))
                    if unit in accepted:
                        page_rows.append((unit, accepted[unit], proposal.translated.get(unit)))
                    done.append(unit)
                continue
            source_id = int(unit.split(":", 1)[1])
            source_block = Block.objects.filter(pk=source_id, page=source).first()
            target_id = link.block_map.get(str(source_id))
            if source_block is None:  # removed from the source: removed here too
                if target_id is not None:
                    Block.objects.filter(pk=target_id, page=page).delete()
                    link.block_map.pop(str(source_id), None)
                done.append(unit)
                continue
            leaves = [leaf_key(source_id, path) for path, _ in _leaves(source_block.content)]
            if any(key not in accepted for key in leaves):
                continue  # a block is translated whole or not at all
            content = copy.deepcopy(source_block.content)
            for (path, _), key in zip(_leaves(source_block.content), leaves, strict=True):
                _set_leaf(content, path, accepted[key])
            target = Block.objects.filter(pk=target_id, page=page).first() if target_id is not None else None
            if target is None:
                target = Block(page=page, type=source_block.type)
            target.content, target.order = content, source_block.order
            target.full_clean()
            proposed = copy.deepcopy(source_block.content)
            for (path, _), key in zip(_leaves(source_block.content), leaves, strict=True):
                _set_leaf(proposed, path, proposal.translated.get(key, ""))
            block_rows.append((source_id, target, proposed))
            done.append(unit)
        if origin is not None:  # the rows first, so the saves below see the AI's text, not an edit
            for name, value, proposed in page_rows:
                provenance._row(page, origin, user, field=name, accepted_text=value, edited_at_review=value != proposed)
        page.save()
        for source_id, block, proposed in block_rows:
            if block.pk is None:
                block.save()
            if origin is not None:
                provenance.record_block(block, origin, proposed=proposed, user=user)
            block.save()
            link.block_map[str(source_id)] = block.pk
        for key in done:
            if key in proposal.hashes and key in source_units(source):
                link.source_hashes[key] = proposal.hashes[key]
            else:
                link.source_hashes.pop(key, None)
        link.save()
    return page
