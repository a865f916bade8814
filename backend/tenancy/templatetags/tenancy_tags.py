"""`{{ site|site_label }}`: a site as every screen names it, "Name (domain)" (tenancy.access.site_label)."""

from __future__ import annotations

from typing import Any

from django import template

from tenancy.access import site_label as label

register = template.Library()


@register.filter
def site_label(site: Any) -> str:
    return label(site) if site is not None else "— all sites —"
