"""Each provider through its real SDK over HTTP to the emulator: what we send, what we read back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from integrations.ai.gateway.factory import ProviderFactory
from integrations.ai.gateway.service import AIService
from integrations.ai.providers.errors import InvalidRequest, ModelNotFound, ProviderNotConfigured

OPENROUTER_KEY = "sk-or-v1-" + "a1" * 24
OPENAI_KEY = "sk-proj-" + "b2" * 24
ANTHROPIC_KEY = "sk-ant-api03-" + "c3" * 24

MESSAGES = [{"role": "user", "content": "Write a tagline for a bakery"}]


@pytest.fixture
def all_keys(ai_settings):
    ai_settings.OPENROUTER_API_KEY = OPENROUTER_KEY
    ai_settings.OPENAI_API_KEY = OPENAI_KEY
    ai_settings.ANTHROPIC_API_KEY = ANTHROPIC_KEY
    ai_settings.OPENROUTER_HTTP_REFERER = "https://panel.example"
    ai_settings.OPENROUTER_APP_NAME = "Panel Test"
    return ai_settings


pytestmark = pytest.mark.django_db


def test_openai_happy_path(all_keys, upstream):
    provider = ProviderFactory.create_provider("openai")
    result = provider.generate_content(MESSAGES, model="gpt-4o", max_tokens=50, temperature=0.2)

    assert result.content == "Emulated openai reply (gpt-4o): Write a tagline for a bakery"
    assert result.provider == "openai"
    assert result.model == "gpt-4o"
    assert (result.prompt_tokens, result.completion_tokens) == (6, 10)
    assert result.total_tokens == result["tokens_used"] == 16
    assert result.finish_reason == "stop"
    assert result.request_id.startswith("req_")
    assert result.cost is None  # OpenAI does not report cost
    assert result.latency_ms > 0
    (request,) = upstream.requests
    assert request.path == "/openai/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert request.json["model"] == "gpt-4o"
    assert request.json["max_tokens"] == 50
    assert request.json["temperature"] == 0.2
    assert request.json["messages"] == MESSAGES


def test_openai_system_prompt_is_first_message(all_keys, upstream):
    ProviderFactory.create_provider("openai").generate_content(MESSAGES, system_prompt="You are terse.")
    assert upstream.requests[0].json["messages"] == [{"role": "system", "content": "You are terse."}, *MESSAGES]


def test_openai_reasoning_models_take_max_completion_tokens(all_keys, upstream):
    ProviderFactory.create_provider("openai").generate_content(MESSAGES, model="o3-mini", max_tokens=64)
    body = upstream.requests[0].json
    assert body["max_completion_tokens"] == 64
    assert "max_tokens" not in body and "temperature" not in body


def test_openrouter_happy_path_headers_cost_and_mapping(all_keys, upstream):
    provider = ProviderFactory.create_provider("openrouter")
    result = provider.generate_content(MESSAGES, model="gpt-4o", max_tokens=40)

    (request,) = upstream.requests
    assert request.path == "/openrouter/api/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {OPENROUTER_KEY}"
    assert request.headers["http-referer"] == "https://panel.example"
    assert request.headers["x-title"] == "Panel Test"
    assert request.json["model"] == "openai/gpt-4o"
    assert request.json["usage"] == {"include": True}
    assert result.model == "openai/gpt-4o"
    assert result.upstream_provider == "OpenAI"
    assert result.request_id.startswith("gen-")
    # 6 prompt tokens at $2.5/M + 10 completion tokens at $10/M, as the emulator prices them.
    assert result.cost == Decimal("0.000115")
    assert isinstance(result.cost, Decimal)


def test_openrouter_without_attribution_headers_sends_none(all_keys, upstream):
    all_keys.OPENROUTER_HTTP_REFERER = ""
    all_keys.OPENROUTER_APP_NAME = ""
    ProviderFactory.create_provider("openrouter").generate_content(MESSAGES)
    headers = upstream.requests[0].headers
    assert "http-referer" not in headers and "x-title" not in headers
    assert upstream.requests[0].json["model"] == "openai/gpt-4o-mini"  # OPENROUTER_DEFAULT_MODEL


def test_openrouter_native_fallback_models_and_routing(all_keys, upstream):
    provider = ProviderFactory.create_provider("openrouter")
    result = provider.generate_content(
        MESSAGES,
        model="no-such-vendor/ghost-model",
        models=["no-such-vendor/ghost-model", "claude-3-5-sonnet"],
        provider={"order": ["Anthropic"], "allow_fallbacks": True, "sort": "price"},
    )
    body = upstream.requests[0].json
    assert body["models"] == ["no-such-vendor/ghost-model", "anthropic/claude-3.5-sonnet"]
    assert body["provider"] == {"order": ["Anthropic"], "allow_fallbacks": True, "sort": "price"}
    assert result.model == "anthropic/claude-3.5-sonnet"  # what actually served


def test_anthropic_happy_path(all_keys, upstream):
    provider = ProviderFactory.create_provider("anthropic")
    result = provider.generate_content(
        [{"role": "system", "content": "Be brief."}, *MESSAGES],
        model="claude-3-5-sonnet",
        system_prompt="You write copy.",
        max_tokens=80,
        temperature=0.3,
    )
    (request,) = upstream.requests
    assert request.path == "/anthropic/v1/messages"
    assert request.headers["x-api-key"] == ANTHROPIC_KEY
    assert request.headers["authorization"] == f"Bearer {ANTHROPIC_KEY}"  # what SDK 2.x sends
    assert request.headers["anthropic-version"] == "2023-06-01"  # pinned: keeps temperature working
    body = request.json
    assert body["temperature"] == 0.3
    assert body["model"] == "claude-3-5-sonnet-20241022"
    assert body["system"] == "You write copy.\n\nBe brief."
    assert body["messages"] == MESSAGES  # no system role inside messages
    assert body["max_tokens"] == 80
    assert result.content.startswith("Emulated anthropic reply (claude-3-5-sonnet-20241022)")
    assert result.finish_reason == "stop"
    assert result.request_id.startswith("req_")
    assert result.total_tokens == result.prompt_tokens + result.completion_tokens > 0


def test_anthropic_api_2026_drops_sampling_parameters(all_keys, upstream):
    all_keys.ANTHROPIC_API_VERSION = "2026-10-21"
    provider = ProviderFactory.create_provider("anthropic")
    provider.generate_content(MESSAGES, temperature=0.3)
    request = upstream.requests[0]
    assert request.headers["anthropic-version"] == "2026-10-21"
    assert "temperature" not in request.json  # the 2026-10-21 API answers 400 to any sampling parameter
    with pytest.raises(InvalidRequest, match="top_p not accepted by anthropic-version 2026-10-21"):
        provider.generate_content(MESSAGES, top_p=0.9)
    assert len(upstream.requests) == 1


def test_anthropic_content_blocks_joined_and_stop_reason_mapped(all_keys, upstream):
    upstream.script(
        flavor="anthropic",
        body={
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-3-5-haiku-20241022",
            "content": [{"type": "text", "text": "Fresh "}, {"type": "text", "text": "daily."}],
            "stop_reason": "max_tokens",
            "stop_sequence": None,
            "usage": {"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 2},
        },
    )
    result = ProviderFactory.create_provider("anthropic").generate_content(MESSAGES)
    assert result.content == "Fresh daily."
    assert result.finish_reason == "length"
    assert (result.prompt_tokens, result.completion_tokens, result.total_tokens) == (9, 3, 12)


@pytest.mark.parametrize(
    ("native", "normalised"),
    [("length", "length"), ("content_filter", "content_filter"), ("tool_calls", "tool_calls"), ("stop", "stop")],
)
def test_openai_finish_reasons(all_keys, upstream, native, normalised):
    upstream.script(flavor="openai", finish_reason=native)
    assert ProviderFactory.create_provider("openai").generate_content(MESSAGES).finish_reason == normalised


@pytest.mark.parametrize(
    ("native", "normalised"),
    [("max_tokens", "length"), ("refusal", "content_filter"), ("stop_sequence", "stop"), ("tool_use", "tool_calls")],
)
def test_anthropic_finish_reasons(all_keys, upstream, native, normalised):
    upstream.script(flavor="anthropic", finish_reason=native)
    assert ProviderFactory.create_provider("anthropic").generate_content(MESSAGES).finish_reason == normalised


@pytest.mark.parametrize(
    ("provider", "model", "sent"),
    [
        ("openrouter", "gpt-4o", "openai/gpt-4o"),
        ("openrouter", "claude-3-5-sonnet", "anthropic/claude-3.5-sonnet"),
        ("openrouter", "claude-3-5-sonnet-20241022", "anthropic/claude-3.5-sonnet"),
        ("openrouter", "claude-haiku-4-5-20251001", "anthropic/claude-haiku-4.5"),
        ("openrouter", "claude-3-7-sonnet-latest", "anthropic/claude-3.7-sonnet"),  # Anthropic's alias, by rule
        ("openrouter", "claude-opus-4-1", "anthropic/claude-opus-4.1"),
        ("openrouter", "meta-llama/llama-3.1-70b-instruct", "meta-llama/llama-3.1-70b-instruct"),
        ("openai", "openai/gpt-4o", "gpt-4o"),
        ("openai", "gpt-4.1-mini", "gpt-4.1-mini"),
        ("anthropic", "claude-3-5-sonnet", "claude-3-5-sonnet-20241022"),
        ("anthropic", "anthropic/claude-3.5-haiku", "claude-3-5-haiku-20241022"),
    ],
)
def test_model_names_are_normalised_per_provider(all_keys, upstream, provider, model, sent):
    """Each vendor's own id; Anthropic's ids, what Claude Code sends, by OpenRouter's names on OpenRouter."""
    ProviderFactory.create_provider(provider).generate_content(MESSAGES, model=model)
    assert upstream.requests[0].json["model"] == sent


