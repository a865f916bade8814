"""Issue 27 (3): OpenRouter's `reasoning` and `cache_control` go through the gateway to the wire (the real
`openai` SDK against the emulator), checked first with typed errors naming the field; the page services
give reasoning models a reasoning budget so a short answer is not spent thinking."""

from __future__ import annotations

import pytest

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers.errors import InvalidRequest, NotSupported
from integrations.models import AIUsage
from pages.services.ai_service import AIService as PagesAI
from pages.services.reasoning import REASONING_BUDGET

from .factories_cms import PageFactory

pytestmark = pytest.mark.django_db
THINKER = "anthropic/claude-3.7-sonnet"
ASK = [{"role": "user", "content": "Name a bakery"}]


def posts(upstream) -> list:
    return [r for r in upstream.requests if r.method == "POST"]


def test_reasoning_reaches_the_wire_and_its_tokens_the_ledger(emulated_site, upstream):
    site = emulated_site("openrouter")
    reasoning = {"max_tokens": 400, "exclude": True}
    result = AIService(site=site).complete(ASK, model=THINKER, max_tokens=600, reasoning=reasoning)
    body = posts(upstream)[-1].json
    assert body["reasoning"] == reasoning and body["max_tokens"] == 600
    assert result.reasoning_tokens == 400 and result.content.startswith("Emulated openrouter reply")
    assert result.completion_tokens > 400  # the answer had room beside the reasoning
    usage.flush()
    assert AIUsage.objects.get(site=site).reasoning_tokens == 400
    AIService(site=site).complete(ASK, model=THINKER, max_tokens=600, reasoning={"effort": "low"})
    assert posts(upstream)[-1].json["reasoning"] == {"effort": "low"}


@pytest.mark.parametrize(
    ("reasoning", "message"),
    [
        ({"effort": "extreme"}, r"reasoning\.effort must be one of xhigh, high, medium, low, minimal, none"),
        ({"effort": "low", "max_tokens": 100}, r"reasoning\.effort or reasoning\.max_tokens, not both"),
        ({"max_tokens": 600}, r"reasoning\.max_tokens \(600\) must be below max_tokens \(600\)"),
        ({"max_tokens": "400"}, r"reasoning\.max_tokens must be a positive integer"),
        ({"exclude": "yes"}, r"reasoning\.exclude must be true or false"),
        ({"budget": 10}, r"Unknown reasoning field\(s\) budget"),
        ("high", r"reasoning must be an object"),
    ],
)
def test_a_bad_reasoning_value_is_a_typed_error_before_any_request(emulated_site, upstream, reasoning, message):
    site = emulated_site("openrouter")
    with pytest.raises(InvalidRequest, match=message):
        AIService(site=site).complete(ASK, model=THINKER, max_tokens=600, reasoning=reasoning)
    assert posts(upstream) == []
    usage.flush()
    assert not AIUsage.objects.filter(status="error").exists()  # our validation is no provider failure


def test_cache_control_marks_the_system_prompt_written_once_then_read(emulated_site, upstream):
    site = emulated_site("openrouter")
    system = "You write product copy for a bakery. " * 40  # a long template system prompt
    control = {"type": "ephemeral", "ttl": "1h"}
    first = AIService(site=site).complete(ASK, model=THINKER, system_prompt=system, cache_control=control)
    sent = posts(upstream)[-1].json
    assert sent["messages"][0] == {
        "role": "system",
        "content": [{"type": "text", "text": system, "cache_control": control}],
    }
    assert "cache_control" not in sent  # a block on the system message, not a body field
    second = AIService(site=site).complete(ASK, model=THINKER, system_prompt=system, cache_control=control)
    assert first.cache_write_tokens > 0 and first.cached_tokens == 0
    assert second.cached_tokens == first.cache_write_tokens and second.cache_write_tokens == 0
    with pytest.raises(InvalidRequest, match="give a system_prompt to cache"):
        AIService(site=site).complete(ASK, model=THINKER, cache_control={"type": "ephemeral"})
    with pytest.raises(InvalidRequest, match=r"cache_control\.ttl must be one of 5m, 1h"):
        AIService(site=site).complete(
            ASK, model=THINKER, system_prompt=system, cache_control={"type": "ephemeral", "ttl": "1d"}
        )
    with pytest.raises(InvalidRequest, match=r'cache_control must be \{"type": "ephemeral"\}'):
        AIService(site=site).complete(ASK, model=THINKER, system_prompt=system, cache_control={"type": "forever"})
    assert len(posts(upstream)) == 2


