"""A site's AI configuration as an immutable snapshot, cached so the hot path makes no query.

Snapshots are rebuilt when a version counter in the Django cache moves: saving a site's
settings bumps that site's counter, saving a global mapping bumps the global one. With a shared
cache (Redis) every app process sees the bump; reading the counter is a cache hit, not a query.

Outages: while the shared cache is unreachable (`panel.cache.ResilientRedisCache.degraded`) a snapshot is kept
as it is; while the database is, a site's snapshot is kept too (a warm site goes on serving), and only a site this
process never loaded fails.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from django.core.signals import setting_changed

from integrations.ai.guardrails.settings import GuardrailSettings
from integrations.ai.ports import Price, SiteRecord, store
from integrations.ai.pricing import PriceBook
from integrations.ai.providers import registry
from integrations.ai.providers.base import ProviderConfig
from integrations.ai.runtime.conf import (
    deployment_endpoints,
    endpoint_config,
    endpoint_free,
    outbound_policy,
    settings_check_interval,
    settings_config,
)
from integrations.ai.runtime.shared_cache import cache
from integrations.ai.sites.callers import EditorLimits
from integrations.ai.sites.policy import SitePolicy

GLOBAL_VERSION_KEY = "integrations.ai:version:global"
logger = logging.getLogger("integrations.ai")


def _site_version_key(site_id: int) -> str:
    return f"integrations.ai:version:site:{site_id}"


@dataclass(frozen=True)
class SiteSnapshot:
    site_id: int | None
    enabled: bool = False
    provider_type: str = "auto"
    # Configs built from the site's own keys (source "site"); a provider absent here has no site key.
    site_configs: dict[str, ProviderConfig] = field(default_factory=dict)
    # Non-secret preferences that also apply when the deployment-wide key is used.
    preferences: dict[str, dict[str, str]] = field(default_factory=dict)
    mappings: dict[str, dict[str, str]] = field(default_factory=dict)
    fallback_chain: tuple[tuple[str, str], ...] = ()
    openrouter_options: dict[str, object] = field(default_factory=dict)
    monthly_budget: Decimal | None = None
    # Model/data policy and rate limits (policy.py, ratelimit.py); they hold even when the record is disabled.
    policy: SitePolicy = field(default_factory=SitePolicy)
    # Guardrails run before and after each call (integrations/ai/guardrails); they hold even when disabled.
    guardrails: GuardrailSettings = field(default_factory=GuardrailSettings)
    # how (provider, model id) is priced: ModelPrice overrides, free endpoints, the genai-prices catalogue
    prices: PriceBook = field(default_factory=PriceBook)
    version: tuple[int, int] = (0, 0)
    # Named OpenAI-compatible endpoints this site can use (deployment-wide and its own): name -> kind.
    instances: dict[str, str] = field(default_factory=dict)
    # Each editor's quota on this site (`EditorQuota` rows resolved per user id; callers.EditorLimits)
    editor_quotas: dict[int, EditorLimits] = field(default_factory=dict)
    _resolved: dict[str, ProviderConfig] = field(default_factory=dict, repr=False, compare=False)
    # Memo of the factory's decisions for this snapshot: dropped with it when settings change.
    providers: dict[tuple, Any] = field(default_factory=dict, repr=False, compare=False)

    def names(self) -> list[str]:
        """Every provider name this site could use: the registry's direct providers, then named endpoints."""
        return [*registry.direct_names(), *self.instances]

    def kind_of(self, name: str) -> str | None:
        """The registered kind serving `name` (itself for a direct provider), or None if unknown."""
        if name in self.instances:
            return self.instances[name]
        return name if registry.find(name) is not None else None

    def usable(self) -> set[str]:
        """Providers this site can call now: with a key (its own or the deployment's), or needing none."""
        usable = set()
        for name in self.names():
            config = self.config_for(name)
            spec = registry.get(self.kind_of(name) or name)
            if config.api_key or (not spec.key_required and config.base_url):
                usable.add(name)
        return usable

    def config_for(self, provider: str) -> ProviderConfig:
        """The site's config for `provider`, else the deployment's (with the site's non-secret prefs)."""
        config = self._resolved.get(provider)
        if config is None:
            if provider in self.site_configs:
                config = self.site_configs[provider]
            elif provider in self.instances:
                config = replace(endpoint_config(provider), site_id=self.site_id)
            else:
                prefs: dict[str, Any] = {k: v for k, v in self.preferences.get(provider, {}).items() if v}
                config = replace(settings_config(provider), site_id=self.site_id, **prefs)
            self._resolved[provider] = config
        return config


