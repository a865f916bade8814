"""SEO meta for pages: a title of at most 60 characters and a description of at most 160.

One request returns both fields as JSON: `META_SCHEMA` goes to the gateway as `response_schema`
(OpenAI/OpenRouter `response_format: json_schema`, Anthropic a forced tool; the gateway validates
the answer and gives the model one corrective retry naming the errors). The length limits are not
in the schema on purpose: models overshoot them, and a field is trimmed at a word boundary (never
mid-word, the quotes models like to add stripped) rather than refused and paid for twice. A field
left empty by trimming, or an answer still invalid after the retry, is a `MetaGenerationFailed`;
either way nothing is saved, as with a vendor error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from integrations.ai import AIService as CoreAIService
from integrations.ai.ledger import usage
from integrations.ai.providers.errors import AIProviderError, InvalidOutput, InvalidRequest
from integrations.ai.providers.types import GenerationResult
from prompts.versions import BuiltinPrompt, register_builtin

from .. import provenance
from ..models import META_DESCRIPTION_MAX, META_TITLE_MAX, Page
from .errors import ServiceOutputError
from .reasoning import reasoning_budget

SYSTEM_PROMPT = (
    "You write SEO metadata for web pages. Answer with the requested text only: no quotes, no labels, no explanations."
)
BODY_EXCERPT = 1500
QUOTES = "\"'\u2018\u2019\u201c\u201d"


@dataclass(frozen=True)
class MetaProposal:
    """Generated meta not yet saved, with what the call ran on (shown next to the proposal)."""

    meta_title: str
    meta_description: str
    model: str
    provider: str
    total_tokens: int
    origin: provenance.Origin | None = None


def trim_to_words(text: str, limit: int) -> str:
    """At most `limit` characters, cut at a word boundary; a single over-long word is dropped whole."""
    text = re.sub(r"\s+", " ", text).strip().strip(QUOTES).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    if not (text[limit].isspace() or text[limit] in ",;:.!?"):  # the cut splits a word: drop that word
        cut = cut.rsplit(" ", 1)[0] if " " in cut else ""
    return cut.rstrip(" ,;:-\u2013\u2014")


# The limits are told, not enforced (see the module docstring): a too-long field is trimmed, not retried.
META_SCHEMA = {
    "type": "object",
    "properties": {
        "meta_title": {"type": "string", "description": f"At most {META_TITLE_MAX} characters."},
        "meta_description": {"type": "string", "description": f"At most {META_DESCRIPTION_MAX} characters."},
    },
    "required": ["meta_title", "meta_description"],
    "additionalProperties": False,
}
META_SYSTEM_PROMPT = (
    "You write SEO metadata for web pages. Answer with one JSON object only: "
    '{"meta_title": "...", "meta_description": "..."}; no markdown, no commentary.'
)


def meta_prompt(title: str, body: str) -> str:
    return (
        f"Write the meta title (at most {META_TITLE_MAX} characters) and meta description (at most "
        f"{META_DESCRIPTION_MAX} characters) for this page.\n\nPage title: {title}\n\n"
        f"Page content:\n{body[:BODY_EXCERPT]}"
    )


META_PROMPT = register_builtin(BuiltinPrompt("pages.meta", META_SYSTEM_PROMPT, meta_prompt("{title}", "{body}")))
META_PARAMETERS: dict[str, Any] = {"max_tokens": 300, "temperature": 0.4}


class MetaGenerationFailed(ServiceOutputError):
    """The model's meta could not be used (see `ServiceOutputError`); nothing was saved."""


def fitted_meta(data: dict[str, Any], provider: str | None = None) -> dict[str, str]:
    """Both fields of a schema-valid answer trimmed to their limits; MetaGenerationFailed if one ends up empty."""
    meta = {
        "meta_title": trim_to_words(data["meta_title"], META_TITLE_MAX),
        "meta_description": trim_to_words(data["meta_description"], META_DESCRIPTION_MAX),
    }
    empty = [name for name, value in meta.items() if not value]
    if empty:
        raise MetaGenerationFailed(
            f"The model's meta had no {' or '.join(empty)}; nothing was saved.",
            errors=[f"{name}: empty" for name in empty],
            provider=provider,
        )
    return meta


