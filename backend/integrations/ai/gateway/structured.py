"""Structured output: an answer that is JSON matching a JSON schema, or a typed error — never invalid data.

`AIService.generate_json(prompt, schema=...)` and `generate_content(..., response_schema=...)` come
here. Each call goes through the whole pipeline (policy, rate limits, budget, failover, ledger); the
provider uses its strongest mechanism (`providers/tools.py`: OpenAI/OpenRouter `response_format:
json_schema`, strict when the schema allows; Anthropic a forced tool). The answer is then parsed and
validated with `jsonschema`; when it does not match, one corrective retry tells the model exactly
which paths failed and why, and a second failure raises `InvalidOutput` with those errors.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from integrations.ai.providers.errors import InvalidOutput
from integrations.ai.providers.types import GenerationResult

if TYPE_CHECKING:
    from integrations.ai.gateway.service import AIService

MAX_ERRORS = 5
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def problems(text: str, schema: dict[str, Any]) -> tuple[Any, list[str]]:
    """(the parsed value, the ways it fails `schema`); an empty list means valid."""
    import jsonschema

    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    try:
        value = json.loads(fenced.group(1) if fenced else stripped)
    except json.JSONDecodeError as exc:
        return None, [f"the answer is not JSON ({exc.msg} at character {exc.pos})"]
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return value, [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors[:MAX_ERRORS]]


class JsonRounds:
    """The rules of a structured call, for either driver: what each call sends, and what its answer means.

    The first call sends the conversation (the response cache allowed, as the caller asked); when its answer
    does not match the schema, a second, never cached, carries that answer and the validation errors; a
    second failure raises `InvalidOutput` with them. Each call is a whole pipeline call (its own ledger rows
    and budget reservation); the final answer's `steps` lists both when there were two.
    """

    def __init__(self, messages: list[dict[str, Any]], cache: bool | None) -> None:
        self.history = list(messages)
        self.cache = cache
        self.earlier: list[GenerationResult] = []

    def call(self) -> tuple[list[dict[str, Any]], bool | None]:
        """The conversation and the cache flag of the next call."""
        return list(self.history), (self.cache if not self.earlier else False)

    def answer(self, result: GenerationResult, schema: dict[str, Any]) -> GenerationResult | None:
        """The validated answer (`.parsed` set), or None when a corrective call must follow."""
        value, errors = problems(result.content, schema)
        if not errors:
            result.parsed = value
            if self.earlier:  # the answer records both calls (each already has its own ledger rows)
                result.steps = [*self.earlier, result]
            return result
        if self.earlier:
            raise InvalidOutput(
                f"The model's answer did not match the schema after a corrective retry: {'; '.join(errors)}.",
                errors=errors,
                provider=result.provider,
            )
        self.earlier.append(result)
        self.history += [
            {"role": "assistant", "content": result.content or "(no answer)"},
            {
                "role": "user",
                "content": "Your answer did not match the required JSON schema: "
                + "; ".join(errors)
                + ". Answer again with only the corrected JSON.",
            },
        ]
        return None


def complete_json(
    service: AIService,
    messages: list[dict[str, Any]],
    *,
    response_schema: dict[str, Any],
    cache: bool | None = None,
    failover: bool = True,
    **params: Any,
) -> GenerationResult:
    """The pipeline's answer with `.parsed` set to JSON valid against `response_schema` (`JsonRounds`).

    The schema is checked once (InvalidRequest before any call when it is not a valid object schema)."""
    rounds = JsonRounds(messages, cache)
    while True:
        history, cached = rounds.call()
        prep = service.prepare(history, response_schema=response_schema, **params)
        result = service.execute(prep, cache=cached, failover=failover)
        if (answer := rounds.answer(result, dict(prep.request.response_schema or {}))) is not None:
            return answer


async def acomplete_json(
    service: AIService,
    messages: list[dict[str, Any]],
    *,
    response_schema: dict[str, Any],
    cache: bool | None = None,
    failover: bool = True,
    **params: Any,
) -> GenerationResult:
    """`complete_json` on the async driver: the same rounds, each call `aexecute`d."""
    from integrations.ai.runtime.offload import offload

    rounds = JsonRounds(messages, cache)
    while True:
        history, cached = rounds.call()
        prep = await offload(service.prepare, history, response_schema=response_schema, **params)
        result = await service.aexecute(prep, cache=cached, failover=failover)
        if (answer := rounds.answer(result, dict(prep.request.response_schema or {}))) is not None:
            return answer