@pytest.mark.parametrize(
    ("provider", "model"),
    [("openai", "claude-3-5-sonnet"), ("anthropic", "gpt-4o"), ("openai", "anthropic/claude-3.5-sonnet")],
)
def test_a_direct_provider_refuses_another_vendors_model_before_sending(all_keys, upstream, provider, model):
    with pytest.raises(ModelNotFound, match="cannot serve it"):
        ProviderFactory.create_provider(provider).generate_content(MESSAGES, model=model)
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_tokens": 0}, "max_tokens must be between 1 and"),
        ({"max_tokens": 500_000}, "max_tokens must be between 1 and"),
        ({"max_tokens": "10"}, "max_tokens must be an integer"),
        ({"temperature": -0.1}, "temperature must be between 0 and 2"),
        ({"temperature": 2.5}, "temperature must be between 0 and 2"),
        ({"logit_bias": {}}, "Unsupported option"),
    ],
)
def test_bad_parameters_are_refused_before_any_request(all_keys, upstream, kwargs, message):
    with pytest.raises(InvalidRequest, match=message):
        ProviderFactory.create_provider("openai").generate_content(MESSAGES, **kwargs)
    assert upstream.requests == []


def test_anthropic_temperature_range_is_zero_to_one(all_keys, upstream):
    with pytest.raises(InvalidRequest, match="between 0 and 1 for anthropic"):
        ProviderFactory.create_provider("anthropic").generate_content(MESSAGES, temperature=1.5)
    assert upstream.requests == []


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "user", "content": "   "}],
        [{"role": "robot", "content": "hi"}],
        [{"role": "assistant", "content": "only me"}],
    ],
)
def test_bad_messages_are_refused(all_keys, upstream, messages):
    with pytest.raises(InvalidRequest):
        ProviderFactory.create_provider("openrouter").generate_content(messages)
    assert upstream.requests == []


