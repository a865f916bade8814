"""Deployment-wide AI settings, read from Django settings in this one place.

settings.py fills them from the environment (django-environ); everything in the AI layer asks
this module, so a test's `settings` override is seen everywhere at once.
"""

from __future__ import annotations

import os
import re
import threading
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from integrations.ai.providers import registry
from integrations.ai.providers.outbound import OutboundPolicy
from integrations.ai.providers.types import ProviderConfig


def _get(name: str, default: Any = "") -> Any:
    return getattr(settings, name, default)


def cooldown() -> tuple[int, float]:
    """(failures in a row before a provider cools down, seconds it is skipped)."""
    return int(_get("AI_COOLDOWN_AFTER_FAILURES", 3)), float(_get("AI_COOLDOWN_SECONDS", 60.0))


def cache_ttl() -> int:
    return int(_get("AI_CACHE_TTL", 3600))


def settings_check_interval() -> float:
    return float(_get("AI_SETTINGS_CHECK_INTERVAL", 1.0))


_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$", re.IGNORECASE)
_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def api_rate_limit() -> tuple[int, int] | None:
    """(requests, per seconds) each API token or session user may make; None when switched off.

    `AI_API_RATE_LIMIT` is "60/m", "1000/h", "10/30s"...; "", "0" or "off" switch the limit off.
    A value that is none of these stops with a message rather than silently leaving the API unlimited.
    """
    raw = str(_get("AI_API_RATE_LIMIT", "60/m") or "").strip()
    if raw.lower() in ("", "0", "off", "none"):
        return None
    match = _RATE.match(raw)
    if match is None or int(match[1]) < 1 or match[2] == "0":
        raise ImproperlyConfigured(
            f"AI_API_RATE_LIMIT must look like '60/m' (requests per s, m, h or d; '10/30s' for 30 seconds) "
            f"or be 'off'; got {raw!r}."
        )
    return int(match[1]), int(match[2] or 1) * _PERIOD_SECONDS[match[3].lower()]


def default_site_id() -> int | None:
    """Django's SITE_ID, when the deployment pins one site (commands outside a request use it)."""
    return _get("SITE_ID", None)


def outbound_allowlist() -> tuple[str, ...]:
    """Hosts, host:port, IPs or CIDR ranges a site's base URL may reach beyond public https (superuser-set)."""
    value = _get("AI_OUTBOUND_ALLOWLIST", ()) or ()
    if isinstance(value, str):
        value = value.split(",")
    return tuple(str(entry).strip() for entry in value if str(entry).strip())


def outbound_policy() -> OutboundPolicy:
    return OutboundPolicy(outbound_allowlist())


def setting_name(provider: str, suffix: str) -> str:
    return f"{provider.upper()}_{suffix}"


def preferred_provider() -> str:
    return str(_get("AI_PROVIDER", "auto") or "auto").strip().lower()


_configs: dict[str, ProviderConfig] = {}
_lock = threading.Lock()


def settings_config(provider: str) -> ProviderConfig:
    """The deployment-wide config of one provider (its key may be empty); built once per settings change."""
    if provider in deployment_endpoints():
        return endpoint_config(provider)
    config = _configs.get(provider)
    if config is None:
        config = _build(provider)
        with _lock:
            _configs[provider] = config
    return config


def _clear(**kwargs: object) -> None:
    global _redis_url, _ledger_queue
    with _lock:
        _configs.clear()
        _redis_url = None
        _ledger_queue = None
    load_provider_specs()


setting_changed.connect(_clear, dispatch_uid="integrations.ai.runtime.conf")


def provider_types() -> list[str]:
    """What AI_PROVIDER and a site's provider type may name: auto, or any registered direct provider."""
    load_provider_specs()
    return ["auto", *registry.direct_names()]


_loaded: tuple[tuple[str, ...], list[str]] = ((), [])


def load_provider_specs() -> None:
    """Register the providers a deployment adds by dotted path (`AI_PROVIDER_SPECS`); on a settings
    change, the previously added ones are dropped first."""
    global _loaded
    paths = tuple(_get("AI_PROVIDER_SPECS", ()) or ())
    if paths == _loaded[0]:
        return
    with _lock:
        for name in _loaded[1]:
            registry.unregister(name)
        _loaded = (paths, [spec.name for spec in registry.load(paths)])


def deployment_endpoints() -> dict[str, str]:
    """Named OpenAI-compatible endpoints every site may use (`AI_ENDPOINTS`): name -> kind."""
    return {name: str(spec.get("kind") or "openai_compatible") for name, spec in _endpoints().items()}


def _endpoints() -> dict[str, dict[str, str]]:
    value = _get("AI_ENDPOINTS", {}) or {}
    if not isinstance(value, dict):
        raise ImproperlyConfigured("AI_ENDPOINTS must be a JSON object: {name: {base_url, api_key, default_model}}.")
    return value


