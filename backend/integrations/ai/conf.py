"""Deployment-wide AI settings, read from Django settings in this one place.

settings.py fills them from the environment (django-environ); everything in the AI layer asks
this module, so a test's `settings` override is seen everywhere at once.
"""

from __future__ import annotations

import re
import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from .providers.base import ProviderConfig
from .providers.outbound import OutboundPolicy

PROVIDER_TYPES = ("auto", "openrouter", "openai", "anthropic")

_DEFAULTS = {
    "openrouter": {"base_url": "https://openrouter.ai/api/v1", "default_model": "openai/gpt-4o-mini"},
    "openai": {"base_url": "https://api.openai.com/v1", "default_model": "gpt-4o-mini"},
    "anthropic": {"base_url": "https://api.anthropic.com", "default_model": "claude-3-5-haiku"},
}


def _get(name: str, default: object = "") -> object:
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
    return _get("SITE_ID", None)  # type: ignore[return-value]


def outbound_allowlist() -> tuple[str, ...]:
    """Hosts, host:port, IPs or CIDR ranges a site's base URL may reach beyond public https (superuser-set)."""
    value = _get("AI_OUTBOUND_ALLOWLIST", ()) or ()
    if isinstance(value, str):
        value = value.split(",")
    return tuple(str(entry).strip() for entry in value if str(entry).strip())  # type: ignore[union-attr]


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
    config = _configs.get(provider)
    if config is None:
        config = _build(provider)
        with _lock:
            _configs[provider] = config
    return config


def _clear(**kwargs: object) -> None:
    with _lock:
        _configs.clear()


setting_changed.connect(_clear, dispatch_uid="integrations.ai.conf")


def _build(provider: str) -> ProviderConfig:
    defaults = _DEFAULTS[provider]
    return ProviderConfig(
        api_key=str(_get(setting_name(provider, "API_KEY")) or ""),
        base_url=str(_get(setting_name(provider, "BASE_URL")) or defaults["base_url"]),
        default_model=str(_get(setting_name(provider, "DEFAULT_MODEL")) or defaults["default_model"]),
        timeout=float(_get("AI_REQUEST_TIMEOUT", 60.0)),
        max_retries=int(_get("AI_MAX_RETRIES", 2)),
        retry_backoff=float(_get("AI_RETRY_BACKOFF", 0.5)),
        retry_after_cap=float(_get("AI_RETRY_AFTER_CAP", 30.0)),
        http_referer=str(_get("OPENROUTER_HTTP_REFERER")) if provider == "openrouter" else "",
        app_name=str(_get("OPENROUTER_APP_NAME", "Panel CMS")) if provider == "openrouter" else "",
        source="settings",
        extra={"api_version": str(_get("ANTHROPIC_API_VERSION", "2023-06-01"))} if provider == "anthropic" else {},
    )


def ledger_queue_size() -> int:
    """Calls the in-process ledger writer holds before callers write their own rows (back-pressure)."""
    return max(1, int(_get("AI_LEDGER_QUEUE_SIZE", 10000)))


def ledger_batch_size() -> int:
    return max(1, int(_get("AI_LEDGER_BATCH_SIZE", 500)))


def ledger_flush_interval() -> float:
    """Seconds the writer waits for more rows before writing a partial batch."""
    return max(0.0, float(_get("AI_LEDGER_FLUSH_INTERVAL", 0.2)))


def ledger_flush_timeout() -> float:
    """How long `usage.flush()` (and the exit/SIGTERM flush) waits for the writer."""
    return float(_get("AI_LEDGER_FLUSH_TIMEOUT", 30.0))


def redis_url() -> str:
    """The shared Redis (REDIS_URL): when set, ledger rows are pushed there and drained by any process."""
    return str(_get("REDIS_URL", "") or "")
