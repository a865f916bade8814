"""Which provider serves a request, and with whose key (the gateway side of the provider registry).

Order: an explicit `provider_type` > the site's record > `AI_PROVIDER` > auto-detect (the
registry's `auto_rank`: OpenRouter, then OpenAI, then Anthropic). A provider that is asked for but
has no key raises `ProviderNotConfigured` naming what to set, never a silent None. Providers are
cached per settings snapshot of a site, and SDK clients per (provider, config), so clients and
their connection pools are reused across requests and threads. Every provider built here gets the
gateway's hooks (ledger, shared pauses, clock).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from integrations.ai.gateway.hooks import GATEWAY_HOOKS
from integrations.ai.providers import registry
from integrations.ai.providers.base import BaseProvider, ProviderConfig
from integrations.ai.providers.errors import AIProviderError, ProviderNotConfigured
from integrations.ai.providers.model_mapper import ModelMapper, vendor_of
from integrations.ai.runtime.conf import preferred_provider, setting_name
from integrations.ai.sites.context import site_id_of
from integrations.ai.sites.site_config import SiteSnapshot, get_snapshot

logger = logging.getLogger("integrations.ai")


def provider_class(provider_type: str, snapshot: SiteSnapshot | None = None) -> type[BaseProvider]:
    """The class serving `provider_type`: a registered kind, or a named endpoint of the snapshot."""
    kind = snapshot.kind_of(provider_type) if snapshot is not None else None
    return registry.get(kind or provider_type).provider_class()


@dataclass(frozen=True)
class Resolution:
    """The outcome of choosing: which provider, why (`source`), and the config it runs with."""

    provider_type: str
    source: str  # "explicit" | "site" | "settings" | "auto"
    config: ProviderConfig
    detected: bool = False  # picked by auto-detection (from the site's keys or the environment's)


class ProviderFactory:
    @classmethod
    def resolve(cls, provider_type: str | None = None, site: Any = None) -> Resolution:
        return cls._resolve(get_snapshot(site_id_of(site)), provider_type)

    @classmethod
    def _resolve(cls, snapshot: SiteSnapshot, provider_type: str | None) -> Resolution:
        usable = snapshot.usable()

        if provider_type:
            provider_type = provider_type.strip().lower()
            provider_class(provider_type, snapshot)  # raises UnknownProvider
            if provider_type not in usable:
                raise cls._not_configured(provider_type, snapshot)
            return Resolution(provider_type, "explicit", snapshot.config_for(provider_type))

        if snapshot.enabled:
            site_keys = set(snapshot.site_configs)
            if snapshot.provider_type != "auto" and snapshot.provider_type in usable:
                return Resolution(snapshot.provider_type, "site", snapshot.config_for(snapshot.provider_type))
            if snapshot.provider_type == "auto":
                for candidate in registry.auto_order():
                    if candidate in site_keys:
                        return Resolution(candidate, "site", snapshot.config_for(candidate), detected=True)
            logger.info(
                "site %s has no usable AI key for %s; using deployment settings",
                snapshot.site_id,
                snapshot.provider_type,
            )

        preferred = preferred_provider()
        if preferred != "auto":
            provider_class(preferred, snapshot)
            if preferred not in usable:
                raise cls._not_configured(preferred, snapshot)
            return Resolution(preferred, "settings", snapshot.config_for(preferred))

        for candidate in registry.auto_order():
            if candidate in usable:
                return Resolution(candidate, "auto", snapshot.config_for(candidate), detected=True)
        keys = ", ".join(f"{registry.get(n).env_prefix}_API_KEY" for n in registry.auto_order())
        raise ProviderNotConfigured(
            f"No AI provider is configured: set one of {keys}, or add a key in the site's AI provider settings."
        )

    @classmethod
    def create_provider(cls, provider_type: str | None = None, site: Any = None) -> BaseProvider:
        """The provider for the site, built once per settings snapshot (so its SDK client is reused)."""
        snapshot = get_snapshot(site_id_of(site))
        key = ("type", provider_type)
        provider = snapshot.providers.get(key)
        if provider is None:
            resolution = cls._resolve(snapshot, provider_type)
            provider = provider_class(resolution.provider_type, snapshot)(
                resolution.config, cls.mapper_for(snapshot), GATEWAY_HOOKS
            )
            provider.resolution = resolution
            snapshot.providers[key] = provider
        return provider

    @classmethod
    def get_provider_for_model(cls, model: str, site: Any = None) -> BaseProvider:
        """Routing by model name, for when the resolved provider can't serve the model: a `vendor/model`
        id goes to OpenRouter; gpt*/o1/o3 to OpenAI and claude* to Anthropic when that key is set, else
        OpenRouter; a model a site's OpenAI-compatible endpoint lists to that endpoint; other known families
        to OpenRouter; the rest to the default."""
        endpoint = cls.endpoint_for_model(model, site)  # a site's local server that lists it (not remembered)
        if endpoint is not None:
            return endpoint
        snapshot = get_snapshot(site_id_of(site))
        # remembered per snapshot by what decides it (a vendor prefix, a vendor), never by the model string:
        # a caller's arbitrary model names would each have been kept for the snapshot's life
        vendor = vendor_of(model)
        key = ("route", "/" in model, vendor)
        provider = snapshot.providers.get(key)
        if provider is None:
            provider = snapshot.providers[key] = cls._provider_for_model(snapshot, model, vendor, site)
        return provider

    @classmethod
    def _provider_for_model(cls, snapshot: SiteSnapshot, model: str, vendor: str | None, site: Any) -> BaseProvider:
        usable = snapshot.usable()
        routers = [n for n in registry.auto_order() if registry.get(n).serves_any_model and n in usable]
        direct = registry.for_vendor(vendor) if vendor else None
        if "/" in model:
            if routers:
                return cls.create_provider(routers[0], site)
            if direct is not None and direct.name in usable:  # openai/gpt-4o without a router: direct serves it
                return cls.create_provider(direct.name, site)
            raise cls._not_configured("openrouter", snapshot)
        if direct is not None:
            if direct.name in usable:
                return cls.create_provider(direct.name, site)
            if routers:
                return cls.create_provider(routers[0], site)
            raise cls._not_configured(direct.name, snapshot)
        if vendor is not None and routers:  # gemini-…, llama-…: only a router serves them
            return cls.create_provider(routers[0], site)
        return cls.create_provider(None, site)

    @classmethod
    def endpoint_for_model(cls, model: str, site: Any = None) -> BaseProvider | None:
        """The site's usable OpenAI-compatible endpoint (model ids go to it as written) that names `model`, a
        model no direct provider's prefix claims (`llama3.1`, `mistral`, `my-finetune`; not `gpt-4o`, not a
        router's `vendor/model`): as its default model, else in its own `GET /models` listing (cached a
        minute; an endpoint that cannot be listed now is passed over). None when none does. Not remembered per
        model: any string a caller sends would be kept (the providers and listings it reads are cached)."""
        vendor = vendor_of(model)
        if "/" in model or (vendor is not None and registry.for_vendor(vendor) is not None):
            return None
        snapshot = get_snapshot(site_id_of(site))
        endpoints: list[BaseProvider] = []
        for name in sorted(snapshot.usable()):
            spec = registry.find(snapshot.kind_of(name) or name)
            if spec is None or spec.model_ids != "passthrough":
                continue
            try:
                provider = cls.create_provider(name, site)
            except AIProviderError:
                continue
            if provider.config.default_model == model:
                return provider
            endpoints.append(provider)
        for provider in endpoints:
            try:
                if any(info.id == model for info in provider.get_available_models()):
                    return provider
            except AIProviderError:
                continue
        return None

    @classmethod
    def mapper_for_site(cls, site: Any = None) -> ModelMapper:
        """The model mapper a site's providers use (its own mappings over global ones)."""
        return cls.mapper_for(get_snapshot(site_id_of(site)))

    @classmethod
    def mapper_for(cls, snapshot: SiteSnapshot) -> ModelMapper:
        mapper = snapshot.providers.get(("mapper",))
        if mapper is None:
            mapper = snapshot.providers[("mapper",)] = ModelMapper(snapshot.mappings)
        return mapper

    @staticmethod
    def _not_configured(provider_type: str, snapshot: SiteSnapshot) -> ProviderNotConfigured:
        where = " or add it in this site's AI provider settings" if snapshot.site_id else ""
        spec = registry.find(snapshot.kind_of(provider_type) or provider_type)
        setting = f"{spec.env_prefix}_API_KEY" if spec is not None else setting_name(provider_type, "API_KEY")
        return ProviderNotConfigured(
            f"The {provider_type} provider has no API key: set {setting}{where}.",
            provider=provider_type,
        )