def test_service_refuses_an_empty_prompt(all_keys, upstream):
    with pytest.raises(InvalidRequest, match="prompt is empty"):
        AIService().generate_content("  ")
    assert upstream.requests == []


def test_is_model_supported_openrouter_uses_the_live_catalogue(all_keys, upstream):
    provider = ProviderFactory.create_provider("openrouter")
    assert provider.is_model_supported("gpt-4o")
    assert provider.is_model_supported("meta-llama/llama-3.1-70b-instruct")
    assert not provider.is_model_supported("acme/imaginary-model")
    assert not provider.is_model_supported("")
    models = {m.id: m for m in provider.get_available_models()}
    assert models["openai/gpt-4o"].prompt_price == Decimal("0.0000025")
    assert models["openai/gpt-4o"].context_length > 0
    # Cached: three lookups, one listing request.
    assert [r.path for r in upstream.requests] == ["/openrouter/api/v1/models"]


def test_is_model_supported_direct_providers_use_the_declared_table(all_keys, upstream):
    openai_provider = ProviderFactory.create_provider("openai")
    anthropic_provider = ProviderFactory.create_provider("anthropic")
    assert openai_provider.is_model_supported("gpt-4o")
    assert openai_provider.is_model_supported("openai/gpt-4o-mini")
    assert not openai_provider.is_model_supported("gpt-99-ultra")
    assert not openai_provider.is_model_supported("claude-3-5-sonnet")
    assert anthropic_provider.is_model_supported("claude-3-5-sonnet")
    assert anthropic_provider.is_model_supported("claude-3-5-sonnet-20241022")
    assert not anthropic_provider.is_model_supported("gpt-4o")
    assert upstream.requests == []


