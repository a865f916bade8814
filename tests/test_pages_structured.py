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
