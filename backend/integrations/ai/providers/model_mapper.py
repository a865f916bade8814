"""One logical model name, a different id on every provider.

Callers say `gpt-4o` or `claude-3-5-sonnet`; OpenRouter wants `openai/gpt-4o` and
`anthropic/claude-3.5-sonnet`, Anthropic wants a dated id. The built-in table below covers the
current models; the `ModelMapping` table in the database (per site or global) overrides and
extends it without a deploy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from . import registry
from .errors import ModelNotFound

# logical name -> {provider: provider-native id}
BUILTIN_MODELS: dict[str, dict[str, str]] = {
    "gpt-4o": {"openai": "gpt-4o", "openrouter": "openai/gpt-4o"},
    "gpt-4o-mini": {"openai": "gpt-4o-mini", "openrouter": "openai/gpt-4o-mini"},
    "gpt-4.1": {"openai": "gpt-4.1", "openrouter": "openai/gpt-4.1"},
    "gpt-4.1-mini": {"openai": "gpt-4.1-mini", "openrouter": "openai/gpt-4.1-mini"},
    "gpt-4.1-nano": {"openai": "gpt-4.1-nano", "openrouter": "openai/gpt-4.1-nano"},
    "o1": {"openai": "o1", "openrouter": "openai/o1"},
    "o3-mini": {"openai": "o3-mini", "openrouter": "openai/o3-mini"},
    "gpt-3.5-turbo": {"openai": "gpt-3.5-turbo", "openrouter": "openai/gpt-3.5-turbo"},
    "claude-3-5-sonnet": {"anthropic": "claude-3-5-sonnet-20241022", "openrouter": "anthropic/claude-3.5-sonnet"},
    "claude-3-5-haiku": {"anthropic": "claude-3-5-haiku-20241022", "openrouter": "anthropic/claude-3.5-haiku"},
    "claude-3-7-sonnet": {"anthropic": "claude-3-7-sonnet-20250219", "openrouter": "anthropic/claude-3.7-sonnet"},
    "claude-sonnet-4": {"anthropic": "claude-sonnet-4-20250514", "openrouter": "anthropic/claude-sonnet-4"},
    "claude-opus-4": {"anthropic": "claude-opus-4-20250514", "openrouter": "anthropic/claude-opus-4"},
    "claude-3-opus": {"anthropic": "claude-3-opus-20240229", "openrouter": "anthropic/claude-3-opus"},
    "claude-3-haiku": {"anthropic": "claude-3-haiku-20240307", "openrouter": "anthropic/claude-3-haiku"},
    # embedding models (AIService.embed)
    "text-embedding-3-small": {"openai": "text-embedding-3-small", "openrouter": "openai/text-embedding-3-small"},
    "text-embedding-3-large": {"openai": "text-embedding-3-large", "openrouter": "openai/text-embedding-3-large"},
    "text-embedding-ada-002": {"openai": "text-embedding-ada-002", "openrouter": "openai/text-embedding-ada-002"},
}

# Families no registered provider serves directly, named as routers (OpenRouter) name them, so a
# router can be given `gemini-2.0-flash`. A registered provider's `model_prefixes` come first.
ROUTER_FAMILIES: tuple[tuple[str, str], ...] = (
    ("gemini", "google"),
    ("llama", "meta-llama"),
    ("mistral", "mistralai"),
)


def vendor_of(model: str) -> str | None:
    """The vendor a model id belongs to (`openai/x` -> openai, `claude-…` -> anthropic): the registered
    providers' `model_prefixes` (`ProviderSpec`), then the families only routers serve."""
    if "/" in model:
        return model.split("/", 1)[0]
    lowered = model.lower()
    for spec in registry.specs():
        for prefix in spec.model_prefixes:
            if lowered.startswith(prefix):
                return spec.vendor or spec.name
    for prefix, vendor in ROUTER_FAMILIES:
        if lowered.startswith(prefix):
            return vendor
    return None


