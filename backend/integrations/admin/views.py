"""The admin's live screens: test a provider with a real prompt, check a key.

Both run through the same factory and service the CMS uses, for the record's site, so what an
admin sees here is what pages will get. Another tenant's record is a 404 (`require_site`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.contrib import messages
from django.core.handlers.asgi import ASGIRequest
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import reverse

from integrations import labels
from integrations.admin import try_screen as admin_try
from integrations.admin.forms import ProviderTestForm
from integrations.ai.gateway.factory import ProviderFactory
from integrations.ai.gateway.service import AIService
from integrations.ai.governance.money import usd
from integrations.ai.providers import registry
from integrations.ai.providers.errors import AIProviderError
from integrations.ai.providers.model_mapper import vendor_of
from integrations.ai.sites.site_config import SiteSnapshot, get_snapshot
from integrations.models import AIProviderSettings
from tenancy.access import site_label, site_object_or_404


def _record_for(model_admin: Any, request: HttpRequest, pk: int) -> AIProviderSettings:
    """The record, if the user manages its site (else 404) and may change it (else 403).

    These screens spend the site's budget and use its keys, so they need the change permission,
    not just a membership.
    """
    return site_object_or_404(
        request,
        model_admin.get_queryset(request).select_related("site"),
        pk,
        lambda record: model_admin.has_change_permission(request, record),
    )


def has_own_key(record: AIProviderSettings, provider: str) -> bool:
    """Whether calls for `provider` (a provider or a named endpoint) use the site's own key."""
    row = record.credential(provider)
    return record.enabled and row is not None and row.enabled and bool(row.api_key)


def provider_label(name: str, snapshot: SiteSnapshot | None = None) -> str:
    """What people read: the registry's label for a provider ("OpenAI"), the name of an endpoint ("ollama")."""
    if snapshot is not None and name in snapshot.instances:
        return name
    return registry.label(name)


def own_keys(record: AIProviderSettings) -> list[tuple[str, str]]:
    """(name, label) of each credential of the site with a key of its own: the check-key buttons."""
    order = {name: index for index, name in enumerate(registry.names())}  # registry order, then endpoints
    rows = sorted(record.credentials.all(), key=lambda c: (c.is_endpoint, order.get(c.provider, 0), c.name))
    return [
        (c.label_name, c.name if c.is_endpoint else registry.label(c.provider))
        for c in rows
        if has_own_key(record, c.label_name)
    ]


def _usable_providers(record: AIProviderSettings) -> list[str]:
    snapshot = get_snapshot(record.site_id)
    usable = snapshot.usable()
    return [p for p in snapshot.names() if p in usable]


def _test_form(record: AIProviderSettings, data: Any, files: Any = None) -> tuple[ProviderTestForm, list[str], str]:
    """The test screen's form (both variants), its usable providers, and any notice about the model list."""
    usable = _usable_providers(record)
    model_choices, notice = _model_choices(record, usable)
    snapshot = get_snapshot(record.site_id)
    providers = [("", "— as the site resolves it —")] + [(p, provider_label(p, snapshot)) for p in usable]
    return ProviderTestForm(data, files, providers=providers, models=model_choices), usable, notice


Choices = list[tuple[str, list[tuple[str, str]]]]


def _model_choices(record: AIProviderSettings, usable: list[str]) -> tuple[Choices, str]:
    """Logical names from the mapping table, plus OpenRouter's live catalogue when it answers, grouped
    by vendor (`model_mapper.vendor_of`), and each named endpoint's own models in a group of its own."""
    mapper = ProviderFactory.mapper_for_site(record.site_id)
    choices = [(name, name) for name in sorted(mapper.table)]
    notice = ""
    if "openrouter" in usable:
        try:
            catalogue = ProviderFactory.create_provider("openrouter", record.site_id).get_available_models()
        except AIProviderError as exc:
            notice = f"OpenRouter's model list is unavailable ({exc.code}); showing mapped models only."
        else:
            known = {value for value, _ in choices}
            choices += [(m.id, f"{m.id} (OpenRouter)") for m in catalogue if m.id not in known]
    groups: dict[str, list[tuple[str, str]]] = {}
    for value, label in choices:
        groups.setdefault(labels.vendor_label(vendor_of(value)), []).append((value, label))
    grouped: Choices = sorted(groups.items(), key=lambda g: (g[0] == labels.vendor_label(None), g[0].lower()))
    known = {value for value, _ in choices}
    snapshot = get_snapshot(record.site_id)
    for name in (p for p in usable if p in snapshot.instances):  # an endpoint names its own models
        try:
            listed = ProviderFactory.create_provider(name, record.site_id).get_available_models()
        except AIProviderError as exc:
            notice = " ".join(filter(None, [notice, f"{name}'s model list is unavailable ({exc.code})."]))
            continue
        own = [(m.id, f"{m.id} ({name})") for m in listed if m.id not in known]
        known.update(value for value, _ in own)
        if own:
            grouped.append((f"Endpoint {name}", own))
    return grouped, notice


