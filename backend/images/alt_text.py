"""Alt text proposals: the image itself (an image part) and the page it is used on, through the site's gateway.

One call per image, as the image's site (`AIService(site=...)`: its provider and keys, policy,
budget and ledger), structured output `{"alt_text": ...}`, the ledger rows attributed to the image.
A proposal waits on the image (`Image.alt_proposal`) with its origin until a person accepts it;
accepting writes the alt text and an `AltTextProvenance` row. Nothing is saved to `alt_text` by the
model alone.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from integrations.ai import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers.errors import AIProviderError, InvalidRequest
from pages.blocks import image_ids
from pages.models import Block, Page
from pages.provenance import Origin
from prompts.run_previews import call_cost
from prompts.versions import BuiltinPrompt, register_builtin

from .models import ALT_TEXT_MAX, AltTextProvenance, Image

SERVICE = "images.alt_text"
MAX_TOKENS = 200
CONTEXT_CHARS = 600
IMAGE_BLOCK_TYPES = ("hero", "features")

ALT_PROMPT = register_builtin(
    BuiltinPrompt(
        name=SERVICE,
        system_prompt=(
            "You write alt text for images on web pages, for people using screen readers. Describe what the image "
            "shows and why it matters on this page, in one or two plain sentences. Do not start with 'Image of' or "
            "'Picture of'; no quotes, no file names."
        ),
        template="Write alt text (at most {limit} characters) for the attached image.\n{context}",
    )
)
SCHEMA = {
    "type": "object",
    "properties": {"alt_text": {"type": "string", "maxLength": ALT_TEXT_MAX}},
    "required": ["alt_text"],
    "additionalProperties": False,
}


def pages_using(image: Image) -> list[Page]:
    """The pages of the image's site whose hero or features blocks show it."""
    key = str(image.pk)
    found: dict[int, Page] = {}
    blocks = Block.objects.filter(page__site_id=image.site_id, type__in=IMAGE_BLOCK_TYPES).select_related("page")
    for block in blocks.order_by("page_id", "order", "id"):
        if key in image_ids(block.type, block.content):
            found.setdefault(block.page_id, block.page)
    return list(found.values())


def context_text(image: Image, page: Page | None) -> str:
    lines = [f"Image title in the library: {image.title}"]
    if page is not None:
        lines.append(f"Page title: {page.title}")
        if page.body.strip():
            lines.append(f"Page content:\n{page.body.strip()[:CONTEXT_CHARS]}")
    else:
        lines.append("The image is not used on a page yet.")
    return "\n".join(lines)


def image_part(image: Image) -> dict[str, Any]:
    """The neutral image part (`providers/images.py`) with the file's bytes, read through storage."""
    with image.file.open("rb") as handle:
        data = handle.read()
    return {"type": "image", "data": data, "media_type": image.media_type}


def messages_for(image: Image, page: Page | None, with_image: bool = True) -> list[dict[str, Any]]:
    text = ALT_PROMPT.template.format(limit=ALT_TEXT_MAX, context=context_text(image, page))
    content: Any = [{"type": "text", "text": text}, image_part(image)] if with_image else text
    return [{"role": "user", "content": content}]


def clean_alt(text: Any) -> str:
    """The model's alt text, one line, within the limit (cut at a word)."""
    text = " ".join(str(text or "").split()).strip("\"'\u201c\u201d")
    if len(text) > ALT_TEXT_MAX:
        text = text[:ALT_TEXT_MAX].rsplit(" ", 1)[0]
    return text


def propose(image: Image, model: str | None = None) -> tuple[str, Origin]:
    """Ask the site's model for alt text; keep it on the image as a proposal. Typed errors pass through."""
    page = next(iter(pages_using(image)), None)
    service = AIService(site=image.site_id, service=SERVICE)
    with usage.attributed_to(image, f"Image: {image.title}"):
        result = service.complete(
            messages_for(image, page),
            model=model,
            max_tokens=MAX_TOKENS,
            temperature=0.2,
            system_prompt=ALT_PROMPT.system_prompt,
            response_schema=SCHEMA,
        )
    text = clean_alt((result.parsed or {}).get("alt_text"))
    if not text:
        raise InvalidRequest("The model returned empty alt text; generate again or write it by hand.")
    cost = call_cost(image.site_id, result)
    origin = Origin(
        provider=result.provider,
        model=result.model,
        prompt_name=ALT_PROMPT.name,
        prompt_version=ALT_PROMPT.version,
        parameters={"model": model or "", "context_page_id": page.pk if page else None},
        request_id=(result.request_id or "")[:200],
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        cost=str(cost) if cost is not None else None,
        latency_ms=int(result.latency_ms),
        generated_at=timezone.now().isoformat(),
    )
    Image.objects.filter(pk=image.pk).update(alt_proposal=text, alt_proposal_origin=origin.as_dict())
    image.alt_proposal, image.alt_proposal_origin = text, origin.as_dict()
    return text, origin


def propose_quietly(image: Image, model: str | None = None) -> str | None:
    """`propose` for a batch: the problem as "code: message", or None when a proposal was stored."""
    try:
        propose(image, model=model)
    except AIProviderError as exc:
        return f"{exc.code}: {exc.message}"
    return None


def accept(image: Image, text: str, user: Any = None) -> AltTextProvenance:
    """Save the (possibly edited) proposal as the alt text, with its provenance; clears the proposal."""
    origin = Origin.from_dict(image.alt_proposal_origin)
    if origin is None or not image.alt_proposal:
        raise LookupError("This image has no alt text proposal to accept: generate one first.")
    text = " ".join(text.split())
    if not text:
        raise ValueError("The alt text is empty: write it or generate again.")
    if len(text) > ALT_TEXT_MAX:
        raise ValueError(f"The alt text is {len(text)} characters; at most {ALT_TEXT_MAX}.")
    page_id = origin.parameters.get("context_page_id")
    with transaction.atomic():
        row = AltTextProvenance.objects.create(
            image=image,
            context_page=Page.objects.filter(pk=page_id, site_id=image.site_id).first(),
            provider=origin.provider,
            model=origin.model,
            prompt_name=origin.prompt_name,
            prompt_version=origin.prompt_version,
            request_id=origin.request_id,
            prompt_tokens=origin.prompt_tokens,
            completion_tokens=origin.completion_tokens,
            cost=Decimal(origin.cost) if origin.cost is not None else None,
            latency_ms=origin.latency_ms,
            generated_at=timezone.datetime.fromisoformat(origin.generated_at)
            if origin.generated_at
            else timezone.now(),
            proposed_text=image.alt_proposal,
            accepted_text=text,
            edited_at_review=text != image.alt_proposal,
            accepted_by=user if getattr(user, "is_authenticated", False) else None,
        )
        image.alt_text, image.alt_text_ai = text, True
        image.alt_proposal, image.alt_proposal_origin = "", None
        image.save(update_fields=["alt_text", "alt_text_ai", "alt_proposal", "alt_proposal_origin", "updated_at"])
    return row


def discard(image: Image) -> None:
    Image.objects.filter(pk=image.pk).update(alt_proposal="", alt_proposal_origin=None)
    image.alt_proposal, image.alt_proposal_origin = "", None
