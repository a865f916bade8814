"""Provider choice: explicit > site record > AI_PROVIDER > auto-detect (OpenRouter first)."""

from __future__ import annotations

import itertools

import pytest

from integrations.ai.gateway.factory import ProviderFactory
from integrations.ai.providers.errors import ProviderNotConfigured, UnknownProvider

KEYS = {"openrouter": "sk-or-v1-" + "1" * 48, "openai": "sk-proj-" + "2" * 48, "anthropic": "sk-ant-" + "3" * 48}
PROVIDERS = ("openrouter", "openai", "anthropic")
KEY_SETS = [set(c) for n in range(4) for c in itertools.combinations(PROVIDERS, n)]

pytestmark = pytest.mark.django_db


def configure(settings, present, ai_provider="auto"):
    for provider in PROVIDERS:
        setattr(settings, f"{provider.upper()}_API_KEY", KEYS[provider] if provider in present else "")
    settings.AI_PROVIDER = ai_provider


def expected_auto(present):
    return next((p for p in PROVIDERS if p in present), None)


@pytest.mark.parametrize("present", KEY_SETS, ids=lambda s: "+".join(sorted(s)) or "none")
@pytest.mark.parametrize("ai_provider", ["auto", *PROVIDERS])
def test_settings_priority_every_combination(ai_settings, present, ai_provider):
    configure(ai_settings, present, ai_provider)
    if ai_provider == "auto":
        want = expected_auto(present)
        if want is None:
            with pytest.raises(ProviderNotConfigured, match="No AI provider is configured"):
                ProviderFactory.create_provider()
            return
        resolution = ProviderFactory.resolve()
        assert (resolution.provider_type, resolution.source) == (want, "auto")
    elif ai_provider in present:
        resolution = ProviderFactory.resolve()
        assert (resolution.provider_type, resolution.source) == (ai_provider, "settings")
    else:
        with pytest.raises(ProviderNotConfigured, match=f"{ai_provider.upper()}_API_KEY"):
            ProviderFactory.create_provider()


@pytest.mark.parametrize("present", KEY_SETS, ids=lambda s: "+".join(sorted(s)) or "none")
@pytest.mark.parametrize("explicit", PROVIDERS)
def test_explicit_argument_beats_settings(ai_settings, present, explicit):
    configure(ai_settings, present, ai_provider=next(iter(set(PROVIDERS) - {explicit})))
    if explicit in present:
        provider = ProviderFactory.create_provider(explicit)
        assert provider.name == explicit
        assert provider.resolution.source == "explicit"
        assert provider.config.api_key == KEYS[explicit]
    else:
        with pytest.raises(ProviderNotConfigured, match=f"{explicit.upper()}_API_KEY"):
            ProviderFactory.create_provider(explicit)


def test_unknown_provider_is_a_typed_error(ai_settings):
    configure(ai_settings, set(PROVIDERS))
    with pytest.raises(UnknownProvider, match="choose one of openrouter, openai, anthropic"):
        ProviderFactory.create_provider("cohere")
    ai_settings.AI_PROVIDER = "cohere"
    with pytest.raises(UnknownProvider):
        ProviderFactory.create_provider()


@pytest.mark.parametrize(
    ("present", "model", "want"),
    [
        ({"openrouter", "openai", "anthropic"}, "openai/gpt-4o", "openrouter"),
        ({"openai"}, "openai/gpt-4o", "openai"),
        ({"openrouter", "openai"}, "gpt-4o", "openai"),
        ({"openrouter", "openai"}, "o3-mini", "openai"),
        ({"openrouter", "openai"}, "o1", "openai"),
        ({"openrouter"}, "gpt-4o", "openrouter"),
        ({"openrouter", "anthropic"}, "claude-3-5-sonnet", "anthropic"),
        ({"openrouter", "openai"}, "claude-3-5-sonnet", "openrouter"),
        ({"openrouter", "openai"}, "gemini-2.0-flash", "openrouter"),
        ({"openai", "anthropic"}, "my-finetune", "openai"),  # unknown family: the default provider (auto)
    ],
)
def test_provider_for_model(ai_settings, present, model, want):
    configure(ai_settings, present)
    assert ProviderFactory.get_provider_for_model(model).name == want


@pytest.mark.parametrize(
    ("present", "model", "missing"),
    [
        ({"anthropic"}, "gpt-4o", "OPENAI_API_KEY"),
        ({"openai"}, "claude-3-opus", "ANTHROPIC_API_KEY"),
        ({"anthropic"}, "meta-llama/llama-3.1-70b-instruct", "OPENROUTER_API_KEY"),
    ],
)
def test_provider_for_model_names_the_missing_key(ai_settings, present, model, missing):
    configure(ai_settings, present)
    with pytest.raises(ProviderNotConfigured, match=missing):
        ProviderFactory.get_provider_for_model(model)


def test_routing_by_model_remembers_by_vendor_not_by_model_name(ai_settings):
    """A /v1 caller may send any model string; routing keeps one entry per vendor prefix, not one per string
    (each used to be kept for the settings snapshot's life: a slow leak any key holder could drive)."""
    from integrations.ai.sites.site_config import get_snapshot

    configure(ai_settings, {"openai", "openrouter"})
    snapshot = get_snapshot(None)
    router = ProviderFactory.get_provider_for_model("openai/gpt-4o")
    claude = ProviderFactory.get_provider_for_model("claude-3-opus")
    kept = len(snapshot.providers)
    for n in range(50):
        assert ProviderFactory.get_provider_for_model(f"openai/made-up-{n}") is router
        assert ProviderFactory.get_provider_for_model(f"claude-made-up-{n}") is claude
    assert len(snapshot.providers) == kept


def test_providers_and_clients_are_reused(ai_settings):
    configure(ai_settings, {"openai"})
    first = ProviderFactory.create_provider()
    second = ProviderFactory.create_provider()
    assert first is second
    assert first.client is second.client
    assert KEYS["openai"] not in repr(first) and KEYS["openai"] not in repr(first.config)
