"""Extended thinking through the gateway (`thinking` option, `providers/thinking.py`): the real `anthropic` SDK
against the emulator, which signs its thinking blocks and refuses any that come back altered or missing, as
Anthropic does. Both drivers."""

from __future__ import annotations

import pytest

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers.errors import InvalidRequest, NotSupported
from integrations.ai.providers.types import ThinkingDelta
from integrations.ai.testing.upstream_extras import REDACTED_TRIGGER, thinking_signature
from integrations.models import AIUsage

pytestmark = pytest.mark.django_db
MODEL = "claude-sonnet-4"
THINKERS = {"anthropic": MODEL, "openrouter": "anthropic/claude-3.7-sonnet"}  # OpenRouter: as `reasoning_details`
ASK = [{"role": "user", "content": "Name a bakery"}]
THINK = {"type": "enabled", "budget_tokens": 1024}
TOOLS = [
    {
        "name": "lookup",
        "description": "Find a bakery in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


def sent(upstream, vendor: str = "anthropic") -> list[dict]:
    return [r.json for r in upstream.requests_for(vendor) if r.path.endswith(("/v1/messages", "/chat/completions"))]


@pytest.mark.parametrize("vendor", THINKERS)
def test_the_answer_carries_its_signed_thinking_and_bills_it(emulated_site, upstream, driver, vendor):
    site = emulated_site(vendor)
    result = driver.complete(
        AIService(site=site), ASK, model=THINKERS[vendor], max_tokens=2048, temperature=1, thinking=THINK
    )
    (block,) = result.thinking
    assert block["type"] == "thinking" and block["thinking"].startswith("Emulated")
    assert block["signature"] == thinking_signature(block["thinking"])  # as the vendor gave it
    assert result.content.startswith(f"Emulated {vendor} reply")
    assert result.completion_tokens > len(result.content.split())  # thinking is billed as output
    body = sent(upstream, vendor)[-1]
    if vendor == "anthropic":
        assert body["thinking"] == THINK and body["temperature"] == 1
        assert result.completion_tokens == len(block["thinking"].split()) + len(result.content.split())
    else:  # OpenRouter's unified reasoning, its tokens reported apart
        assert body["reasoning"] == {"max_tokens": 1024} and "thinking" not in body
        assert result.reasoning_tokens == 1024
    usage.flush()
    row = AIUsage.objects.get(site=site)
    assert (row.status, row.completion_tokens) == ("ok", result.completion_tokens)


@pytest.mark.parametrize("vendor", THINKERS)
def test_a_streamed_answer_gives_its_thinking_as_pieces_before_the_text(emulated_site, driver, vendor):
    site = emulated_site(vendor)
    received: list = []
    stream = driver.stream(
        AIService(site=site),
        "Name a bakery",
        received,
        model=THINKERS[vendor],
        max_tokens=2048,
        temperature=1,
        thinking=THINK,
    )
    thought = [p for p in received if isinstance(p, ThinkingDelta)]
    text = [p for p in received if isinstance(p, str)]
    assert thought and text and received.index(text[0]) > received.index(thought[-1])
    assert {p.block for p in thought} == {0}
    (block,) = stream.result.thinking
    assert "".join(p.thinking for p in thought) == block["thinking"]
    assert "".join(p.signature for p in thought) == block["signature"] == thinking_signature(block["thinking"])
    assert "".join(text) == stream.result.content


@pytest.mark.parametrize("vendor", THINKERS)
def test_a_tool_loop_gives_the_thinking_back_unchanged(emulated_site, upstream, driver, vendor):
    """With tools, the vendor wants the turn it continues to open with its thinking, signature intact:
    `result.as_message()` carries it, and a history without it is the vendor's 400."""
    site = emulated_site(vendor)
    service = AIService(site=site)
    upstream.script(flavor=vendor, tool_calls=[{"name": "lookup", "arguments": {"city": "Lyon"}}])
    options = {"model": THINKERS[vendor], "max_tokens": 2048, "temperature": 1, "thinking": THINK, "tools": TOOLS}
    first = driver.complete(service, ASK, **options)
    (call,) = first.tool_calls
    assert first.thinking and first.as_message()["thinking"] == first.thinking
    history = [*ASK, first.as_message(), call.result("Chez Paul")]
    final = driver.complete(service, history, **options)
    if vendor == "anthropic":
        turn = sent(upstream)[-1]["messages"][1]["content"]
        assert turn[0] == first.thinking[0] and turn[-1]["type"] == "tool_use"  # thinking first, as given
    else:
        (detail,) = sent(upstream, vendor)[-1]["messages"][1]["reasoning_details"]
        assert (detail["text"], detail["signature"]) == (first.thinking[0]["thinking"], first.thinking[0]["signature"])
    assert final.content and final.thinking

    bare = {k: v for k, v in first.as_message().items() if k != "thinking"}
    with pytest.raises(InvalidRequest, match="must start with a thinking block"):
        driver.complete(service, [*ASK, bare, call.result("Chez Paul")], **options)
    edited = {**first.as_message(), "thinking": [{**first.thinking[0], "thinking": "something else"}]}
    with pytest.raises(InvalidRequest, match="Invalid `signature`"):
        driver.complete(service, [*ASK, edited, call.result("Chez Paul")], **options)


def test_a_redacted_block_comes_and_goes_back_whole(emulated_site, upstream, driver):
    site = emulated_site("anthropic")
    ask = [{"role": "user", "content": f"Name a bakery {REDACTED_TRIGGER}"}]
    first = driver.complete(AIService(site=site), ask, model=MODEL, max_tokens=2048, temperature=1, thinking=THINK)
    (block,) = first.thinking
    assert block["type"] == "redacted_thinking" and block["data"]
    history = [*ask, first.as_message(), {"role": "user", "content": "And another?"}]
    driver.complete(AIService(site=site), history, model=MODEL, max_tokens=2048, temperature=1, thinking=THINK)
    assert sent(upstream)[-1]["messages"][1]["content"][0] == block


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 512}}, r"budget_tokens must be an integer of at least 1024"),
        ({"thinking": {"type": "enabled", "budget_tokens": 4096}}, r"max_tokens \(2048\) must be greater than"),
        ({"thinking": {"type": "sometimes"}}, r"thinking must be"),
        ({"thinking": {"type": "adaptive", "budget_tokens": 2000}}, r"budget_tokens goes with type enabled"),
        ({"thinking": THINK, "temperature": 0.7}, r"temperature must be 1 when thinking is on .*, got 0.7"),
        ({"thinking": THINK, "top_k": 5}, r"top_k cannot be combined with thinking"),
        ({"thinking": THINK, "tools": TOOLS, "tool_choice": "required"}, r'tool_choice must be "auto" or "none"'),
        ({"thinking": THINK, "response_schema": {"type": "object"}}, r"structured answer .* cannot be combined"),
    ],
)
def test_a_thinking_mistake_is_a_typed_error_before_any_request(emulated_site, upstream, options, message):
    site = emulated_site("anthropic")
    options = {"temperature": 1, **options}
    with pytest.raises(InvalidRequest, match=message):
        AIService(site=site).complete(ASK, model=MODEL, max_tokens=2048, **options)
    assert sent(upstream) == []
    usage.flush()
    assert not AIUsage.objects.filter(status="error").exists()  # our validation is no provider failure