def endpoint_config(name: str) -> ProviderConfig:
    """The deployment's config of a named endpoint (`AI_ENDPOINTS[name]`); trusted like any deployment URL."""
    key = f"endpoint:{name}"
    config = _configs.get(key)
    if config is None:
        entry = _endpoints().get(name) or {}
        config = _build(str(entry.get("kind") or "openai_compatible"), name=name, overrides=entry)
        with _lock:
            _configs[key] = config
    return config


def _build(provider: str, name: str = "", overrides: dict[str, str] | None = None) -> ProviderConfig:
    spec = registry.get(provider)
    overrides = overrides or {}

    def setting(suffix: str, default: str) -> str:
        if name:  # a named endpoint: only its own entry
            return str(overrides.get(suffix.lower()) or default)
        name_ = f"{spec.env_prefix}_{suffix}"
        # A provider added by dotted path has no line in settings.py: its variables come from the environment.
        return str(_get(name_, None) or os.environ.get(name_) or default)

    return ProviderConfig(
        api_key=setting("API_KEY", ""),
        base_url=setting("BASE_URL", spec.default_base_url),
        default_model=setting("DEFAULT_MODEL", spec.default_model),
        kind=spec.name,
        name=name,
        timeout=float(_get("AI_REQUEST_TIMEOUT", 60.0)),
        max_retries=int(_get("AI_MAX_RETRIES", 2)),
        retry_backoff=float(_get("AI_RETRY_BACKOFF", 0.5)),
        retry_after_cap=float(_get("AI_RETRY_AFTER_CAP", 30.0)),
        http_referer=str(_get("OPENROUTER_HTTP_REFERER")) if provider == "openrouter" else "",
        app_name=str(_get("OPENROUTER_APP_NAME", "Panel CMS")) if provider == "openrouter" else "",
        source="settings",
        extra={"api_version": str(_get("ANTHROPIC_API_VERSION", "2023-06-01"))} if provider == "anthropic" else {},
    )


def unpriced_mode() -> str:
    """What a capped site does with a model no source prices (`AI_UNPRICED`): charge_estimate | refuse."""
    mode = str(_get("AI_UNPRICED", "charge_estimate") or "charge_estimate").strip().lower()
    if mode not in ("charge_estimate", "refuse"):
        raise ImproperlyConfigured(f"AI_UNPRICED must be 'charge_estimate' or 'refuse'; got {mode!r}.")
    return mode


def unpriced_price() -> tuple[Decimal, Decimal]:
    """USD per million (prompt, completion) tokens an unpriced call is estimated and charged at."""
    raw = str(_get("AI_UNPRICED_PRICE", "15,75") or "15,75")
    try:
        prompt, completion = (Decimal(part.strip()) for part in raw.split(","))
        if prompt < 0 or completion < 0 or not (prompt.is_finite() and completion.is_finite()):
            raise ValueError
    except (ValueError, ArithmeticError):
        raise ImproperlyConfigured(
            f"AI_UNPRICED_PRICE must be two non-negative USD prices per million tokens, 'prompt,completion' "
            f"(e.g. '15,75'); got {raw!r}."
        ) from None
    return prompt, completion


def pii_phone_region() -> str:
    """The region whose national phone numbers PII masking finds (`AI_PII_PHONE_REGION`, ISO 3166 alpha-2);
    +international numbers are found whatever it is."""
    import phonenumbers

    region = str(_get("AI_PII_PHONE_REGION", "US") or "US").strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ImproperlyConfigured(f"AI_PII_PHONE_REGION must be a two-letter region such as US or DE; got {region!r}.")
    return region


def journal_dir() -> str:
    """Where each process keeps its ledger journal (`AI_LEDGER_JOURNAL_DIR`); empty switches it off."""
    return str(_get("AI_LEDGER_JOURNAL_DIR", "") or "")


def endpoint_free(name: str) -> bool:
    """Whether the deployment marked a named endpoint free (`"free": true` in AI_ENDPOINTS: a local model)."""
    value = (_endpoints().get(name) or {}).get("free", False)
    return value is True or str(value).strip().lower() in ("1", "true", "yes")


def ledger_queue_size() -> int:
    """Calls the in-process ledger writer holds before callers write their own rows (back-pressure)."""
    return max(1, int(_get("AI_LEDGER_QUEUE_SIZE", 10000)))


def max_streams() -> int:
    """Upstream streams one process holds open at once (`AI_MAX_STREAMS`); 0: no cap. Past it a new stream
    is refused at once (`Overloaded`, a 503 with Retry-After) instead of queueing behind the others."""
    return max(0, int(_get("AI_MAX_STREAMS", 2000)))


def usage_retention_days() -> int:
    """Days raw ledger rows are kept (`prune_usage`); the daily roll-ups are kept for ever."""
    days = int(_get("AI_USAGE_RETENTION_DAYS", 400))
    if days < 1:
        raise ImproperlyConfigured(f"AI_USAGE_RETENTION_DAYS must be at least 1 (days); got {days}.")
    return days


def ledger_batch_size() -> int:
    return max(1, int(_get("AI_LEDGER_BATCH_SIZE", 500)))


