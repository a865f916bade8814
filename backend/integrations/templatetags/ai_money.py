"""`{{ amount|money }}`: the one money format of every admin screen (integrations.ai.governance.money)."""

from __future__ import annotations

from django import template

from integrations.ai.governance.money import usd

register = template.Library()


@register.filter
def money(value: object, missing: str = "—") -> str:
    """`$5.00`, `$0.00428`; `missing` (default "—") for None or anything not a number."""
    return usd(value) or missing