def test_other_providers_still_refuse_the_options_by_name(emulated_site, upstream):
    """OpenAI takes the effort for a model that reasons only, and a model that does not is refused before any request
    (OpenAI would 400 on reasoning_effort)."""
    openai_site = emulated_site("openai")
    with pytest.raises(NotSupported, match=r"gpt-4o does not support reasoning"):
        AIService(site=openai_site).complete(ASK, model="gpt-4o", reasoning={"effort": "low"})
    with pytest.raises(InvalidRequest, match=r"takes reasoning.effort only"):
        AIService(site=openai_site).complete(ASK, model="gpt-5", reasoning={"max_tokens": 100})
    assert upstream.requests_for("openai") == []


def test_the_page_services_give_a_reasoning_model_a_budget_and_the_answer_its_room(emulated_site, upstream):
    site = emulated_site("openrouter")
    title = PagesAI(site).generate_meta_title("Spring sale", "Twenty percent off", model=THINKER)
    body = posts(upstream)[-1].json
    assert body["reasoning"] == {"max_tokens": REASONING_BUDGET, "exclude": True}
    assert body["max_tokens"] == 60 + REASONING_BUDGET
    assert title  # the emulator spent the budget thinking, and the answer still came
    PagesAI(site).generate_meta_title("Spring sale", "Twenty percent off", model="openai/gpt-4o")
    body = posts(upstream)[-1].json
    assert "reasoning" not in body and body["max_tokens"] == 60  # not a reasoning model: unchanged
    page = PageFactory(site=site, title="Spring sale", meta_title="", meta_description="")
    PagesAI(site).generate_meta_for_page(page, model=THINKER)
    assert posts(upstream)[-1].json["reasoning"]["max_tokens"] == REASONING_BUDGET


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_a_cache_mark_is_taken_and_checked_on_the_other_vendors_too(emulated_site, upstream, vendor):
    """`cache_control` on the system prompt (what `/v1/messages` maps Anthropic's mark to): Anthropic marks its
    system block, OpenAI caches by itself and is sent nothing; either checks the mark as OpenRouter does."""
    site = emulated_site(vendor)
    model = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku"}[vendor]
    mark = {"type": "ephemeral", "ttl": "5m"}
    AIService(site=site).complete(ASK, model=model, max_tokens=50, system_prompt="Be brief.", cache_control=mark)
    body = posts(upstream)[-1].json
    if vendor == "anthropic":
        assert body["system"] == [{"type": "text", "text": "Be brief.", "cache_control": mark}]
    else:
        assert "cache_control" not in str(body)
    with pytest.raises(InvalidRequest, match=r"cache_control must be"):
        AIService(site=site).complete(ASK, model=model, system_prompt="Be brief.", cache_control={"type": "forever"})
    with pytest.raises(InvalidRequest, match=r"give a system_prompt to cache"):
        AIService(site=site).complete(ASK, model=model, cache_control=mark)


def test_a_messages_cache_mark_goes_on_its_last_block_and_is_checked(emulated_site, upstream):
    """A neutral message's `cache_control` (a breakpoint after it): a tool result's block on Anthropic; a mark
    that is not Anthropic's shape is a typed error naming the message, before any request."""
    site = emulated_site("anthropic")
    mark = {"type": "ephemeral", "ttl": "1h"}
    call = {"id": "toolu_1", "name": "lookup", "arguments": {"city": "Lyon"}}
    history = [
        *ASK,
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "Chez Paul", "cache_control": mark},
    ]
    tool = {"name": "lookup", "description": "Find", "parameters": {"type": "object", "properties": {}}}
    AIService(site=site).complete(history, model="claude-3-5-haiku", max_tokens=50, tools=[tool])
    (result,) = posts(upstream)[-1].json["messages"][-1]["content"]
    assert (result["type"], result["cache_control"]) == ("tool_result", mark)
    before = len(posts(upstream))
    with pytest.raises(InvalidRequest, match=r"messages\[0\]\.cache_control must be"):
        AIService(site=site).complete(
            [{"role": "user", "content": "Hi", "cache_control": {"type": "forever"}}], model="claude-3-5-haiku"
        )
    assert len(posts(upstream)) == before