def test_result_reads_like_the_plans_dict(all_keys, upstream):
    result = AIService().generate_content("Hello there")
    assert {"content", "model", "tokens_used", "provider"} <= set(result.keys())
    assert result["provider"] == "openrouter" and result.get("nope", 1) == 1
    assert str(result) == result.content
    assert result.to_dict()["tokens_used"] == result.total_tokens


def test_missing_key_for_an_asked_provider_names_the_setting(ai_settings, upstream):
    ai_settings.OPENAI_API_KEY = OPENAI_KEY
    with pytest.raises(ProviderNotConfigured, match="ANTHROPIC_API_KEY"):
        ProviderFactory.create_provider("anthropic")


def test_model_mapper_public_api():
    from integrations.ai.providers.errors import UnknownProvider
    from integrations.ai.providers.model_mapper import ModelMapper

    mapper = ModelMapper({"house": {"openrouter": "mistralai/mistral-large"}})
    assert mapper.get_model_for_provider("gpt-4o", "openrouter") == "openai/gpt-4o"
    assert mapper.get_model_for_provider("claude-3-5-sonnet", "anthropic") == "claude-3-5-sonnet-20241022"
    assert mapper.normalize_model_name("house", "openrouter") == "mistralai/mistral-large"
    assert mapper.logical_name("anthropic/claude-3.5-sonnet") == "claude-3-5-sonnet"
    with pytest.raises(UnknownProvider):
        mapper.normalize_model_name("gpt-4o", "cohere")


def test_each_flavor_records_its_own_requests(all_keys, upstream):
    for provider in ("openrouter", "anthropic", "openai"):
        ProviderFactory.create_provider(provider).generate_content(MESSAGES)
    assert [r.path for r in upstream.requests_for("anthropic")] == ["/anthropic/v1/messages"]
    assert len(upstream.requests_for("openrouter")) == len(upstream.requests_for("openai")) == 1
