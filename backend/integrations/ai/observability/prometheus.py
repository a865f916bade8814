"""Prometheus metrics of the AI layer, and the text a scrape of `/metrics` returns.

Per call (from `calls.call_ended`): calls by site, service, provider, model and status; errors by
class; call and upstream-attempt latency histograms per provider and model; tokens; cost; cache
hits; the in-process ledger queue depth. Read at scrape time: each site's monthly budget left, the
providers cooling down, and the Redis ledger backlog.

Under gunicorn every worker is its own process: with `PROMETHEUS_MULTIPROC_DIR` set (the gunicorn
config sets it) prometheus-client keeps each worker's values in a file there and a scrape served by
any worker adds them all up (multiprocess mode; the config marks a dead worker's gauges gone).
Recording is on only when `/metrics` is reachable (`AI_METRICS_TOKEN` or `AI_METRICS_ALLOWLIST`).
"""

from __future__ import annotations

from typing import Any

from integrations.ai.runtime import conf

from . import tracing

PREFIX = "panel_ai"


class _Metrics:
    """The instruments, built once per process when recording is switched on."""

    def __init__(self, multiprocess: bool) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = multiprocess
        # Multiprocess: values live in files and are collected from there; nothing is registered.
        self.registry = own = None if multiprocess else CollectorRegistry()
        buckets = tracing.DURATION_BUCKETS
        self.calls = Counter(
            f"{PREFIX}_calls",
            "AI calls by outcome (ok, error, cached, refused).",
            ["site", "service", "provider", "model", "status"],
            registry=own,
        )
        self.errors = Counter(
            f"{PREFIX}_errors",
            "Failed upstream attempts and refusals, by error class.",
            ["site", "provider", "error_class"],
            registry=own,
        )
        self.duration = Histogram(
            f"{PREFIX}_call_duration_seconds",
            "Whole-call latency (retries and failovers included) by provider and model.",
            ["provider", "model"],
            buckets=buckets,
            registry=own,
        )
        self.upstream = Histogram(
            f"{PREFIX}_upstream_duration_seconds",
            "Latency of each upstream attempt.",
            ["provider", "model"],
            buckets=buckets,
            registry=own,
        )
        self.tokens = Counter(
            f"{PREFIX}_tokens",
            "Tokens used, by type (input, output).",
            ["site", "provider", "model", "type"],
            registry=own,
        )
        self.cost = Counter(
            f"{PREFIX}_cost_usd",
            "What calls cost, in US dollars (known costs only).",
            ["site", "provider", "model"],
            registry=own,
        )
        self.unpriced = Counter(
            f"{PREFIX}_unpriced_calls",
            "Served calls whose cost is unknown (no price).",
            ["site", "provider", "model"],
            registry=own,
        )
        self.cache_hits = Counter(
            f"{PREFIX}_cache_hits", "Calls served from the response cache.", ["site"], registry=own
        )
        self.queue = Gauge(
            f"{PREFIX}_ledger_queue_depth",
            "Calls waiting in the in-process ledger writer queue.",
            multiprocess_mode="livesum",
            registry=own,
        )


_metrics: _Metrics | None = None
_on = False


def configure(on: bool) -> None:
    """Switch recording on or off (`observability.configure` reads the settings)."""
    global _metrics, _on
    _on = on
    if on and _metrics is None:
        _metrics = _Metrics(bool(conf.prometheus_multiproc_dir()))


def enabled() -> bool:
    return _on


