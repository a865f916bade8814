"""The admin's view of prices: the genai-prices catalogue beside the ModelPrice overrides, and warnings
about calls no source priced ("calls to X have no price: add one").

The catalogue is deployment-wide public data, read-only: anyone who may view model prices sees it.
The warnings are per site, shown only on screens of a site the user already manages (its settings
page, its test screen), from that site's daily roll-ups.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from integrations.ai import pricing
from integrations.ai.sites.site_config import get_snapshot

RECENT_DAYS = 30
PER_PAGE = 200


def unpriced_models(site_id: int, days: int = RECENT_DAYS) -> list[tuple[str, str]]:
    """(provider, model) of the site's calls of the last `days` that had no price and still have none."""
    from integrations.models import UsageDaily

    since = timezone.localdate() - datetime.timedelta(days=days)
    seen = (
        UsageDaily.objects.filter(site_id=site_id, day__gte=since, unpriced__gt=0)
        .values_list("provider", "model")
        .distinct()
        .order_by("provider", "model")
    )
    prices = get_snapshot(site_id).prices
    return [(provider, model) for provider, model in seen if not pricing.resolve(prices, provider, model).priced]


def notice(provider: str, model: str) -> str:
    return (
        f"Calls to {provider}:{model} have no price: add one under Model prices (until then each call is "
        "charged its worst-case estimate)."
    )


def warn_unpriced(request: HttpRequest, site_id: int, result: Any = None) -> None:
    """Admin warnings for the site's unpriced models, and for the model a test call just used."""
    pairs = unpriced_models(site_id)
    if result is not None and (result.cost is None or result.cost_source == "unpriced"):
        pair = (result.provider, result.model)
        if not pricing.resolve(get_snapshot(site_id).prices, *pair).priced and pair not in pairs:
            pairs.insert(0, pair)
    for provider, model in pairs:
        messages.warning(request, notice(provider, model))


def catalogue_view(model_admin: Any, request: HttpRequest) -> HttpResponse:
    """The catalogue's entries (OpenAI, Anthropic, OpenRouter), filterable, with the overrides marked."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    from integrations.models import ModelPrice

    provider = request.GET.get("provider", "")
    query = request.GET.get("q", "").strip().lower()
    overrides = set(ModelPrice.objects.values_list("provider", "model_id"))
    rows = [
        {
            "provider": provider_id,
            "model": model,
            "name": name,
            "price": price,
            "overridden": (provider_id, model) in overrides,
        }
        for provider_id, model, name, price in pricing.catalogue_entries()
        if (not provider or provider_id == provider) and (not query or query in model.lower() or query in name.lower())
    ]
    page = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": "Price catalogue",
        "version": pricing.catalogue_version(),
        "providers": list(pricing.CATALOGUE_IDS.values()),
        "provider": provider,
        "q": request.GET.get("q", ""),
        "page": page,
        "count": len(rows),
    }
    return TemplateResponse(request, "admin/integrations/modelprice/catalogue.html", context)
