"""What the JSON API writes into a page: "generate into a page field" (`POST /api/ai/generate/` with `page_id`).

Registered as the API's "page" write target when the app is ready (`pages.apps`), so `integrations`
never imports `pages`. The answer is trimmed to the field's limit and saved with its provenance
(nobody reviewed it: `accepted_by` is the caller) in one transaction.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction

from .models import META_DESCRIPTION_MAX, META_TITLE_MAX, Page
from .provenance import record_api_write
from .services.ai_service import trim_to_words

LIMITS = {"meta_title": META_TITLE_MAX, "meta_description": META_DESCRIPTION_MAX}


class PageFields:
    """The page fields the API may write."""

    fields = ("meta_title", "meta_description", "body")

    def find(self, site_id: int, object_id: int) -> Page | None:
        return Page.objects.filter(pk=object_id, site_id=site_id).first()

    def save(
        self,
        obj: Page,
        field: str,
        result: Any,
        cost: Decimal | None,
        user_id: int,
        parameters: dict[str, Any],
        prompts: tuple[str | None, str],
    ) -> None:
        limit = LIMITS.get(field)
        value = trim_to_words(result.content, limit) if limit else result.content
        with transaction.atomic():
            Page.objects.filter(pk=obj.pk).update(**{field: value})
            setattr(obj, field, value)
            record_api_write(obj, field, value, result, cost, user_id, parameters, prompts)
