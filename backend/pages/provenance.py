"""Provenance of AI-written page content: what produced each field or block, and whether it is still the AI's.

A proposal carries an `Origin` (JSON-able, kept server-side with the proposal until a person accepts
it); accepting writes a `ContentProvenance` row per field. `clear_edited` runs on every page and
block save and compares the stored text with what was accepted, so the "AI-generated" marker goes
away the moment a person edits the text, whichever screen they used.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from django.utils import timezone

from prompts.versions import BuiltinPrompt, content_hash

from .models import Block, ContentProvenance, Page

META_FIELDS = ("meta_title", "meta_description")


@dataclass(frozen=True)
class Origin:
    """What one generation ran on and cost; plain values so it can wait in the session."""

    provider: str
    model: str
    prompt_name: str
    prompt_version: str
    parameters: dict[str, Any] = field(default_factory=dict)
    request_id: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: str | None = None
    latency_ms: int = 0
    source_hash: str = ""
    generated_at: str = ""
    template_version_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Origin | None:
        try:
            return cls(**data) if isinstance(data, dict) else None
        except TypeError:  # kept by an older version of this module
            return None


def source_hash(page: Page) -> str:
    """Hash of what the page's AI content is generated from (title and body)."""
    return content_hash(page.title, page.body)


def origin_of(results: list[Any], page: Page, prompt: BuiltinPrompt, parameters: dict[str, Any]) -> Origin:
    """The origin of a proposal from its call(s): a corrective retry's tokens and cost count too."""
    from prompts.run_previews import call_cost

    last = results[-1]
    costs = [call_cost(page.site_id, r) for r in results]
    known = [c for c in costs if c is not None]
    return Origin(
        provider=last.provider,
        model=last.model,
        prompt_name=prompt.name,
        prompt_version=prompt.version,
        parameters=parameters,
        request_id=(last.request_id or "")[:200],
        prompt_tokens=sum(r.prompt_tokens for r in results),
        completion_tokens=sum(r.completion_tokens for r in results),
        cost=str(sum(known, Decimal(0))) if known else None,
        latency_ms=int(sum(r.latency_ms for r in results)),
        source_hash=source_hash(page),
        generated_at=timezone.now().isoformat(),
    )


def _row(page: Page, origin: Origin, user: Any, **fields: Any) -> ContentProvenance:
    return ContentProvenance.objects.create(
        page=page,
        provider=origin.provider,
        model=origin.model,
        prompt_name=origin.prompt_name,
        prompt_version=origin.prompt_version,
        template_version_id=origin.template_version_id,
        parameters=origin.parameters,
        request_id=origin.request_id,
        prompt_tokens=origin.prompt_tokens,
        completion_tokens=origin.completion_tokens,
        cost=Decimal(origin.cost) if origin.cost is not None else None,
        latency_ms=origin.latency_ms,
        source_hash=origin.source_hash,
        generated_at=timezone.datetime.fromisoformat(origin.generated_at) if origin.generated_at else timezone.now(),
        accepted_by=user if getattr(user, "is_authenticated", False) else None,
        **fields,
    )


def record_meta(
    page: Page, origin: Origin, proposed: dict[str, str], accepted: dict[str, str], user: Any = None
) -> list[ContentProvenance]:
    """One row per meta field saved from `origin`'s proposal (`proposed` is what the model wrote)."""
    return [
        _row(
            page,
            origin,
            user,
            field=name,
            accepted_text=accepted[name],
            edited_at_review=accepted[name] != proposed.get(name, accepted[name]),
        )
        for name in META_FIELDS
        if name in accepted
    ]


API_PROMPT = "api.generate"  # the prompt name of text written into a page through POST /api/ai/generate/


def record_api_write(
    page: Page,
    field_name: str,
    value: str,
    result: Any,
    cost: Decimal | None,
    user_id: int,
    parameters: dict[str, Any],
    prompts: tuple[str | None, str],
) -> ContentProvenance:
    """The provenance of a field the JSON API wrote: nobody reviewed it, so `accepted_by` is the caller
    and the prompt is the caller's own (its version: a hash of `prompts`, the system prompt and the prompt)."""
    from django.contrib.auth import get_user_model

    origin = Origin(
        provider=result.provider,
        model=result.model,
        prompt_name=API_PROMPT,
        prompt_version=content_hash(*prompts),
        parameters=parameters,
        request_id=(result.request_id or "")[:200],
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        cost=str(cost) if cost is not None else None,
        latency_ms=int(result.latency_ms),
        source_hash=source_hash(page),
        generated_at=timezone.now().isoformat(),
    )
    user = get_user_model().objects.filter(pk=user_id).first()
    return _row(page, origin, user, field=field_name, accepted_text=value, edited_at_review=False)


def block_text(content: Any) -> str:
    return json.dumps(content, sort_keys=True, ensure_ascii=False)


def record_block(block: Block, origin: Origin, proposed: Any, user: Any = None) -> ContentProvenance:
    return _row(
        block.page,
        origin,
        user,
        block=block,
        field="block",
        accepted_text=block_text(block.content),
        edited_at_review=block_text(proposed) != block_text(block.content),
    )


def current(page: Page) -> dict[Any, ContentProvenance]:
    """The newest provenance row per meta field name and per block id."""
    latest: dict[Any, ContentProvenance] = {}
    for row in page.provenance.select_related("accepted_by", "template_version", "block").order_by(
        "-accepted_at", "-id"
    ):
        latest.setdefault(row.block_id if row.field == "block" else row.field, row)
    return latest


def clear_edited(page: Page, block: Block | None = None) -> int:
    """Mark current rows whose stored text is no longer what was accepted as edited; returns how many.

    With `block`, only that block's row is compared; without, the page's meta fields.
    """
    if page.pk is None:
        return 0
    changed = []
    for key, row in current(page).items():
        if row.edited_at is not None:
            continue
        if block is not None:
            if key != block.pk:
                continue
            now_text = block_text(block.content)
        elif row.field in (*META_FIELDS, "body", "title"):
            now_text = getattr(page, row.field)
        else:
            continue
        if now_text != row.accepted_text:
            changed.append(row.pk)
    return ContentProvenance.objects.filter(pk__in=changed).update(edited_at=timezone.now()) if changed else 0


def page_spend(page: Page) -> Decimal | None:
    """What the accepted AI content of this page cost, each request counted once (None: not known)."""
    seen: dict[str, Decimal] = {}
    unknown = True
    for row in page.provenance.all():
        if row.cost is not None:
            unknown = False
            seen[row.request_id or f"row-{row.pk}"] = row.cost
    return None if unknown else sum(seen.values(), Decimal(0))


def page_saved(sender: Any, instance: Page, raw: bool = False, **kwargs: Any) -> None:
    """post_save of a Page: a meta field a person changed is no longer the AI's text (not for fixtures)."""
    if not raw:
        clear_edited(instance)


def block_saved(sender: Any, instance: Block, raw: bool = False, **kwargs: Any) -> None:
    """post_save of a Block: a block a person changed is no longer the AI's text (not for fixtures)."""
    if not raw:
        clear_edited(instance.page, block=instance)