def batch_meta(result: GenerationResult | None) -> dict[str, str]:
    """The meta of one batch item's answer: the gateway validated it against `META_SCHEMA` (`generate_batch`
    with `response_schema`: an answer that does not match is that item's `InvalidOutput`, with no
    corrective retry), so only the trimming to the limits is left."""
    if result is None or not isinstance(result.parsed, dict):
        raise MetaGenerationFailed("The batch item came back without a valid answer; nothing was saved.")
    return fitted_meta(result.parsed, result.provider)


def title_prompt(title: str, body: str) -> str:
    return (
        f"Write an SEO meta title of at most {META_TITLE_MAX} characters for this page.\n\n"
        f"Page title: {title}\n\nPage content:\n{body[:BODY_EXCERPT]}"
    )


def description_prompt(title: str, body: str) -> str:
    return (
        f"Write an SEO meta description of at most {META_DESCRIPTION_MAX} characters for this page.\n\n"
        f"Page title: {title}\n\nPage content:\n{body[:BODY_EXCERPT]}"
    )


class AIService:
    """Meta title and description generation for the pages of one site."""

    def __init__(self, site: Any = None) -> None:
        self.site = site

    def _ai(self, site: Any = None) -> CoreAIService:
        return CoreAIService(site=site if site is not None else self.site, service="pages.meta")

    @staticmethod
    def _generate_meta(ai: CoreAIService, page: Page, model: str | None) -> tuple[dict[str, str], GenerationResult]:
        """Both fields for `page` through the gateway's structured output; MetaGenerationFailed when unusable."""
        try:
            result = ai.generate_content(
                meta_prompt(page.title, page.body),
                model=model,
                **{**META_PARAMETERS, **reasoning_budget(ai, model, META_PARAMETERS["max_tokens"])},
                system_prompt=META_SYSTEM_PROMPT,
                response_schema=META_SCHEMA,
            )
        except InvalidOutput as exc:
            raise MetaGenerationFailed(
                f"The model's meta was invalid twice: {'; '.join(exc.errors)}; nothing was saved.",
                errors=exc.errors,
                provider=exc.provider,
            ) from exc
        return fitted_meta(result.parsed, result.provider), result

    def generate_meta_title(self, title: str, content: str = "", model: str | None = None, site: Any = None) -> str:
        ai = self._ai(site)
        result = ai.generate_content(
            title_prompt(title, content),
            model=model,
            temperature=0.4,
            system_prompt=SYSTEM_PROMPT,
            **reasoning_budget(ai, model, 60),
        )
        return self._checked(trim_to_words(result.content, META_TITLE_MAX), "meta title")

    def generate_meta_description(
        self, title: str, content: str = "", model: str | None = None, site: Any = None
    ) -> str:
        ai = self._ai(site)
        result = ai.generate_content(
            description_prompt(title, content),
            model=model,
            temperature=0.4,
            system_prompt=SYSTEM_PROMPT,
            **reasoning_budget(ai, model, 120),
        )
        return self._checked(trim_to_words(result.content, META_DESCRIPTION_MAX), "meta description")

    @staticmethod
    def _checked(text: str, what: str) -> str:
        if not text:
            raise InvalidRequest(f"The model returned an empty {what}; try again or another model.")
        return text

    def generate_meta_for_page(self, page: Page, model: str | None = None, save: bool = True) -> dict[str, str]:
        """Generate both fields in one request, then save them together (or not at all)."""
        ai = self._ai(page.site_id)
        with usage.attributed_to(page):
            meta, result = self._generate_meta(ai, page, model)
        if save:
            origin = provenance.origin_of(
                result.steps_or_self(), page, META_PROMPT, {**META_PARAMETERS, "model": model or ""}
            )
            with transaction.atomic():
                Page.objects.filter(pk=page.pk).update(**meta)
                provenance.record_meta(page, origin, proposed=meta, accepted=meta)
            for field, value in meta.items():
                setattr(page, field, value)
        return meta

    def propose_meta(self, page: Page, model: str | None = None) -> MetaProposal:
        """Meta for `page` to review before saving; its ledger rows carry the page (cost per page)."""
        with usage.attributed_to(page):
            return self._propose_meta(page, model)

    def _propose_meta(self, page: Page, model: str | None = None) -> MetaProposal:
        """Meta for `page` to show a person before anything is saved (the page is not touched).

        The origin counts every call it took: a corrective retry's tokens and cost too.
        """
        ai = self._ai(page.site_id)
        meta, result = self._generate_meta(ai, page, model)
        origin = provenance.origin_of(
            result.steps_or_self(), page, META_PROMPT, {**META_PARAMETERS, "model": model or ""}
        )
        return MetaProposal(
            meta_title=meta["meta_title"],
            meta_description=meta["meta_description"],
            model=result.model,
            provider=result.provider,
            total_tokens=result.total_tokens,
            origin=origin,
        )

    @staticmethod
    def apply_meta(page: Page, meta_title: str, meta_description: str) -> None:
        """Save accepted (possibly edited) meta: both fields checked against the limits, then written together."""
        too_long = [
            f"{label} is {len(value)} characters; at most {limit}"
            for label, value, limit in (
                ("meta title", meta_title, META_TITLE_MAX),
                ("meta description", meta_description, META_DESCRIPTION_MAX),
            )
            if len(value) > limit
        ]
        if too_long:
            raise InvalidRequest("; ".join(too_long) + ". Nothing was saved.")
        with transaction.atomic():
            Page.objects.filter(pk=page.pk).update(meta_title=meta_title, meta_description=meta_description)
        page.meta_title, page.meta_description = meta_title, meta_description

    def generate_meta_batch(
        self, pages: list[Page], model: str | None = None, concurrency: int = 8, on_page: Any = None
    ) -> dict[int, str | None]:
        """Meta for many pages at once (one site's pages); returns {page id: error message or None}.

        Each page is saved only when both its fields came back; a failing page does not stop the rest.
        """
        outcome: dict[int, str | None] = {}
        by_site: dict[int, list[Page]] = {}
        for page in pages:
            by_site.setdefault(page.site_id, []).append(page)
        for site_id, site_pages in by_site.items():
            ai = self._ai(site_id)
            with usage.attributed_each(site_pages):  # each item's ledger rows carry its own page (cost per page)
                items = ai.generate_batch(
                    [meta_prompt(page.title, page.body) for page in site_pages],
                    concurrency=concurrency,
                    model=model,
                    **{**META_PARAMETERS, **reasoning_budget(ai, model, META_PARAMETERS["max_tokens"])},
                    system_prompt=META_SYSTEM_PROMPT,
                    response_schema=META_SCHEMA,
                )
            for page, item in zip(site_pages, items, strict=True):
                error: AIProviderError | None = item.error
                if error is None:
                    try:
                        meta = batch_meta(item.result)
                    except AIProviderError as exc:
                        error = exc
                    else:
                        origin = provenance.origin_of(
                            [item.result], page, META_PROMPT, {**META_PARAMETERS, "model": model or ""}
                        )
                        with transaction.atomic():
                            Page.objects.filter(pk=page.pk).update(**meta)
                            provenance.record_meta(page, origin, proposed=meta, accepted=meta)
                        for field, value in meta.items():
                            setattr(page, field, value)
                outcome[page.pk] = None if error is None else f"{error.code}: {error.message}"
                if on_page is not None:
                    on_page(page, outcome[page.pk])
        return outcome