def test_gpt5_on_openai_gets_max_completion_tokens_its_effort_and_the_page_services_their_room(emulated_site, upstream):
    """GPT-5 reasons: OpenAI refuses `max_tokens` and any temperature but 1 for it, and takes `reasoning_effort`
    (the `reasoning` option's effort). The page services give it room to think and a low effort, so a 60-token
    title is not spent on reasoning; its chat variant does not reason and is called as any chat model."""
    site = emulated_site("openai")
    answer = AIService(site=site).complete(ASK, model="gpt-5", temperature=0.7, reasoning={"effort": "minimal"})
    body = upstream.requests_for("openai")[-1].json
    assert body["max_completion_tokens"] and "max_tokens" not in body and "temperature" not in body
    assert body["reasoning_effort"] == "minimal" and answer.content and answer.reasoning_tokens > 0
    PagesAI(site).generate_meta_title("Spring sale", "Twenty percent off", model="gpt-5-mini")
    body = upstream.requests_for("openai")[-1].json
    assert body["reasoning_effort"] == "low" and body["max_completion_tokens"] == 60 + REASONING_BUDGET
    AIService(site=site).complete(ASK, model="gpt-5-chat-latest", temperature=0.7)
    body = upstream.requests_for("openai")[-1].json
    assert body["max_tokens"] and body["temperature"] == 0.7 and "reasoning_effort" not in body
    usage.flush()
    assert AIUsage.objects.filter(site=site, status="ok").count() == 3


def test_reasoning_on_anthropic_is_extended_thinking_as_openrouter_serves_it(emulated_site, upstream):
    """What OpenAI-speaking clients send (Codex's reasoning effort) reaches Claude as extended thinking with the
    effort's share of max_tokens as its budget (OpenRouter's mapping), the vendor's thinking rules checked first; the
    signed blocks come back on the result, and a model that cannot think is refused before any request."""
    site = emulated_site("anthropic")
    service = AIService(site=site)
    answer = service.complete(
        ASK, model="claude-sonnet-4", max_tokens=4000, temperature=1, reasoning={"effort": "high"}
    )
    assert upstream.requests_for("anthropic")[-1].json["thinking"] == {"type": "enabled", "budget_tokens": 3200}
    assert answer.thinking and answer.thinking[0]["signature"]
    service.complete(
        ASK, model="claude-sonnet-4", max_tokens=2000, temperature=1, reasoning={"effort": "minimal", "exclude": True}
    )
    sent = upstream.requests_for("anthropic")[-1].json["thinking"]
    assert sent == {"type": "enabled", "budget_tokens": 1024, "display": "omitted"}  # never below Anthropic's least
    service.complete(ASK, model="claude-sonnet-4", reasoning={"effort": "none"})
    assert "thinking" not in upstream.requests_for("anthropic")[-1].json
    before = len(upstream.requests_for("anthropic"))
    with pytest.raises(InvalidRequest, match="reasoning is sent to anthropic as extended thinking, so: temperature"):
        service.complete(ASK, model="claude-sonnet-4", max_tokens=4000, temperature=0.5, reasoning={"effort": "low"})
    with pytest.raises(NotSupported, match="claude-3-5-haiku-20241022 does not support reasoning"):
        service.complete(ASK, model="claude-3-5-haiku", max_tokens=2000, temperature=1, reasoning={"effort": "low"})
    with pytest.raises(InvalidRequest, match="Give thinking or reasoning, not both"):
        service.complete(
            ASK, model="claude-sonnet-4", temperature=1, reasoning={"effort": "low"}, thinking={"type": "adaptive"}
        )
    assert len(upstream.requests_for("anthropic")) == before


def test_a_failover_candidate_keeps_reasoning_only_where_it_can_serve_it(emulated_site):
    """Failover fits a request to the next provider without validating again (`adapt`): the `reasoning` the page
    services send OpenRouter stays for a Claude model when the thinking rules hold and is dropped when they do not (a
    temperature of 0.7, a model that cannot think), and OpenAI keeps only an effort, for a model that reasons."""
    from integrations.ai.gateway.factory import ProviderFactory
    from integrations.ai.providers.types import AIRequest

    anthropic = ProviderFactory.create_provider("anthropic", emulated_site("anthropic"))
    openai = ProviderFactory.create_provider("openai", emulated_site("openai"))

    def kept(provider, model, temperature, reasoning):
        ask = AIRequest.of(ASK, model, 4000, temperature, None, reasoning=reasoning)
        return "reasoning" in provider.adapt(ask).options

    budget = {"max_tokens": 1024, "exclude": True}
    assert kept(anthropic, "claude-sonnet-4", 1.0, budget)
    assert not kept(anthropic, "claude-sonnet-4", 0.7, budget)  # thinking needs temperature 1: dropped, as before
    assert not kept(anthropic, "claude-3-5-haiku", 1.0, budget)  # cannot think
    assert kept(openai, "gpt-5", 1.0, {"effort": "low"})
    assert not kept(openai, "gpt-5", 1.0, budget)  # no field for a budget
    assert not kept(openai, "gpt-4o", 1.0, {"effort": "low"})  # does not reason
