"""The admin index's per-site overview: what a person managing sites wants to see first.

Per site the user manages: provider, which providers have a key of the site's own (only whether
one is set, never the key), month-to-date spend against the budget, the error rate of the last
24 hours and when the provider was last tested, each from the usage ledger in a few grouped
queries (not one per site).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, Max, Q, Sum
from django.utils import timezone

from integrations.ai.governance.budget import month_start, usd
from integrations.ai.providers import registry
from integrations.models import AIProviderSettings, AIUsage
from tenancy.access import site_label, sites_for

TEST_SERVICES = ("admin.test", "cli.ai_test")
MAX_SITES = 50  # the overview of a superuser with many sites stays an overview


def site_overview(user: Any) -> list[dict[str, Any]]:
    """One row per site `user` manages (by name), for the admin index."""
    sites = list(sites_for(user).order_by("name", "domain")[:MAX_SITES])
    ids = [s.pk for s in sites]
    records = {r.site_id: r for r in AIProviderSettings.objects.filter(site_id__in=ids).prefetch_related("credentials")}
    spend = dict(
        AIUsage.objects.filter(site_id__in=ids, created_at__gte=month_start())
        .values_list("site_id")
        .annotate(total=Sum("cost"))
    )
    since = timezone.now() - timedelta(hours=24)
    calls = {
        row["site_id"]: row
        for row in AIUsage.objects.filter(site_id__in=ids, created_at__gte=since)
        .values("site_id")
        .annotate(total=Count("id"), errors=Count("id", filter=Q(status=AIUsage.STATUS_ERROR)))
    }
    tested = dict(
        AIUsage.objects.filter(site_id__in=ids, service__in=TEST_SERVICES)
        .values_list("site_id")
        .annotate(last=Max("created_at"))
    )
    rows = []
    for site in sites:
        record = records.get(site.pk)
        spent = spend.get(site.pk) or Decimal(0)
        cap = record.monthly_budget if record else None
        window = calls.get(site.pk) or {"total": 0, "errors": 0}
        rows.append(
            {
                "site": site,
                "name": site_label(site),
                "record": record,
                "provider": (record.get_provider_type_display() if record else "deployment default"),
                "enabled": bool(record and record.enabled),
                "keys": [
                    c.name if c.is_endpoint else registry.label(c.provider)
                    for c in (record.credentials.all() if record else ())
                    if c.api_key
                ],
                "spent": usd(spent),
                "cap": usd(cap) if cap is not None else None,
                "percent": min(100, int(spent * 100 / cap)) if cap else (100 if cap == 0 else None),
                "calls": window["total"],
                "errors": window["errors"],
                "error_rate": round(window["errors"] * 100 / window["total"]) if window["total"] else None,
                "last_test": tested.get(site.pk),
            }
        )
    return rows