def observe(outcome: Any, record: Any) -> None:
    if not _on or _metrics is None:
        return
    from integrations.ai.ledger import writer as ledger_writer

    m = _metrics
    site, model = str(outcome.site_id or 0), outcome.requested_model
    m.calls.labels(site, outcome.service, outcome.provider, model, outcome.status).inc()
    if outcome.status == "cached":
        m.cache_hits.labels(site).inc()
    elif outcome.status == "refused":
        m.errors.labels(site, outcome.provider, outcome.error_type).inc()
    if outcome.status != "refused":
        m.duration.labels(outcome.provider, model).observe(outcome.seconds)
    for attempt in record.attempts:
        m.upstream.labels(attempt.provider, attempt.model).observe(attempt.latency_ms / 1000)
        if attempt.error is not None:
            m.errors.labels(site, attempt.provider, type(attempt.error).__name__).inc()
        result = attempt.result
        if result is not None:
            m.tokens.labels(site, attempt.provider, result.model, "input").inc(result.prompt_tokens)
            m.tokens.labels(site, attempt.provider, result.model, "output").inc(result.completion_tokens)
    if outcome.status in ("ok", "error") and outcome.attempts:
        served = next((a.result for a in reversed(record.attempts) if a.result is not None), None)
        if served is not None:
            if outcome.cost is None:
                m.unpriced.labels(site, served.provider, served.model).inc()
            else:
                m.cost.labels(site, served.provider, served.model).inc(float(outcome.cost))
    m.queue.set(ledger_writer.queue_depth())


# -- scrape -----------------------------------------------------------------------------------------
class GatewayCollector:
    """What is read when scraped rather than counted per call: shared state, the same from any worker."""

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        from integrations.ai.ledger import writer as ledger_writer

        remaining = GaugeMetricFamily(
            f"{PREFIX}_budget_remaining_usd",
            "Monthly budget left per site (cap minus this month's recorded spend).",
            labels=["site"],
        )
        for site_id, left in budget_remaining():
            remaining.add_metric([str(site_id)], float(left))
        yield remaining
        cooling = GaugeMetricFamily(
            f"{PREFIX}_provider_cooling_down",
            "1 for each (site, provider) skipped after repeated failures.",
            labels=["site", "provider"],
        )
        pairs = cooling_down()
        for site_id, provider in pairs:
            cooling.add_metric([str(site_id), provider], 1)
        yield cooling
        yield GaugeMetricFamily(
            f"{PREFIX}_providers_cooling_down", "How many (site, provider) pairs cool down.", value=len(pairs)
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_ledger_shared_backlog",
            "Ledger entries waiting in the shared Redis list (0 without Redis).",
            value=ledger_writer.shared_backlog(),
        )


def budget_remaining() -> list[tuple[int, Any]]:
    """(site id, monthly cap minus the month's spend) for every site with a monthly budget."""
    from integrations.ai.governance.budget import month_start
    from integrations.ai.ports import store

    return store().budget_remaining(month_start().date())


def cooling_down() -> list[tuple[int, str]]:
    """The (site, provider) pairs in cooldown: every site with settings (and 0, the deployment) x every
    provider and named endpoint, read from the shared cache in one round trip."""
    from integrations.ai.ports import store
    from integrations.ai.runtime import clock
    from integrations.ai.runtime.pauses import (
        _cool_key,  # the key pauses.py writes; read here for every pair in one get_many
    )
    from integrations.ai.runtime.shared_cache import cache

    sites = [0, *store().configured_sites()]
    providers = sorted({*conf.provider_types(), *conf.deployment_endpoints()})
    keys = {_cool_key(site, provider): (site, provider) for site in sites for provider in providers}
    now = clock.get().time()
    found = cache.get_many(list(keys))
    return sorted(keys[key] for key, until in found.items() if until and until > now)


def scrape() -> tuple[bytes, str]:
    """The exposition text of every metric (all workers' in multiprocess mode) and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    from integrations.ai.ledger import writer as ledger_writer

    configure(True)
    assert _metrics is not None
    _metrics.queue.set(ledger_writer.queue_depth())
    if _metrics.multiprocess:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_Forward(_metrics.registry))
    registry.register(GatewayCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Forward:
    """Another registry's metrics through this one (single-process mode)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Any:
        return self.registry.collect()
