"""Meta generation for pages through the provider layer: what is sent, what is saved (issue 4)."""

from __future__ import annotations

import json

import pytest

from integrations.ai.providers.errors import InvalidRequest, ProviderUnavailable
from integrations.ai.providers.tools import ANSWER_TOOL
from pages.models import Page
from pages.services.ai_service import META_SCHEMA, META_SYSTEM_PROMPT, AIService, trim_to_words

from .factories import AIProviderSettingsFactory
from .factories_cms import PageFactory

OR_KEY = "sk-or-v1-" + "c1" * 24
ANT_KEY = "sk-ant-api03-" + "c2" * 24

pytestmark = pytest.mark.django_db


@pytest.fixture
def page(upstream):
    record = AIProviderSettingsFactory(  # auto picks OpenRouter, which then serves every model
        provider_type="auto",
        openrouter_api_key=OR_KEY,
        openrouter_base_url=upstream.openrouter_base_url,
        anthropic_api_key=ANT_KEY,
        anthropic_base_url=upstream.anthropic_base_url,
    )
    return PageFactory(site=record.site, title="Spring sale", meta_title="", meta_description="")


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("Fresh sourdough bread baked every morning in Lyon", 30, "Fresh sourdough bread baked"),
        ('"Quoted title"', 60, "Quoted title"),
        ("Supercalifragilisticexpialidocious", 10, ""),
        ("Short", 60, "Short"),
        ("Ends with a comma, then more words", 17, "Ends with a comma"),
        ("exactly ten", 11, "exactly ten"),
    ],
)
def test_trim_to_words_never_cuts_mid_word(text, limit, expected):
    trimmed = trim_to_words(text, limit)
    assert trimmed == expected and len(trimmed) <= limit


def test_meta_sends_the_expected_messages_and_saves(page, upstream):
    upstream.script(
        content=json.dumps(
            {
                "meta_title": "Spring Sale: 20% Off Sourdough, Croissants and Every Loaf in the Bakery",
                "meta_description": "Twenty percent off everything until Sunday.",
            }
        )
    )
    meta = AIService().generate_meta_for_page(page, model="gpt-4o")
    (request,) = [r for r in upstream.requests if r.method == "POST"]  # a too-long title is trimmed, not retried
    assert request.flavor == "openrouter"
    assert request.json["model"] == "openai/gpt-4o"  # mapped for OpenRouter
    assert request.json["messages"][0] == {"role": "system", "content": META_SYSTEM_PROMPT}
    user = request.json["messages"][1]["content"]
    assert "Page title: Spring sale" in user and "twenty percent off" in user
    assert request.json["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": META_SCHEMA, "strict": True},
    }
    assert "maxLength" not in json.dumps(META_SCHEMA)  # the limits are told, and trimmed to: see ai_service
    page.refresh_from_db()
    assert page.meta_title == meta["meta_title"] == "Spring Sale: 20% Off Sourdough, Croissants and Every Loaf in"
    assert len(page.meta_title) <= 60
    assert page.meta_description == "Twenty percent off everything until Sunday."


def test_anthropic_gets_the_schema_as_a_forced_tool(page, upstream):
    record = AIProviderSettingsFactory(
        provider_type="anthropic",
        anthropic_api_key=ANT_KEY,
        anthropic_base_url=upstream.anthropic_base_url,
    )
    page = PageFactory(site=record.site, title="Spring sale", meta_title="", meta_description="")
    upstream.script(tool_calls=[{"name": ANSWER_TOOL, "arguments": {"meta_title": "T", "meta_description": "D"}}])
    meta = AIService().generate_meta_for_page(page, model="claude-3-5-haiku")
    assert meta == {"meta_title": "T", "meta_description": "D"}
    request = upstream.requests[0]
    assert request.flavor == "anthropic" and "response_format" not in request.json
    assert request.json["tool_choice"] == {"type": "tool", "name": ANSWER_TOOL}
    assert [t["input_schema"] for t in request.json["tools"]] == [META_SCHEMA]
    assert request.json["system"] == META_SYSTEM_PROMPT


def test_a_vendor_error_leaves_the_page_unchanged(page, upstream, settings):
    settings.AI_MAX_RETRIES = 0
    upstream.script(flavor="openrouter", status=503)
    with pytest.raises(ProviderUnavailable):
        AIService().generate_meta_for_page(page)
    page.refresh_from_db()
    assert (page.meta_title, page.meta_description) == ("", "")


@pytest.mark.parametrize("content", ["not json at all", json.dumps({"meta_title": "Only a title"}), "[1, 2]"])
def test_an_unusable_answer_leaves_the_page_unchanged(page, upstream, content):
    upstream.script(content=content, times=2)  # the gateway's corrective retry gets the same answer
    with pytest.raises(InvalidRequest, match="nothing was saved"):  # (MetaGenerationFailed is also InvalidOutput)
        AIService().generate_meta_for_page(page)
    assert len([r for r in upstream.requests if r.method == "POST"]) == 2
    page.refresh_from_db()
    assert (page.meta_title, page.meta_description) == ("", "")


def test_single_field_methods_keep_their_signatures(page, upstream):
    upstream.script(content="A very long meta title that runs on and on well past the sixty character limit")
    title = AIService(site=page.site).generate_meta_title("Spring sale", "Body text")
    assert title == "A very long meta title that runs on and on well past the" and len(title) <= 60
    assert "Page title: Spring sale" in upstream.requests[0].json["messages"][1]["content"]


def test_emulator_structured_output_drives_the_demo(page, upstream):
    """Without scripting, the emulator answers structured-output requests in the asked shape."""
    meta = AIService().generate_meta_for_page(page)
    assert meta["meta_title"] and len(meta["meta_title"]) <= 60
    assert Page.objects.get(pk=page.pk).meta_description == meta["meta_description"]
