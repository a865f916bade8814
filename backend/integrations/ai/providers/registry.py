"""The provider registry: the one list every other list of providers is derived from.

Each provider is a `ProviderSpec` — its name, label, class, environment prefix, defaults, the
shape of its keys (for redaction), whether it needs a key, whether model ids are mapped from
logical names or passed through, and its auto-detection rank. The factory, the model mapper, the
settings, the admin forms, `ai_test` and key redaction all read it. A deployment adds a provider
with one module and one dotted path in `AI_PROVIDER_SPECS` (as django-anymail and wagtail-ai do
with backends): no migration, no edit of this package.

Knows nothing of Django; `conf.py` loads the setting's dotted paths.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from .errors import UnknownProvider, register_key_pattern

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,19}")  # provider names and named endpoints' names


@dataclass(frozen=True)
class ProviderSpec:
    name: str  # the id used in settings, mappings, the ledger: lowercase, no spaces
    label: str  # for people: "OpenRouter"
    class_path: str  # dotted path to the BaseProvider subclass
    env_prefix: str  # OPENAI -> OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_DEFAULT_MODEL
    default_base_url: str
    default_model: str
    key_pattern: str = ""  # a regex matching this vendor's keys, redacted wherever text leaves us
    key_required: bool = True
    model_ids: Literal["mapped", "passthrough"] = "mapped"
    auto_rank: int | None = None  # lower is preferred by AI_PROVIDER=auto; None: never auto-detected
    serves_any_model: bool = False  # a router (OpenRouter): once chosen, it serves every model
    vendor: str = ""  # the model family it serves directly, as vendor/model ids name it (`openai/gpt-4o`)
    # bare model-id prefixes of that family (`gpt`, `o1` for openai): how `claude-3-haiku` is known to be
    # anthropic's, for routing by model name and for refusing another family's model
    model_prefixes: tuple[str, ...] = ()
    named_instances: bool = False  # configured as named endpoints ("ollama", "vllm"), several per site

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"Provider name {self.name!r}: 1-20 lowercase letters, digits, _ or -.")

    def provider_class(self) -> type[Any]:
        module_name, _, attr = self.class_path.rpartition(".")
        return getattr(importlib.import_module(module_name), attr)


BUILTIN = (
    ProviderSpec(
        name="openrouter",
        label="OpenRouter",
        class_path="integrations.ai.providers.openrouter_provider.OpenRouterProvider",
        env_prefix="OPENROUTER",
        default_base_url="https://openrouter.ai/api/v1",
        default_model="openai/gpt-4o-mini",
        key_pattern=r"sk-or-[A-Za-z0-9_\-]{8,}",
        auto_rank=10,
        serves_any_model=True,
    ),
    ProviderSpec(
        name="openai",
        label="OpenAI",
        class_path="integrations.ai.providers.openai_provider.OpenAIProvider",
        env_prefix="OPENAI",
        default_base_url="https://api.openai.com/v1",
        default_model="gpt-4o-mini",
        key_pattern=r"sk-(?:proj-)?[A-Za-z0-9_\-]{8,}",
        auto_rank=20,
        vendor="openai",
        model_prefixes=("gpt", "text-embedding", "chatgpt", "o1", "o3", "o4"),
    ),
    ProviderSpec(
        name="anthropic",
        label="Anthropic",
        class_path="integrations.ai.providers.anthropic_provider.AnthropicProvider",
        env_prefix="ANTHROPIC",
        default_base_url="https://api.anthropic.com",
        default_model="claude-3-5-haiku",
        key_pattern=r"sk-ant-[A-Za-z0-9_\-]{8,}",
        auto_rank=30,
        vendor="anthropic",
        model_prefixes=("claude",),
    ),
    ProviderSpec(
        name="openai_compatible",
        label="OpenAI-compatible endpoint",
        class_path="integrations.ai.providers.openai_compatible_provider.OpenAICompatibleProvider",
        env_prefix="OPENAI_COMPATIBLE",
        default_base_url="",
        default_model="",
        key_required=False,
        model_ids="passthrough",
        named_instances=True,
    ),
)

_specs: dict[str, ProviderSpec] = {}
_lock = threading.Lock()


def register(spec: ProviderSpec) -> ProviderSpec:
    """Add (or replace) a provider; its key shape joins redaction at once."""
    with _lock:
        _specs[spec.name] = spec
    if spec.key_pattern:
        register_key_pattern(spec.key_pattern)
    return spec


def unregister(name: str) -> None:
    with _lock:
        _specs.pop(name, None)


def load(paths: Iterable[str]) -> list[ProviderSpec]:
    """Register the specs named by dotted paths (a `ProviderSpec`, or a provider class with a `spec`)."""
    loaded = []
    for path in paths:
        module_name, _, attr = path.rpartition(".")
        try:
            target = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise UnknownProvider(f"AI_PROVIDER_SPECS: cannot import {path!r} ({exc}).") from None
        spec = getattr(target, "spec", target)
        if not isinstance(spec, ProviderSpec):
            raise UnknownProvider(f"AI_PROVIDER_SPECS: {path!r} is not a ProviderSpec nor a class with one.")
        loaded.append(register(spec))
    return loaded


def get(name: str) -> ProviderSpec:
    spec = _specs.get(name)
    if spec is None:
        raise UnknownProvider(f"Unknown provider {name!r}; choose one of {', '.join(names())}.")
    return spec


def find(name: str) -> ProviderSpec | None:
    return _specs.get(name)


def specs() -> list[ProviderSpec]:
    return list(_specs.values())


def names() -> list[str]:
    return list(_specs)


def direct_names() -> list[str]:
    """Providers configured once per site/deployment (not as named endpoint instances)."""
    return [s.name for s in _specs.values() if not s.named_instances]


def auto_order() -> list[str]:
    ranked = [s for s in _specs.values() if s.auto_rank is not None]
    return [s.name for s in sorted(ranked, key=lambda s: s.auto_rank or 0)]


def label(name: str) -> str:
    spec = _specs.get(name)
    return spec.label if spec is not None else name


def choices() -> list[tuple[str, str]]:
    """(name, label) for model/form choices: a callable, so a new provider needs no migration."""
    return [(s.name, s.label) for s in _specs.values()]


def for_vendor(vendor: str) -> ProviderSpec | None:
    return next((s for s in _specs.values() if s.vendor == vendor), None)


for _spec in BUILTIN:
    register(_spec)
