"""The usage dashboard admin view and its CSV export (linked from the AI usage changelist and the index).

Scoped like the ledger: `site_ids_for(request.user)` decides which sites' numbers exist for the
page at all; a superuser may narrow to one site, a site admin to one of their own sites. Asking for
a site outside one's scope is a 404, as for any other record of another site.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.sites.models import Site
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from integrations import labels
from integrations.usage.dashboard import Dashboard, DashboardError, chart_payload, parse_range, to_csv
from tenancy.access import site_ids_for

PERMISSION = "integrations.view_aiusage"


def _scope(request: HttpRequest) -> tuple[set[int] | None, Site | None, list[Site]]:
    """(site ids the numbers come from, the chosen site, the sites offered in the filter)."""
    allowed = site_ids_for(request.user)
    choices = list(
        Site.objects.order_by("name", "domain")
        if allowed is None
        else Site.objects.filter(pk__in=allowed).order_by("name", "domain")
    )
    raw = request.GET.get("site") or ""
    if not raw:
        return allowed, None, choices
    chosen = next((s for s in choices if str(s.pk) == raw), None)
    if chosen is None:  # unknown, malformed or someone else's: indistinguishable
        raise Http404("No such site.")
    return {chosen.pk}, chosen, choices


def _dashboard(request: HttpRequest) -> tuple[Dashboard | None, dict[str, Any]]:
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    ids, chosen, choices = _scope(request)
    context: dict[str, Any] = {
        "site_choices": choices,
        "chosen_site": chosen,
        "start": request.GET.get("start", ""),
        "end": request.GET.get("end", ""),
    }
    try:
        first, last = parse_range(request.GET.get("start"), request.GET.get("end"))
    except DashboardError as exc:
        context["range_error"] = str(exc)
        return None, context
    context.update(start=first.isoformat(), end=last.isoformat())
    return Dashboard(ids, first, last), context


def dashboard_view(model_admin: Any, request: HttpRequest) -> HttpResponse:
    dashboard, context = _dashboard(request)
    if dashboard is None:
        messages.error(request, f"Dashboard range: {context['range_error']}")
        data = None
    else:
        data = dashboard.build(table=False)  # the daily table per site is the CSV's, not drawn
    query = request.GET.copy()
    context.update(
        model_admin.admin_site.each_context(request),
        title="AI usage dashboard",
        opts=model_admin.model._meta,
        data=data,
        chart_data=labelled(chart_payload(data)) if data else None,
        csv_url=reverse("admin:integrations_aiusage_dashboard_csv") + (f"?{query.urlencode()}" if query else ""),
        changelist_url=reverse("admin:integrations_aiusage_changelist"),
        is_superuser=request.user.is_superuser,
        set_aside=_set_aside_count(request),
    )
    return TemplateResponse(request, "admin/integrations/aiusage/dashboard.html", context)


def labelled(payload: dict[str, Any]) -> dict[str, Any]:
    """The chart data with codes as people read them (integrations.labels); the CSV keeps the codes."""
    naming: dict[str, Callable[..., str]] = {"provider": labels.provider_label, "service": labels.service_label}
    for dim, name in naming.items():
        for metric, series in payload.get("series", {}).get(dim, {}).items():
            payload["series"][dim][metric] = {(k if k == "other" else name(k)): v for k, v in series.items()}
    for row in payload.get("refusals", []):
        row["reason"] = labels.error_label(row["reason"])
    for row in payload.get("latency", []):
        row["provider"] = labels.provider_label(row["provider"])
    return payload


def _set_aside_count(request: HttpRequest) -> int:
    """Ledger rows the writer could not store (LedgerDeadLetter) of the sites on the page; rows of no site
    count for superusers only."""
    from integrations.models import LedgerDeadLetter

    ids, _chosen, _choices = _scope(request)
    rows = LedgerDeadLetter.objects.all() if ids is None else LedgerDeadLetter.objects.filter(site_id__in=ids)
    return rows.count()


def dashboard_csv_view(model_admin: Any, request: HttpRequest) -> HttpResponse:
    dashboard, context = _dashboard(request)
    if dashboard is None:
        return HttpResponse(f"Dashboard range: {context['range_error']}\n", status=400, content_type="text/plain")
    response = HttpResponse(to_csv(dashboard.build()), content_type="text/csv; charset=utf-8")
    site = context["chosen_site"].domain if context["chosen_site"] else "all"
    name = f"ai-usage-{site}-{dashboard.first}-{dashboard.last}.csv"
    response["Content-Disposition"] = f"attachment; filename={json.dumps(name)}"
    return response
