"""Issue 20: the meta and block services use the gateway's structured output, through the real SDKs."""

from __future__ import annotations

import pytest

from integrations.ai.providers.errors import InvalidOutput
from integrations.ai.providers.tools import ANSWER_TOOL
from pages.blocks import json_schema
from pages.models import Block, ContentProvenance
from pages.services.advanced_ai_service import AdvancedAIService, BlockGenerationFailed
from pages.services.ai_service import META_SCHEMA, AIService

from .factories_cms import PageFactory

pytestmark = pytest.mark.django_db
HERO = {"heading": "Bread, daily", "cta_text": "Visit", "cta_url": "javascript:alert(1)"}


def posts(upstream) -> list:
    return [r for r in upstream.requests if r.method == "POST"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_meta_and_block_go_by_the_providers_structured_mechanism(emulated_site, upstream, provider):
    page = PageFactory(site=emulated_site(provider), title="Opening hours", meta_title="", meta_description="")
    AIService().generate_meta_for_page(page)
    AdvancedAIService().generate_block(page, "hero")
    meta_body, block_body = (r.json for r in posts(upstream))
    for body, schema in ((meta_body, META_SCHEMA), (block_body, json_schema("hero"))):
        if provider == "anthropic":
            assert body["tool_choice"] == {"type": "tool", "name": ANSWER_TOOL}
            assert [t["input_schema"] for t in body["tools"]] == [schema]
        else:
            assert body["response_format"]["json_schema"]["schema"] == schema
    page.refresh_from_db()
    assert page.meta_title and Block.objects.filter(page=page).count() == 1


def test_block_invalid_twice_is_a_typed_error_and_nothing_is_saved(emulated_site, upstream):
    page = PageFactory(site=emulated_site("anthropic"))
    upstream.script(tool_calls=[{"name": ANSWER_TOOL, "arguments": {"items": []}}], times=2)
    with pytest.raises(BlockGenerationFailed) as caught:
        AdvancedAIService().generate_block(page, "faq")
    assert isinstance(caught.value, InvalidOutput) and caught.value.errors == ["items: [] should be non-empty"]
    assert len(posts(upstream)) == 2
    assert not Block.objects.filter(page=page).exists() and not ContentProvenance.objects.filter(page=page).exists()


def test_a_rule_the_schema_cannot_say_is_still_checked(emulated_site, upstream):
    page = PageFactory(site=emulated_site("anthropic"))
    upstream.script(tool_calls=[{"name": ANSWER_TOOL, "arguments": HERO}])
    with pytest.raises(BlockGenerationFailed, match="cta_url may not be a javascript: URL"):
        AdvancedAIService().generate_block(page, "hero")
    assert len(posts(upstream)) == 1 and not Block.objects.filter(page=page).exists()


def test_a_corrected_answer_counts_both_calls_in_its_provenance(emulated_site, upstream):
    """The corrective retry is a second paid call: the saved block's provenance sums both calls' tokens."""
    page = PageFactory(site=emulated_site("anthropic"))
    good = {"items": [{"question": "Open on Sunday?", "answer": "Yes, 8 to 12."}]}
    upstream.script(
        tool_calls=[{"name": ANSWER_TOOL, "arguments": {"items": []}}], usage={"input_tokens": 100, "output_tokens": 10}
    )
    upstream.script(
        tool_calls=[{"name": ANSWER_TOOL, "arguments": good}], usage={"input_tokens": 200, "output_tokens": 20}
    )
    AdvancedAIService().generate_block(page, "faq")
    row = ContentProvenance.objects.get(page=page)
    assert (row.prompt_tokens, row.completion_tokens) == (300, 30)


def test_a_structured_batch_never_returns_an_invalid_item(emulated_site, upstream):
    """generate_batch with response_schema: each answer is validated; an invalid one is its item's error."""
    from integrations.ai import AIService as Gateway

    site = emulated_site("openai")
    upstream.script(content='{"meta_title": "Bread", "meta_description": "Fresh daily"}')
    upstream.script(content='{"meta_title": 7}')
    items = Gateway(site=site).generate_batch(["a", "b"], concurrency=1, response_schema=META_SCHEMA)
    assert items[0].error is None and items[0].result.parsed == {
        "meta_title": "Bread",
        "meta_description": "Fresh daily",
    }
    assert isinstance(items[1].error, InvalidOutput) and items[1].result is None
    assert any("meta_title" in e for e in items[1].error.errors)