_snapshots: dict[int | None, SiteSnapshot] = {}
_checked_at: dict[int | None, float] = {}
_lock = threading.Lock()


# How long a snapshot is trusted before the shared version counters are read again
# (conf.settings_check_interval): saves in this process invalidate at once through signals; the
# interval bounds how stale another process's save can look. 0 reads the counters on every call.


def _versions(site_id: int | None) -> tuple[int, int]:
    keys = [GLOBAL_VERSION_KEY] + ([_site_version_key(site_id)] if site_id else [])
    values = cache.get_many(keys)
    return (
        int(values.get(GLOBAL_VERSION_KEY, 0)),
        int(values.get(_site_version_key(site_id), 0)) if site_id else 0,
    )


def get_snapshot(site_id: int | None) -> SiteSnapshot:
    snap = _snapshots.get(site_id)
    now = time.monotonic()
    if snap is not None and now - _checked_at.get(site_id, 0.0) < settings_check_interval():
        return snap
    version = _versions(site_id)
    if snap is not None and getattr(cache, "degraded", False):
        version = snap.version  # the shared cache is unreachable (panel.cache): its versions are unknown
    if snap is None or snap.version != version:
        snap = _rebuild(site_id, version, snap)
    with _lock:
        _snapshots[site_id] = snap
        _checked_at[site_id] = now
    return snap


_database_down = False


def _rebuild(site_id: int | None, version: tuple[int, int], stale: SiteSnapshot | None) -> SiteSnapshot:
    """A fresh snapshot; while the database is unreachable, the one this process has (a warm site keeps
    serving through an outage), logged once per outage. A cold site raises the database's error."""
    global _database_down
    try:
        snap = _build(site_id, version)
    except Exception as exc:
        if stale is None or not store().is_outage(exc):
            raise
        if not _database_down:
            _database_down = True
            logger.warning("database unreachable (%s): serving sites from their cached settings", type(exc).__name__)
        return stale
    if _database_down:
        _database_down = False
        logger.warning("database reachable again: site settings are re-read")
    return snap


def _bump(key: str) -> None:
    if not cache.add(key, 1, timeout=None):
        try:
            cache.incr(key)
        except ValueError:  # evicted between add and incr
            cache.set(key, 1, timeout=None)


def invalidate_site(site_id: int | None) -> None:
    """Drop cached snapshots (and providers) of one site, or of every site when `site_id` is None."""
    _bump(_site_version_key(site_id) if site_id else GLOBAL_VERSION_KEY)
    with _lock:
        if site_id:
            _snapshots.pop(site_id, None)
        else:
            _snapshots.clear()


def clear_snapshots(**kwargs: object) -> None:
    with _lock:
        _snapshots.clear()
        _checked_at.clear()


setting_changed.connect(clear_snapshots, dispatch_uid="integrations.ai.sites.site_config")


def _build(site_id: int | None, version: tuple[int, int]) -> SiteSnapshot:
    records = store()
    overrides = records.prices()
    mappings = records.mappings(site_id)
    record = records.site_record(site_id) if site_id else None
    if record is None or not record.enabled:
        budget = record.monthly_budget if record is not None else None  # a cap holds even when disabled
        return SiteSnapshot(
            site_id=site_id,
            mappings=mappings,
            prices=_price_book(overrides, {}),
            monthly_budget=budget,
            version=version,
            instances=deployment_endpoints(),
            policy=SitePolicy.from_record(record),
            guardrails=GuardrailSettings.from_record(record),
            editor_quotas=_editor_quotas(site_id),
        )

    site_configs, preferences, instances = _site_credentials(record, site_id)
    prices = _price_book(overrides, site_configs)
    return SiteSnapshot(
        site_id=site_id,
        enabled=True,
        instances=instances,
        provider_type=record.provider_type,
        site_configs=site_configs,
        preferences=preferences,
        mappings=mappings,
        fallback_chain=tuple((e["provider"], e.get("model") or "") for e in record.fallback_chain or ()),
        openrouter_options={
            k: v
            for k, v in (("models", record.openrouter_fallback_models), ("provider", record.openrouter_routing))
            if v
        },
        monthly_budget=record.monthly_budget,
        policy=SitePolicy.from_record(record),
        guardrails=GuardrailSettings.from_record(record),
        prices=prices,
        version=version,
        editor_quotas=_editor_quotas(site_id),
    )