_ANTHROPIC_SUFFIX = re.compile(r"-(\d{8}|latest)$")  # a dated snapshot or the -latest alias
_ANTHROPIC_VERSION = re.compile(r"(?<=-)(\d)-(\d)(?=-|$)")  # 4-5 in claude-sonnet-4-5


def router_id(vendor: str, model: str) -> str:
    """`model` as routers (OpenRouter) name it: `vendor/model`. Anthropic's own ids, what its clients (Claude
    Code) send, lose their date or `-latest` and dot their version: `claude-sonnet-4-6` is
    `anthropic/claude-sonnet-4.6`, `claude-haiku-4-5-20251001` is `anthropic/claude-haiku-4.5`; a rule, so a
    model released after this table needs no row."""
    if vendor == "anthropic":
        model = _ANTHROPIC_VERSION.sub(r"\1.\2", _ANTHROPIC_SUFFIX.sub("", model))
    return f"{vendor}/{model}"


def check_provider(provider: str) -> str:
    """`provider` if the registry knows it; UnknownProvider naming the choices otherwise."""
    return registry.get(provider).name


class ModelMapper:
    """Maps model names for one site: its own overrides, then global rows, then the built-ins.

    `overrides` is the {logical: {provider: id}} view of the database rows that apply; the
    factory passes it in so this class stays free of queries on the hot path.
    """

    def __init__(self, overrides: Mapping[str, Mapping[str, str]] | None = None) -> None:
        table: dict[str, dict[str, str]] = {name: dict(ids) for name, ids in BUILTIN_MODELS.items()}
        for name, ids in (overrides or {}).items():
            table.setdefault(name, {}).update(ids)
        self.table = table
        # native id (any provider) -> logical name, for translating one provider's id to another's.
        self._by_native: dict[str, str] = {}
        for name, ids in table.items():
            for native in ids.values():
                self._by_native.setdefault(native, name)

    def logical_name(self, model: str) -> str | None:
        if model in self.table:
            return model
        return self._by_native.get(model)

    def get_model_for_provider(self, model: str, provider_type: str) -> str:
        """The id `provider_type` knows `model` by; raises ModelNotFound when it cannot serve it."""
        return self.normalize_model_name(model, provider_type)

    def normalize_model_name(self, model: str, provider: str, passthrough: bool = False) -> str:
        """The id `provider` knows `model` by. `passthrough` (a named OpenAI-compatible endpoint):
        a mapped id if there is one, else the model as given."""
        spec = None if passthrough else registry.get(provider)
        model = (model or "").strip()
        if not model:
            raise ModelNotFound("No model given and the provider has no default model.", provider=provider)
        logical = self.logical_name(model)
        if logical is not None and provider in self.table[logical]:
            return self.table[logical][provider]
        if spec is None or spec.model_ids == "passthrough":
            return model
        vendor = vendor_of(model)
        if spec.serves_any_model:  # a router: vendor/model ids
            if "/" in model:
                return model
            if vendor is None:
                raise ModelNotFound(
                    f"{spec.label} needs a vendor/model id (e.g. openai/gpt-4o); {model!r} has no known vendor.",
                    provider=provider,
                )
            return router_id(vendor, model)
        own = spec.vendor or spec.name
        if vendor is not None and vendor != own:
            raise ModelNotFound(
                f"{model!r} is a {vendor} model; the {provider} provider cannot serve it. "
                "Use OpenRouter for it or pick a model of this provider.",
                provider=provider,
            )
        if "/" in model:
            bare = model.split("/", 1)[1]
            return self.normalize_model_name(bare, provider)
        return model

    def models_for(self, provider: str) -> list[tuple[str, str]]:
        """(logical name, native id) pairs this mapper knows for `provider`, sorted."""
        return sorted((name, ids[provider]) for name, ids in self.table.items() if provider in ids)