def ledger_flush_interval() -> float:
    """Seconds the writer waits for more rows before writing a partial batch."""
    return max(0.0, float(_get("AI_LEDGER_FLUSH_INTERVAL", 0.2)))


def ledger_flush_timeout() -> float:
    """How long `usage.flush()` (and the exit/SIGTERM flush) waits for the writer."""
    return float(_get("AI_LEDGER_FLUSH_TIMEOUT", 30.0))


_redis_url: str | None = None


def redis_url() -> str:
    """The shared Redis (REDIS_URL): when set, ledger rows are pushed there and drained by any process.

    Read once (every ledger hand-off asks), and again after a settings change."""
    global _redis_url
    if _redis_url is None:
        _redis_url = str(_get("REDIS_URL", "") or "")
    return _redis_url


_LEDGER_QUEUES = ("local", "redis")
_ledger_queue: str | None = None


def ledger_queue() -> str:
    """How a call's ledger rows leave its process (`AI_LEDGER_QUEUE`): `local` (the default) or `redis`.

    `local`: journaled to this process's file and written by its own writer thread in batches; a killed
    process's journal is written by the next one on the machine. `redis` (needs REDIS_URL) also pushes
    each call's rows onto a shared Redis list that any process drains, for web machines whose disk does
    not outlive them: one more round trip per call and a drainer, so only where that is the case."""
    global _ledger_queue
    if _ledger_queue is None:
        value = str(_get("AI_LEDGER_QUEUE", "local") or "local").strip().lower()
        if value not in _LEDGER_QUEUES:
            raise ImproperlyConfigured(f"AI_LEDGER_QUEUE must be one of {', '.join(_LEDGER_QUEUES)}; got {value!r}.")
        if value == "redis" and not redis_url():
            raise ImproperlyConfigured("AI_LEDGER_QUEUE=redis needs REDIS_URL (the shared list lives there).")
        _ledger_queue = value
    return _ledger_queue


# -- observability (integrations.ai.observability; docs/observability.md) ---------------------------
_OTEL_EXPORTERS = ("otlp", "console", "none")


def _otel_exporter(signal: str) -> str:
    """`otlp`, `console` or `none` for traces or metrics: OTEL_<SIGNAL>_EXPORTER, else `otlp` when an OTLP
    endpoint is set for it, else `none` (nothing is exported unless the deployment asks)."""
    env = os.environ
    explicit = env.get(f"OTEL_{signal}_EXPORTER", "").strip().lower()
    if explicit:
        if explicit not in _OTEL_EXPORTERS:
            raise ImproperlyConfigured(
                f"OTEL_{signal}_EXPORTER must be one of {', '.join(_OTEL_EXPORTERS)} "
                f"(Panel ships the OTLP HTTP exporter); got {explicit!r}."
            )
        return explicit
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
    return "otlp" if endpoint else "none"


def otel_environment() -> dict[str, str]:
    """What the standard OTEL_* variables ask of Panel; the SDK's exporters read the rest themselves."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return {"traces": "none", "metrics": "none"}
    for name in (
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    ):
        protocol = env.get(name, "").strip()
        if protocol and protocol != "http/protobuf":
            raise ImproperlyConfigured(
                f"{name} must be http/protobuf (Panel ships the OTLP HTTP exporter; point "
                f"it at the collector's port 4318); got {protocol!r}."
            )
    return {
        "traces": _otel_exporter("TRACES"),
        "metrics": _otel_exporter("METRICS"),
        "service_name": env.get("OTEL_SERVICE_NAME", ""),
        "capture_content": env.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").strip().lower(),
    }


def metrics_token() -> str:
    """The bearer token `/metrics` asks for (AI_METRICS_TOKEN); empty: no token accepted."""
    return str(_get("AI_METRICS_TOKEN", "") or "")


def metrics_allowlist() -> tuple[str, ...]:
    """Client addresses or CIDR ranges `/metrics` answers without a token (AI_METRICS_ALLOWLIST)."""
    value = _get("AI_METRICS_ALLOWLIST", ()) or ()
    if isinstance(value, str):
        value = value.split(",")
    return tuple(str(entry).strip() for entry in value if str(entry).strip())


def metrics_enabled() -> bool:
    """Prometheus metrics are recorded and served only when `/metrics` has a way in."""
    return bool(metrics_token() or metrics_allowlist())


def prometheus_multiproc_dir() -> str:
    """PROMETHEUS_MULTIPROC_DIR (the gunicorn config sets it): workers' metrics are kept in files there."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def log_format() -> str:
    """`text` (default) or `json`: JSON lines, and one line per AI call on `integrations.ai.calls`."""
    value = str(_get("AI_LOG_FORMAT", "text") or "text").strip().lower()
    if value not in ("text", "json"):
        raise ImproperlyConfigured(f"AI_LOG_FORMAT must be text or json; got {value!r}.")
    return value


def ready_ledger_backlog() -> int:
    """Ledger entries waiting (this process's queue plus the shared Redis list) above which `/readyz` fails."""
    value = _get("AI_READY_LEDGER_BACKLOG", None)
    return int(value) if value not in (None, "") else ledger_queue_size()
