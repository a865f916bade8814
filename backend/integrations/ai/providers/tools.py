"""Tool calling and structured output in one neutral shape, and each vendor's wire shape of them.

Callers describe a tool once — `{"name", "description", "parameters": <JSON schema>}` (OpenAI's
`{"type": "function", "function": {...}}` and Anthropic's `{"name", "input_schema"}` are accepted
too) — and get calls back as `ToolCall(id, name, arguments)` with the arguments parsed. `tool_choice`
is "auto", "none", "required" or `{"name": ...}` (that tool, forced); the `parallel_tool_calls` option, False,
holds the model to one call a turn (OpenAI's flag, Anthropic's `disable_parallel_tool_use`). A structured-output request
(`response_schema`) is sent by each vendor's strongest mechanism: OpenAI/OpenRouter
`response_format: json_schema` (strict when the schema allows it), Anthropic a forced tool whose
`input_schema` is the schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidOutput, InvalidRequest

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
CHOICES = ("auto", "none", "required")
ANSWER_TOOL = "structured_answer"  # Anthropic's forced tool for a response_schema


@dataclass(frozen=True)
class Tool:
    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class ToolCall:
    """One call the model asked for: its id (to answer it with a tool message), the tool and its arguments."""

    id: str
    name: str
    arguments: dict[str, Any]

    def result(self, content: Any, is_error: bool = False) -> dict[str, Any]:
        """The neutral tool-result message answering this call."""
        text = content if isinstance(content, str) else json.dumps(content)
        message: dict[str, Any] = {"role": "tool", "tool_call_id": self.id, "content": text}
        if is_error:
            message["is_error"] = True
        return message


def check_schema(schema: Any, where: str, provider: str | None = None) -> dict[str, Any]:
    """A JSON schema of an object, itself valid (jsonschema's meta-schema); InvalidRequest naming what is wrong."""
    import jsonschema

    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        raise InvalidRequest(f'{where} must be a JSON schema with "type": "object".', provider=provider)
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidRequest(f"{where} is not a valid JSON schema: {exc.message}.", provider=provider) from None
    return dict(schema)


def normalize_tools(tools: Any, provider: str | None = None) -> tuple[Tool, ...]:
    if not tools:
        return ()
    if not isinstance(tools, list | tuple):
        raise InvalidRequest("tools must be a list of {name, description, parameters}.", provider=provider)
    clean: list[Tool] = []
    for index, spec in enumerate(tools):
        where = f"tools[{index}]"
        if isinstance(spec, Tool):
            spec = {"name": spec.name, "description": spec.description, "parameters": spec.parameters}
        if not isinstance(spec, Mapping):
            raise InvalidRequest(f"{where} must be {{name, description, parameters}}.", provider=provider)
        if spec.get("type") == "function" and isinstance(spec.get("function"), Mapping):
            spec = spec["function"]
        name = spec.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise InvalidRequest(f"{where}.name must be 1-64 letters, digits, _ or -.", provider=provider)
        if any(t.name == name for t in clean):
            raise InvalidRequest(f"{where}.name {name!r} is used twice.", provider=provider)
        description = spec.get("description") or ""
        if not isinstance(description, str):
            raise InvalidRequest(f"{where}.description must be text.", provider=provider)
        parameters = spec.get("parameters", spec.get("input_schema", {"type": "object", "properties": {}}))
        clean.append(Tool(name, description, check_schema(parameters, f"{where}.parameters", provider)))
    return tuple(clean)


def normalize_choice(choice: Any, tools: tuple[Tool, ...], provider: str | None = None) -> Any:
    if choice is None:
        return None
    if not tools:
        raise InvalidRequest("tool_choice needs tools: give the tools it chooses among.", provider=provider)
    if isinstance(choice, str) and choice in CHOICES:
        return choice
    name = None
    if isinstance(choice, Mapping):
        name = choice.get("name") or (choice.get("function") or {}).get("name")
    elif isinstance(choice, str):
        name = choice
    if name not in {t.name for t in tools}:
        raise InvalidRequest(
            f'tool_choice must be auto, none, required or {{"name": <one of the tools>}}, got {choice!r}.',
            provider=provider,
        )
    return {"name": name}


def parse_arguments(text: str | None, name: str, provider: str | None = None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        raise InvalidOutput(f"The model's arguments for tool {name!r} are not valid JSON.", provider=provider) from None
    if not isinstance(value, dict):
        raise InvalidOutput(f"The model's arguments for tool {name!r} are not a JSON object.", provider=provider)
    return value


def strict_compatible(schema: Any) -> bool:
    """Whether OpenAI's strict mode takes `schema`: every object closed and every property required."""
    if isinstance(schema, Mapping):
        if schema.get("type") == "object" or "properties" in schema:
            props = schema.get("properties") or {}
            if schema.get("additionalProperties") is not False or set(schema.get("required") or ()) != set(props):
                return False
        return all(strict_compatible(v) for k, v in schema.items() if k not in ("enum", "const", "default"))
    if isinstance(schema, list):
        return all(strict_compatible(v) for v in schema)
    return True


# -- OpenAI / OpenRouter ------------------------------------------------------------------------------
def openai_extras(body: dict[str, Any], ai: Any) -> None:
    """Add the request's tools, tool_choice and response_schema to an OpenAI-format body."""
    if ai.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": dict(t.parameters)},
            }
            for t in ai.tools
        ]
    if ai.tool_choice is not None:
        choice = ai.tool_choice
        body["tool_choice"] = (
            choice if isinstance(choice, str) else {"type": "function", "function": {"name": choice["name"]}}
        )
    if ai.tools and ai.options.get("parallel_tool_calls") is False:  # the vendor refuses the flag without tools
        body["parallel_tool_calls"] = False
    if ai.response_schema is not None:
        schema = dict(ai.response_schema)
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": strict_compatible(schema)},
        }