def test_a_provider_that_cannot_think_refuses_the_option(emulated_site, upstream):
    site = emulated_site("openai")
    with pytest.raises(InvalidRequest, match=r"Unsupported option.*thinking"):
        AIService(site=site).complete(ASK, model="gpt-4o-mini", max_tokens=2048, temperature=1, thinking=THINK)
    assert [r for r in upstream.requests if r.method == "POST"] == []


def test_thinking_goes_to_openai_format_vendors_without_its_blocks(emulated_site, upstream):
    """A conversation that thought on Anthropic goes on elsewhere: OpenAI's format has no place for the blocks."""
    site = emulated_site("openai")
    history = [
        *ASK,
        {
            "role": "assistant",
            "content": "Chez Paul",
            "thinking": [{"type": "thinking", "thinking": "Hm", "signature": "s"}],
        },
        {"role": "user", "content": "Another?"},
    ]
    AIService(site=site).complete(history, model="gpt-4o-mini", max_tokens=50)
    body = [r for r in upstream.requests if r.method == "POST"][-1].json
    assert body["messages"][1] == {"role": "assistant", "content": "Chez Paul"}


def test_reasoning_unasked_for_thinking_streams_text_only_and_keeps_its_blocks(emulated_site, upstream, driver):
    """A call that asked for OpenRouter's `reasoning` (not `thinking`) gets text pieces only, as before, and the
    signed blocks on its result, which its next turn gives back as `reasoning_details`."""
    site = emulated_site("openrouter")
    received: list = []
    options = {"model": THINKERS["openrouter"], "max_tokens": 2048, "reasoning": {"max_tokens": 1024}}
    stream = driver.stream(AIService(site=site), "Name a bakery", received, **options)
    assert received and all(isinstance(piece, str) for piece in received)
    (block,) = stream.result.thinking
    assert block["signature"] == thinking_signature(block["thinking"])
    history = [*ASK, stream.result.as_message(), {"role": "user", "content": "Another?"}]
    driver.complete(AIService(site=site), history, **options)
    assert sent(upstream, "openrouter")[-1]["messages"][1]["reasoning_details"][0]["signature"] == block["signature"]


def test_a_model_that_cannot_think_is_refused_before_any_request(emulated_site, upstream):
    """Extended thinking came with Claude 3.7 Sonnet (`providers/capabilities.py`): an earlier model is a typed
    NotSupported naming it, not the vendor's 400; on OpenRouter, its catalogue's `reasoning` parameter decides."""
    site = emulated_site("anthropic")
    with pytest.raises(NotSupported, match=r"claude-3-5-haiku-20241022 does not support reasoning \(extended"):
        AIService(site=site).complete(ASK, model="claude-3-5-haiku", max_tokens=2048, temperature=1, thinking=THINK)
    assert sent(upstream) == []
    routed = emulated_site("openrouter")
    with pytest.raises(NotSupported, match=r"anthropic/claude-3\.5-haiku does not support reasoning \(extended"):
        AIService(site=routed).complete(
            ASK, model="anthropic/claude-3.5-haiku", max_tokens=2048, temperature=1, thinking=THINK
        )
    assert sent(upstream, "openrouter") == []
