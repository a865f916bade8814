"""Public AI disclosure of a page, from its provenance: which fields are AI-generated, by which model, when.

A field is disclosed while its current provenance row says it is still the AI's text (`edited_at` is
empty): a person's later edit, on any screen, clears it (`provenance.clear_edited`), so the
disclosure follows the content. Text a person changed while reviewing the proposal is still disclosed,
marked `edited_at_review`. The same data, `ai_disclosure(page)` here (models do not import it:
provenance sits above them), serves the `{% ai_disclosure page %}` template tag and the public JSON
endpoint (a site can mark AI content, EU AI Act Art. 50).
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from . import provenance
from .blocks import BLOCK_LABELS
from .models import ContentProvenance, Page

LABELS = dict(ContentProvenance.FIELD_CHOICES)


def _entry(row: ContentProvenance) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "field": row.field,
        "label": LABELS.get(row.field, row.field),
        "provider": row.provider,
        "model": row.model,
        "generated_at": row.generated_at.isoformat(),
        "edited_at_review": row.edited_at_review,
    }
    if row.field == "block" and row.block is not None:
        entry |= {
            "block": row.block_id,
            "block_type": row.block.type,
            "label": f"{BLOCK_LABELS.get(row.block.type, row.block.type)} block",
        }
    return entry


def ai_disclosure(page: Page) -> dict[str, Any]:
    """`{"page", "ai_generated", "fields": [...]}`: the fields whose current text is still the AI's, in
    page order (meta, title, body, then blocks by position)."""
    current = [row for row in provenance.current(page).values() if row.edited_at is None]
    order = {name: i for i, (name, _) in enumerate(ContentProvenance.FIELD_CHOICES)}
    current.sort(key=lambda r: (order.get(r.field, 99), r.block.order if r.block is not None else 0, r.block_id or 0))
    fields = [_entry(row) for row in current]
    return {"page": page.pk, "ai_generated": bool(fields), "fields": fields}


@require_GET
def page_disclosure(request: HttpRequest, slug: str) -> JsonResponse:
    """`GET /api/pages/<slug>/ai-disclosure/`: a published page of the request's site (by its host)."""
    site = getattr(request, "site", None)
    if site is None:
        raise Http404("No site is configured for this host.")
    page = get_object_or_404(Page, site=site, slug=slug, status="published")
    return JsonResponse(ai_disclosure(page))
