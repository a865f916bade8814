"""Observability of the AI layer: OpenTelemetry GenAI traces and metrics, Prometheus, the JSON call log, health.

`configure()` (run once at startup by the integrations app) switches each part on from the
settings: tracing and OpenTelemetry metrics from the standard `OTEL_*` variables, Prometheus from
`AI_METRICS_TOKEN` / `AI_METRICS_ALLOWLIST`, the call log from `AI_LOG_FORMAT=json`. With none of
them, `calls.STATE.active` stays False and the pipeline's hooks return at once. docs/observability.md
has the metric names, the span attributes and a Grafana dashboard.
"""

from __future__ import annotations

from integrations.ai.runtime import conf

from . import call_log, calls, prometheus, tracing

_env_configured = False


def configure() -> None:
    """Read the settings and switch tracing, metrics and the call log on or off accordingly."""
    global _env_configured
    if not _env_configured:  # the SDK's global providers can be set once per process
        _env_configured = True
        tracing.configure_from_env(conf.otel_environment())
    prometheus.configure(conf.metrics_enabled())
    call_log.configure(conf.log_format() == "json")
    refresh()


def refresh() -> None:
    """Recompute whether anything observes calls (after `tracing.install` / `uninstall`, say)."""
    from integrations.ai.ledger import usage

    calls.STATE.active = tracing.enabled() or prometheus.enabled() or call_log.enabled()
    listening = calls.call_ended in usage.CALL_LISTENERS
    if calls.STATE.active and not listening:
        usage.CALL_LISTENERS.append(calls.call_ended)
    elif not calls.STATE.active and listening:
        usage.CALL_LISTENERS.remove(calls.call_ended)
