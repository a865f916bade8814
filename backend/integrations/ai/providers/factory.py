"""Which provider serves a request, and with whose key.

Order: an explicit `provider_type` > the site's record > `AI_PROVIDER` > auto-detect (OpenRouter
first, then OpenAI, then Anthropic). A provider that is asked for but has no key raises
`ProviderNotConfigured` naming what to set, never a silent None. Providers are cached per
(site, provider, config), so the SDK client and its connection pool are reused.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from ..conf import preferred_provider, setting_name
from ..context import site_id_of
from ..site_config import SiteSnapshot, get_snapshot
from .base import BaseProvider, ProviderConfig
from .errors import ProviderNotConfigured, UnknownProvider
from .model_mapper import PROVIDERS, ModelMapper, vendor_of

logger = logging.getLogger("integrations.ai")

AUTO_ORDER = ("openrouter", "openai", "anthropic")


def provider_class(provider_type: str) -> type[BaseProvider]:
    if provider_type == "openrouter":
        from .openrouter_provider import OpenRouterProvider

        return OpenRouterProvider
    if provider_type == "openai":
        from .openai_provider import OpenAIProvider

        return OpenAIProvider
    if provider_type == "anthropic":
        from .anthropic_provider import AnthropicProvider

        return AnthropicProvider
    raise UnknownProvider(f"Unknown provider {provider_type!r}; choose one of {', '.join(PROVIDERS)}.")


@dataclass(frozen=True)
class Resolution:
    """The outcome of choosing: which provider, why (`source`), and the config it runs with."""

    provider_type: str
    source: str  # "explicit" | "site" | "settings" | "auto"
    config: ProviderConfig


_providers: dict[tuple, BaseProvider] = {}
_mappers: dict[tuple, ModelMapper] = {}
_lock = threading.Lock()


class ProviderFactory:
    @classmethod
    def resolve(cls, provider_type: str | None = None, site: Any = None) -> Resolution:
        snapshot = get_snapshot(site_id_of(site))
        usable = {p for p in PROVIDERS if snapshot.config_for(p).api_key}

        if provider_type:
            provider_type = provider_type.strip().lower()
            provider_class(provider_type)  # raises UnknownProvider
            if provider_type not in usable:
                raise cls._not_configured(provider_type, snapshot)
            return Resolution(provider_type, "explicit", snapshot.config_for(provider_type))

        if snapshot.enabled:
            site_keys = set(snapshot.site_configs)
            if snapshot.provider_type in PROVIDERS and snapshot.provider_type in usable:
                return Resolution(snapshot.provider_type, "site", snapshot.config_for(snapshot.provider_type))
            if snapshot.provider_type == "auto":
                for candidate in AUTO_ORDER:
                    if candidate in site_keys:
                        return Resolution(candidate, "site", snapshot.config_for(candidate))
            logger.info("site %s has no usable AI key for %s; using deployment settings",
                        snapshot.site_id, snapshot.provider_type)

        preferred = preferred_provider()
        if preferred != "auto":
            provider_class(preferred)
            if preferred not in usable:
                raise cls._not_configured(preferred, snapshot)
            return Resolution(preferred, "settings", snapshot.config_for(preferred))

        for candidate in AUTO_ORDER:
            if candidate in usable:
                return Resolution(candidate, "auto", snapshot.config_for(candidate))
        raise ProviderNotConfigured(
            "No AI provider is configured: set OPENROUTER_API_KEY, OPENAI_API_KEY or ANTHROPIC_API_KEY, "
            "or add a key in the site's AI provider settings."
        )

    @classmethod
    def create_provider(cls, provider_type: str | None = None, site: Any = None) -> BaseProvider:
        resolution = cls.resolve(provider_type, site)
        return cls._provider(resolution, get_snapshot(resolution.config.site_id))

    @classmethod
    def get_provider_for_model(cls, model: str, site: Any = None) -> BaseProvider:
        """A `vendor/model` id goes to OpenRouter; gpt*/o1/o3 to OpenAI and claude* to Anthropic when
        that key is set, else OpenRouter; other known families to OpenRouter; the rest to the default."""
        snapshot = get_snapshot(site_id_of(site))
        usable = {p for p in PROVIDERS if snapshot.config_for(p).api_key}
        vendor = vendor_of(model)
        if "/" in model:
            if "openrouter" in usable:
                return cls.create_provider("openrouter", site)
            if vendor in usable:  # openai/gpt-4o without OpenRouter: the direct provider can serve it
                return cls.create_provider(vendor, site)
            raise cls._not_configured("openrouter", snapshot)
        if vendor in ("openai", "anthropic"):
            if vendor in usable:
                return cls.create_provider(vendor, site)
            if "openrouter" in usable:
                return cls.create_provider("openrouter", site)
            raise cls._not_configured(vendor, snapshot)
        if vendor is not None and "openrouter" in usable:  # gemini-…, llama-…: only OpenRouter serves them
            return cls.create_provider("openrouter", site)
        return cls.create_provider(None, site)

    @classmethod
    def mapper_for(cls, snapshot: SiteSnapshot) -> ModelMapper:
        key = (snapshot.site_id, snapshot.version)
        mapper = _mappers.get(key)
        if mapper is None:
            mapper = ModelMapper(snapshot.mappings)
            with _lock:
                _mappers[key] = mapper
        return mapper

    @classmethod
    def _provider(cls, resolution: Resolution, snapshot: SiteSnapshot) -> BaseProvider:
        key = (resolution.provider_type, resolution.config.fingerprint, snapshot.site_id, snapshot.version)
        provider = _providers.get(key)
        if provider is None:
            provider = provider_class(resolution.provider_type)(resolution.config, cls.mapper_for(snapshot))
            provider.resolution = resolution
            with _lock:
                # Entries of this site from an older settings version can never be hit again.
                for stale in [k for k in _providers if k[2] == snapshot.site_id and k[3] != snapshot.version]:
                    del _providers[stale]
                for stale in [k for k in _mappers if k[0] == snapshot.site_id and k[1] != snapshot.version]:
                    del _mappers[stale]
                _providers[key] = provider
        return provider

    @staticmethod
    def _not_configured(provider_type: str, snapshot: SiteSnapshot) -> ProviderNotConfigured:
        where = " or add it in this site's AI provider settings" if snapshot.site_id else ""
        return ProviderNotConfigured(
            f"The {provider_type} provider has no API key: set {setting_name(provider_type, 'API_KEY')}{where}.",
            provider=provider_type,
        )


def clear_provider_cache() -> None:
    with _lock:
        _providers.clear()
        _mappers.clear()