def test_provider_view(model_admin: Any, request: HttpRequest, pk: int) -> HttpResponse:
    record = _record_for(model_admin, request, pk)
    form, usable, notice = _test_form(record, request.POST or None, request.FILES or None)
    result = error = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = admin_try.run(record.site_id, data)  # with the form's tool, schema and image, if any
        except AIProviderError as exc:
            error = exc
    from integrations.admin import prices as admin_prices

    cost, cost_source = admin_try.ledger_cost(record.site_id, result) if result is not None else (None, "")
    admin_prices.warn_unpriced(request, record.site_id, result)  # "calls to X have no price: add one"
    resolve_error: AIProviderError | None
    try:
        resolution = ProviderFactory.resolve(None, record.site_id)
    except AIProviderError as exc:
        resolution, resolve_error = None, exc
    else:
        resolve_error = None
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "original": record,
        "title": f"Test AI provider for {site_label(record.site)}",
        "resolved_label": provider_label(resolution.provider_type, get_snapshot(record.site_id)) if resolution else "",
        "form": form,
        "result": result,
        "cost": cost,
        "cost_source": admin_try.COST_SOURCES.get(cost_source, ""),
        "error": error,
        "notice": notice,
        "resolution": resolution,
        "resolve_error": resolve_error,
        "usable": [provider_label(p, get_snapshot(record.site_id)) for p in usable],
    }
    return TemplateResponse(request, "admin/integrations/aiprovidersettings/test_provider.html", context)


def check_key_view(model_admin: Any, request: HttpRequest, pk: int, provider: str) -> HttpResponse:
    record = _record_for(model_admin, request, pk)
    if request.method != "POST":  # it calls the provider: never on a GET (prefetchers, crawlers)
        return HttpResponseNotAllowed(["POST"])
    back = HttpResponseRedirect(reverse("admin:integrations_aiprovidersettings_change", args=[record.pk]))
    snapshot = get_snapshot(record.site_id)
    if provider not in snapshot.names():
        messages.error(request, f"Unknown provider {provider!r}.")
        return back
    label = provider_label(provider, snapshot)
    if not has_own_key(record, provider) and not request.user.is_superuser:
        # The check would report the deployment account's credit and spend: not a site admin's business.
        messages.error(
            request,
            f"{site_label(record.site)} has no {label} key of its own to check; "
            f"enter one (and enable these settings) first.",
        )
        return back
    try:
        status = ProviderFactory.create_provider(provider, record.site_id).check_key()
    except AIProviderError as exc:
        messages.error(request, f"{label} key check failed ({exc.code}): {exc.message}")
        return back
    if provider == "openrouter":
        limit = status.get("limit")
        remaining = status.get("limit_remaining")
        summary = (
            f"used ${status.get('usage') or 0:.4f}"
            + (f", limit ${limit:.2f}, remaining ${remaining:.4f}" if limit is not None else ", no limit")
            + (" (free tier)" if status.get("is_free_tier") else "")
        )
    else:
        summary = f"{status['models_visible']} models visible"
    messages.success(request, f"{label} key works: {summary}.")
    return back


def stream_test_view(model_admin: Any, request: HttpRequest, pk: int) -> HttpResponse:
    """The test screen's streaming variant: server-sent events with text deltas, then the totals."""
    record = _record_for(model_admin, request, pk)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form, _, _ = _test_form(record, request.POST)
    if not form.is_valid():
        return JsonResponse({"error": {"code": "invalid_request", "message": form.errors.as_text()}}, status=400)
    data = form.cleaned_data
    service = AIService(site=record.site_id, service="admin.test")
    params = {
        "provider": data["provider"] or None,
        "model": data["model"] or None,
        "max_tokens": data["max_tokens"],
        "temperature": data["temperature"],
        "failover": bool(data.get("use_chain")),  # this provider and key only, unless the chain is asked for
    }

    def events() -> Iterator[str]:  # the sync driver (WSGI): the stream runs on this request's thread
        try:
            stream = service.generate_stream(data["prompt"], **params)
            for delta in stream:
                yield _delta_event(delta)
            yield _done_event(stream.result, record.site_id)
        except AIProviderError as exc:
            yield _error_event(exc)

    async def aevents() -> AsyncIterator[str]:  # the async driver (ASGI): a client that leaves cancels it
        try:
            stream = await service.astream(data["prompt"], **params)
            async for delta in stream:
                yield _delta_event(delta)
            yield _done_event(stream.result, record.site_id)
        except AIProviderError as exc:
            yield _error_event(exc)

    body = aevents() if isinstance(request, ASGIRequest) else events()
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _delta_event(delta: str) -> str:
    return f"data: {json.dumps({'delta': delta})}\n\n"


def _error_event(exc: AIProviderError) -> str:
    error = {"code": exc.code, "label": labels.error_label(exc.code), "message": str(exc)}
    return f"data: {json.dumps({'error': error})}\n\n"


def _done_event(result: Any, site_id: int) -> str:
    if result is None:  # the stream ended without its final result: say so rather than crash
        raise RuntimeError("the stream ended without a result")
    cost, _ = admin_try.ledger_cost(site_id, result)  # what the ledger charges, not only a reported cost
    return (
        "data: "
        + json.dumps(
            {
                "done": True,
                "provider": result.provider,
                "provider_label": labels.provider_label(result.provider, result.upstream_provider),
                "model": result.model,
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.total_tokens,
                "latency_ms": round(result.latency_ms),
                "cost": usd(cost) if cost is not None else None,
            }
        )
        + "\n\n"
    )
