"""`{{ code|service_label }}`, `|error_label`, `|provider_label[:upstream]`: codes as people read them
(one mapping, integrations.labels, for the dashboard, the usage log and the test screen)."""

from __future__ import annotations

from django import template

from integrations import labels

register = template.Library()


@register.filter
def service_label(code: str | None) -> str:
    return labels.service_label(code)


@register.filter
def error_label(code: str | None) -> str:
    return labels.error_label(code)


@register.filter
def provider_label(name: str | None, upstream: str | None = None) -> str:
    return labels.provider_label(name, upstream)
