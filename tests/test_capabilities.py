"""Issue 20 (5): the capability table answers "not supported" before any request — for the chosen provider,
for each failover candidate, and for rules a deployment adds."""

from __future__ import annotations

import pytest

from integrations.ai.gateway.service import AIService
from integrations.ai.providers import capabilities
from integrations.ai.providers.errors import NotSupported, ProviderUnavailable

from .beyond_text import ledger, make_gateway, png

pytestmark = pytest.mark.django_db

WEATHER = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}


def photo() -> dict:
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": "Describe it"},
            {"type": "image", "data": png(), "media_type": "image/png"},
        ],
    }


def test_a_failover_candidate_that_cannot_take_the_request_is_skipped(upstream, settings):
    settings.AI_MAX_RETRIES = 0
    gateway = make_gateway(
        "openai",
        upstream,
        also_key="anthropic",
        fallback_chain=[{"provider": "anthropic", "model": "claude-3-5-haiku"}],
    )
    upstream.script(flavor="openai", status=503)
    with pytest.raises(ProviderUnavailable):
        AIService(site=gateway.site).complete([photo()], model="gpt-4o")
    assert [r.flavor for r in upstream.requests if r.method == "POST"] == ["openai"]  # haiku takes no images
    assert [(r.provider, r.status) for r in ledger(gateway.site)] == [("openai", "error")]


def test_a_model_without_tools_is_refused_and_the_message_names_what_is_missing(upstream):
    gateway = make_gateway("openai", upstream)
    with pytest.raises(NotSupported, match="o1-mini does not support tool calling"):
        AIService(site=gateway.site).generate_content("hi", model="o1-mini", tools=[WEATHER])
    with pytest.raises(NotSupported, match=r"gpt-3\.5-turbo does not support structured output"):
        AIService(site=gateway.site).generate_json("hi", schema={"type": "object"}, model="gpt-3.5-turbo")
    assert upstream.requests == []


def test_a_deployment_adds_a_rule(upstream, settings):
    gateway = make_gateway("ollama", upstream)
    ai = AIService(site=gateway.site)
    with pytest.raises(NotSupported):
        ai.complete([photo()], provider="ollama", model="pixtral-local")
    capabilities.register("openai_compatible", "pixtral-*", capabilities.VISION)
    try:
        assert "I see 1 image(s)" in ai.complete([photo()], provider="ollama", model="pixtral-local").content
        assert ("pixtral-*", ["tools", "json_schema", "images", "streaming"]) in capabilities.table()[
            "openai_compatible"
        ]
    finally:
        capabilities.TABLE["openai_compatible"].pop(0)
        capabilities._embedding_only.cache_clear()
    with pytest.raises(ValueError, match="Unknown capabilities"):
        capabilities.register("openai", "x", {"telepathy"})