def openai_calls(tool_calls: Any, provider: str | None = None) -> list[ToolCall]:
    calls = []
    for call in tool_calls or ():
        function = call.function
        calls.append(ToolCall(call.id, function.name, parse_arguments(function.arguments, function.name, provider)))
    return calls


class OpenAIToolStream:
    """Assembles streamed `delta.tool_calls[i]`: the first chunk of an index has id and name, later
    chunks append argument text."""

    def __init__(self, provider: str | None = None) -> None:
        self.provider = provider
        self.parts: dict[int, dict[str, Any]] = {}

    def add(self, deltas: Any) -> None:
        for delta in deltas or ():
            slot = self.parts.setdefault(delta.index, {"id": "", "name": "", "arguments": []})
            slot["id"] = delta.id or slot["id"]
            function = delta.function
            if function is not None:
                slot["name"] = function.name or slot["name"]
                if function.arguments:
                    slot["arguments"].append(function.arguments)

    def calls(self) -> list[ToolCall]:
        return [
            ToolCall(p["id"], p["name"], parse_arguments("".join(p["arguments"]), p["name"], self.provider))
            for _, p in sorted(self.parts.items())
        ]


# -- Anthropic -------------------------------------------------------------------------------------
def anthropic_extras(body: dict[str, Any], ai: Any) -> None:
    """Add tools and tool_choice; a response_schema becomes one forced tool whose input is the answer."""
    if ai.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)} for t in ai.tools
        ]
    choice = ai.tool_choice
    if choice is not None:
        body["tool_choice"] = (
            {"type": "tool", "name": choice["name"]}
            if isinstance(choice, Mapping)
            else {"type": {"auto": "auto", "none": "none", "required": "any"}[choice]}
        )
    if ai.tools and ai.options.get("parallel_tool_calls") is False and choice != "none":
        # Anthropic's way to hold the model to one tool call a turn: a flag on tool_choice (auto when not given)
        body["tool_choice"] = {**body.get("tool_choice", {"type": "auto"}), "disable_parallel_tool_use": True}
    if ai.response_schema is not None:
        body["tools"] = [
            {
                "name": ANSWER_TOOL,
                "description": "Give the answer in this shape.",
                "input_schema": dict(ai.response_schema),
            }
        ]
        body["tool_choice"] = {"type": "tool", "name": ANSWER_TOOL}


def anthropic_read(blocks: Any, ai: Any) -> tuple[str, list[ToolCall]]:
    """(text, tool calls) of a reply's content blocks; for a response_schema, the forced tool's input as JSON."""
    text = "".join(b.text for b in blocks if getattr(b, "type", None) == "text")
    calls = [
        ToolCall(b.id, b.name, dict(b.input) if isinstance(b.input, Mapping) else {})
        for b in blocks
        if getattr(b, "type", None) == "tool_use"
    ]
    return answer_of(text, calls, ai)


def answer_of(text: str, calls: list[ToolCall], ai: Any) -> tuple[str, list[ToolCall]]:
    if ai.response_schema is None:
        return text, calls
    answer = next((c for c in calls if c.name == ANSWER_TOOL), None)
    return (json.dumps(answer.arguments) if answer is not None else text), []


class AnthropicToolStream:
    """Assembles a streamed `tool_use` block: `content_block_start` names it, `input_json_delta`s carry
    its input as JSON text in pieces."""

    def __init__(self, provider: str | None = None) -> None:
        self.provider = provider
        self.parts: dict[int, dict[str, Any]] = {}

    def start(self, index: int, block: Any) -> None:
        if getattr(block, "type", None) == "tool_use":
            self.parts[index] = {"id": block.id, "name": block.name, "json": []}

    def add(self, index: int, delta: Any) -> None:
        if getattr(delta, "type", None) == "input_json_delta" and index in self.parts:
            self.parts[index]["json"].append(delta.partial_json)

    def calls(self) -> list[ToolCall]:
        return [
            ToolCall(p["id"], p["name"], parse_arguments("".join(p["json"]), p["name"], self.provider))
            for _, p in sorted(self.parts.items())
        ]
