"""`{% load ai_disclosure %}{% ai_disclosure page %}`: a public note of the page's AI-generated fields.

Renders nothing when no field of the page is still AI-generated; otherwise a short note naming each
field with its model and date (`pages/ai_disclosure.html`, overridable by a site's templates), and
the same data as JSON for machines (`<script type="application/json" id="ai-disclosure-data">`).
"""

from __future__ import annotations

from typing import Any

from django import template

from pages.disclosure import ai_disclosure as disclosure_of

register = template.Library()


@register.inclusion_tag("pages/ai_disclosure.html")
def ai_disclosure(page: Any) -> dict[str, Any]:
    data = disclosure_of(page)
    return {"disclosure": data, "fields": data["fields"]}