def _editor_quotas(site_id: int | None) -> dict[int, EditorLimits]:
    """Each editor's quota on the site, resolved per user by the store (`Store.editor_quotas`)."""
    if not site_id:
        return {}
    return {user_id: EditorLimits(*quota) for user_id, quota in store().editor_quotas(site_id).items()}


def _price_book(overrides: dict[tuple[str, str], Price], site_configs: dict[str, ProviderConfig]) -> PriceBook:
    """The site's price resolution (`pricing`): the overrides, and its named endpoints' URLs for the
    catalogue; an endpoint is free only when the deployment marked it so (a site's own row of that name
    keeps it only at the deployment's URL)."""
    endpoints: dict[str, tuple[str, str, bool]] = {}
    for name, kind in deployment_endpoints().items():
        config = endpoint_config(name)
        endpoints[name] = (kind, config.base_url, endpoint_free(name))
    for name, config in site_configs.items():
        if config.name:  # a named endpoint row of the site
            shared = endpoints.get(name)
            free = bool(shared and shared[2] and shared[1] == config.base_url)
            endpoints[name] = (config.kind, config.base_url, free)
    return PriceBook(overrides, endpoints)


def _site_credentials(
    record: SiteRecord, site_id: int | None
) -> tuple[dict[str, ProviderConfig], dict[str, dict[str, str]], dict[str, str]]:
    """The site's enabled credential rows as configs: (site_configs, preferences, instances).

    A direct provider's row with a key becomes a "site" config; its default model is a preference
    that also applies when the deployment's key is used. A named endpoint's row (`ollama`) becomes
    a config of its own and joins the deployment's endpoints in `instances`.
    """
    rows = {row.label_name: row for row in record.credentials if row.enabled}
    site_configs: dict[str, ProviderConfig] = {}
    preferences: dict[str, dict[str, str]] = {}
    instances = deployment_endpoints()
    policy = outbound_policy()
    for provider in registry.direct_names():
        row = rows.get(provider)
        prefs: dict[str, Any] = {"default_model": row.default_model if row is not None else ""}
        if provider == "openrouter":
            prefs["http_referer"] = record.openrouter_http_referer
            prefs["app_name"] = record.openrouter_app_name
        preferences[provider] = prefs
        if row is None or not row.api_key or row.provider != provider:
            continue
        base = settings_config(provider)
        site_configs[provider] = replace(
            base,
            api_key=row.api_key,
            # A site's base URL applies only to the site's own key, so a site can never send the
            # deployment's key to an address of its choosing; and every connection to it passes
            # the outbound policy (providers.outbound), so it cannot reach the server's network.
            base_url=row.base_url or base.base_url,
            outbound=policy if row.base_url and row.base_url != base.base_url else None,
            source="site",
            site_id=site_id,
            **{k: v for k, v in prefs.items() if v},
        )
    for name, row in rows.items():
        spec = registry.find(row.provider)
        if spec is None or not spec.named_instances or not row.base_url:
            continue  # a provider no longer registered, or a row without its address
        shared = name in instances  # the site's row overrides a deployment endpoint of the same name
        base = endpoint_config(name)  # timeouts and retries; for a shared name, its URL and model too
        site_configs[name] = replace(
            base,
            # Only the row's own key, never the deployment endpoint's, goes to the row's URL.
            api_key=row.api_key or "",
            base_url=row.base_url,
            default_model=row.default_model or base.default_model or spec.default_model,
            kind=spec.name,
            name=name,
            source="site",
            site_id=site_id,
            outbound=None if shared and row.base_url == base.base_url else policy,
        )
        instances[name] = spec.name
    return site_configs, preferences, instances
