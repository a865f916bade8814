"""Issue 20 (2): structured output on every provider through the real SDKs against the emulator.

`generate_json(prompt, schema=...)` returns JSON valid against the schema by the provider's strongest
mechanism (OpenAI/OpenRouter/compatible `response_format: json_schema`, strict when the schema is
closed; Anthropic a forced tool); an invalid answer gets one corrective retry that names the
validation errors; a second invalid answer raises `InvalidOutput` and nothing invalid is returned.
"""

from __future__ import annotations

import pytest

from integrations.ai.gateway.service import AIService
from integrations.ai.providers.errors import InvalidOutput, InvalidRequest
from integrations.ai.providers.tools import ANSWER_TOOL

from .beyond_text import KINDS, assert_priced_and_budgeted, ledger, make_gateway

pytestmark = pytest.mark.django_db

PRODUCT = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "price": {"type": "number"}},
    "required": ["name", "price"],
    "additionalProperties": False,
}
PROMPT = "Describe the product Lemon tart as JSON."


def posts(upstream, gateway) -> list:
    return [r for r in upstream.requests_for(gateway.flavor) if r.method == "POST"]


def script_answer(upstream, gateway, answer: dict, times: int = 1) -> None:
    """The model answers `answer` (invalid on purpose) the next `times` times, in its vendor's way."""
    if gateway.flavor == "anthropic":
        upstream.script(flavor="anthropic", tool_calls=[{"name": ANSWER_TOOL, "arguments": answer}], times=times)
    else:
        import json

        upstream.script(flavor=gateway.flavor, content=json.dumps(answer), times=times)


@pytest.mark.parametrize("kind", KINDS)
def test_schema_valid_json_by_the_strongest_mechanism(kind, upstream, driver):
    gateway = make_gateway(kind, upstream)
    data = driver.generate(AIService(site=gateway.site), PROMPT, response_schema=PRODUCT, **gateway.call()).parsed
    assert set(data) == {"name", "price"} and isinstance(data["price"], int | float)
    body = upstream.requests_for(gateway.flavor)[-1].json
    if kind == "anthropic":
        assert body["tool_choice"] == {"type": "tool", "name": ANSWER_TOOL}
        assert body["tools"] == [
            {"name": ANSWER_TOOL, "description": "Give the answer in this shape.", "input_schema": PRODUCT}
        ]
    else:
        assert body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": PRODUCT, "strict": True},
        }
    assert_priced_and_budgeted(gateway.site, calls=1)


@pytest.mark.parametrize("kind", KINDS)
def test_an_invalid_answer_gets_one_corrective_retry_naming_the_errors(kind, upstream, driver):
    gateway = make_gateway(kind, upstream)
    script_answer(upstream, gateway, {"name": "Lemon tart"})
    result = driver.generate(AIService(site=gateway.site), PROMPT, response_schema=PRODUCT, **gateway.call())
    assert set(result.parsed) == {"name", "price"}
    _, retry = posts(upstream, gateway)
    correction = retry.json["messages"][-1]["content"]
    assert "'price' is a required property" in correction
    assert retry.json["messages"][-2]["role"] == "assistant"
    assert_priced_and_budgeted(gateway.site, calls=2)


@pytest.mark.parametrize("kind", KINDS)
def test_a_second_invalid_answer_is_refused_and_nothing_invalid_is_returned(kind, upstream, driver):
    gateway = make_gateway(kind, upstream)
    script_answer(upstream, gateway, {"name": "Lemon tart", "price": "cheap"}, times=2)
    with pytest.raises(InvalidOutput) as caught:
        driver.generate(AIService(site=gateway.site), PROMPT, response_schema=PRODUCT, **gateway.call())
    assert caught.value.code == "invalid_output"
    assert caught.value.errors == ["price: 'cheap' is not of type 'number'"]
    assert len(posts(upstream, gateway)) == 2  # one corrective retry, no more
    assert_priced_and_budgeted(gateway.site, calls=2)  # both calls were made and are paid for


def test_the_async_entry_points_return_the_parsed_json(upstream):
    """`agenerate_json` is `generate_json` awaited (the rounds above ran on both drivers)."""
    from asgiref.sync import async_to_sync

    gateway = make_gateway("openai", upstream)
    script_answer(upstream, gateway, {"name": "Lemon tart", "price": 4.5})
    data = async_to_sync(AIService(site=gateway.site).agenerate_json)(PROMPT, schema=PRODUCT, **gateway.call())
    assert data == {"name": "Lemon tart", "price": 4.5}


def test_an_open_schema_is_sent_non_strict_and_still_validated(upstream):
    gateway = make_gateway("openai", upstream)
    open_schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "note": {"type": "string"}},
        "required": ["name"],
    }
    data = AIService(site=gateway.site).generate_json(PROMPT, schema=open_schema, **gateway.call())
    assert isinstance(data["name"], str)
    assert upstream.requests_for("openai")[-1].json["response_format"]["json_schema"]["strict"] is False


def test_a_bad_schema_is_refused_before_any_request(upstream):
    gateway = make_gateway("openai", upstream)
    with pytest.raises(InvalidRequest, match="response_schema must be a JSON schema"):
        AIService(site=gateway.site).generate_json(PROMPT, schema={"type": "array"})
    with pytest.raises(InvalidRequest, match="response_schema is not a valid JSON schema"):
        AIService(site=gateway.site).generate_json(PROMPT, schema={"type": "object", "required": "name"})
    assert upstream.requests == [] and ledger(gateway.site) == []
