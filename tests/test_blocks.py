"""Blocks: JSON validated per type, generated with one corrective retry, never half-saved (issue 4)."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError

from integrations.ai.providers.errors import InvalidRequest, RateLimited
from pages.blocks import BlockValidationError, json_schema, validate_block
from pages.models import Block
from pages.services.advanced_ai_service import AdvancedAIService, BlockGenerationFailed

from .factories import AIProviderSettingsFactory
from .factories_cms import BlockFactory, PageFactory

OAI_KEY = "sk-proj-" + "d1" * 24
GOOD_FAQ = {"items": [{"question": "Do you bake daily?", "answer": "Every morning at five."}]}

pytestmark = pytest.mark.django_db


@pytest.fixture
def page(upstream):
    record = AIProviderSettingsFactory(
        provider_type="openai", openai_api_key=OAI_KEY, openai_base_url=upstream.openai_base_url
    )
    return PageFactory(site=record.site, title="Our bakery")


@pytest.mark.parametrize(
    ("block_type", "content", "problem"),
    [
        ("hero", {"subheading": "x"}, "heading is required"),
        ("hero", {"heading": "x" * 121}, "heading is 121 characters; at most 120"),
        ("text", {"body": "ok", "colour": "red"}, "colour is not a field"),
        ("faq", {"items": []}, "items must have 1 to 20 items"),
        ("faq", {"items": [{"question": "q"}]}, "items[0].answer is required"),
        ("cta", {"text": "Buy", "button_text": 5}, "button_text must be text"),
        ("features", "not an object", "content must be an object"),
        ("carousel", {}, "unknown block type"),
    ],
)
def test_validation_names_the_problem(block_type, content, problem):
    with pytest.raises(BlockValidationError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        validate_block(block_type, content)


def test_model_clean_uses_the_schema():
    block = BlockFactory.build(type="cta", content={"text": "Order now"}, page=PageFactory())
    with pytest.raises(ValidationError, match="button_text is required"):
        block.full_clean()


def test_generates_valid_json_and_saves_in_order(page, upstream):
    BlockFactory(page=page, order=4)
    upstream.script(content=json.dumps(GOOD_FAQ))
    block = AdvancedAIService().generate_block(page, "faq", instructions="About opening hours", model="gpt-4o")
    assert block.pk and block.order == 5 and block.content == GOOD_FAQ
    body = upstream.requests[0].json
    assert body["model"] == "gpt-4o"
    assert body["messages"][0]["role"] == "system" and "JSON" in body["messages"][0]["content"]
    prompt = body["messages"][1]["content"]
    assert "Write a 'faq' block for the web page \"Our bakery\"" in prompt
    assert "Instructions: About opening hours" in prompt
    assert '"question": string <= 200 chars' in prompt
    # the gateway's one structured-output mechanism: the block type's schema, strict (faq's is closed)
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": json_schema("faq"), "strict": True},
    }


def test_retries_once_with_the_validation_error(page, upstream):
    upstream.script(content='```json\n{"items": []}\n```')
    upstream.script(content=json.dumps(GOOD_FAQ))
    block = AdvancedAIService().generate_block(page, "faq")
    assert block.content == GOOD_FAQ
    retry = upstream.requests[1].json["messages"]
    assert retry[2] == {"role": "assistant", "content": '```json\n{"items": []}\n```'}
    assert "did not match the required JSON schema: items: [] should be non-empty" in retry[3]["content"]


def test_invalid_twice_raises_and_saves_nothing(page, upstream):
    upstream.script(content="Sure! Here is your block: {items: oops}", times=2)
    with pytest.raises(BlockGenerationFailed, match="invalid twice: the answer is not JSON") as caught:
        AdvancedAIService().generate_block(page, "faq")
    assert caught.value.code == "invalid_block_json"
    assert len(upstream.requests) == 2
    assert not Block.objects.filter(page=page).exists()


def test_a_vendor_error_saves_nothing(page, upstream, settings):
    settings.AI_MAX_RETRIES = 0
    upstream.script(status=429, headers={"Retry-After": "3"})
    with pytest.raises(RateLimited):
        AdvancedAIService().generate_block(page, "hero")
    assert not Block.objects.filter(page=page).exists()


def test_unknown_type_is_refused_before_any_request(page, upstream):
    with pytest.raises(InvalidRequest, match="Unknown block type 'carousel'"):
        AdvancedAIService().generate_block(page, "carousel")
    assert upstream.requests == []


def test_call_ai_api_keeps_its_signature(page, upstream):
    text = AdvancedAIService(site=page.site)._call_ai_api("Say hi", model="gpt-4o-mini", max_tokens=50)
    assert isinstance(text, str) and text.endswith("Say hi")
    assert upstream.requests[0].json["max_tokens"] == 50


def test_emulator_structured_output_gives_a_valid_block(page, upstream):
    block = AdvancedAIService().generate_block(page, "features")
    validate_block("features", block.content)
