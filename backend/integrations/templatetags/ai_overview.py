"""`{% site_overview as rows %}`: the admin index's per-site overview (see integrations.admin.overview)."""

from __future__ import annotations

from typing import Any

from django import template

from integrations.admin.overview import site_overview as build

register = template.Library()


@register.simple_tag(takes_context=True)
def site_overview(context: Any) -> list[dict[str, Any]]:
    return build(context["request"].user)
