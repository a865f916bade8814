"""OpenAI's Responses wire format (`POST /v1/responses`), onto the gateway and back.

The Responses API is what OpenAI's newer clients speak (`client.responses.create`, the Agents SDK,
coding tools). `parse` turns a request (`input` as a string or a list of items: messages with
`input_text`/`input_image`/`output_text` parts, `function_call` and `function_call_output` items;
`instructions`; flat function `tools`; `text.format` for structured output) into a `GatewayCall` in
the gateway's neutral shapes (`providers/conversation.py`), so any provider serves it; `response`
renders a result as a `response` object (a `message` item, then one `function_call` item per call);
`Events` renders a stream as the Responses SSE events, in the order the SDK's stream state machine
checks (`response.created`, `response.in_progress`, the message item with its `output_text` deltas,
each function call with its arguments, then `response.completed`, or `response.incomplete` when the
output was cut). Errors are OpenAI's `{"error": {...}}` (`openai_dialect.error_body`).

Panel keeps no responses: `previous_response_id`, `conversation` and `background` are a 400 naming
them (send the whole conversation in `input`), and every response says `"store": false`. OpenAI's
hosted tools (web search, file search, code interpreter, ...) are not the gateway's: a 400 naming
the tool.

Custom (free-form) tools, which take one text input instead of JSON arguments (Codex's `apply_patch` for GPT-5):
each is served as a function tool with one string parameter, `input`, on every provider, its grammar (when given)
quoted in the description for the model to follow (no vendor's Chat Completions can hold a model to it); a call of
it comes back as a `custom_tool_call` item with that input, and `custom_tool_call` / `custom_tool_call_output`
items in `input` go back to the vendor as that function's call and result.

Reasoning, statelessly (what Codex asks for: `reasoning.summary` and `include: ["reasoning.encrypted_content"]`):
when the model's answer carries its thinking (`GenerationResult.thinking`: Anthropic's signed blocks, directly or
through OpenRouter), the response opens with a `reasoning` item, its `summary` the thinking's text (when a summary
was asked for) and its `encrypted_content` the blocks themselves, signed by Panel (when it was included). A client
that sends that item back in the next `input` gives the vendor its own thinking again, as a tool loop with extended
thinking requires; a reasoning item without Panel's content (another server's, or none) carries nothing a vendor
could take and is left out.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.core import signing

from integrations.ai.providers import thinking
from integrations.ai.providers.types import FINISH_CONTENT_FILTER, FINISH_LENGTH, GenerationResult

from .calls import (
    DEFAULT_MAX_TOKENS,
    BadField,
    GatewayCall,
    Unsupported,
    need_bool,
    need_int,
    need_number,
    need_str,
    neutral_content,
    parallel_tool_calls,
    prompt_cache,
    request_body,
)
from .failures import Failure
from .openai_dialect import ROLES, tool_calls
from .openai_dialect import error_body as error_body  # the same error shape as Chat Completions

# Fields asking for what the gateway cannot give: refused with a 400 naming them, never ignored.
UNSUPPORTED = {
    "previous_response_id": "previous_response_id (Panel stores no responses: send the whole conversation in input)",
    "conversation": "conversation (Panel stores no conversations: send the whole conversation in input)",
    "background": "background responses",
    "prompt": "stored prompts",
    "max_tool_calls": "max_tool_calls",
    "top_logprobs": "top_logprobs",
}
TEXT_PARTS = ("input_text", "output_text")
SUMMARIES = ("auto", "concise", "detailed")
INCLUDABLE = ("reasoning.encrypted_content",)
REASONING_SALT = "integrations.api.v1.responses.reasoning"  # what Panel signs a reasoning item's content with
INCOMPLETE = {FINISH_LENGTH: "max_output_tokens", FINISH_CONTENT_FILTER: "content_filter"}


def _part(part: Any, where: str) -> dict[str, Any]:
    """One Responses content part as the gateway's neutral text or image part (an earlier answer's refusal as
    text)."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in TEXT_PARTS and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return {"type": "text", "text": part["refusal"]}
    if kind == "input_image":
        url = part.get("image_url")
        if part.get("file_id") and not url:
            raise Unsupported(f"{where} names an uploaded file: send image_url (an https or data: URL).", where)
        if not isinstance(url, str) or not url:
            raise BadField(f"{where}.image_url must be an https or data: URL.", where)
        neutral = {"type": "image", "url": url}
        if part.get("detail") and part["detail"] != "auto":
            neutral["detail"] = part["detail"]
        return neutral
    if kind in ("input_file", "input_audio"):
        raise Unsupported(f"{where} is {kind} content: this gateway takes text and image content only.", where)
    raise BadField(f'{where} must be an input_text part ({{"type": "input_text", "text": ...}}).', where)


def _content(content: Any, where: str) -> str | list[dict[str, Any]]:
    return neutral_content(content, where, _part)


def _tool_output(output: Any, where: str) -> str | list[dict[str, Any]]:
    """A function call's output: a string, its input_text parts joined, or text and image parts (a tool that
    returns a screenshot or an image file: the neutral tool result carries them, `providers/conversation.py`)."""
    if isinstance(output, str):
        return output
    return _content(output, where)


def _input(value: Any) -> list[dict[str, Any]]:
    """`input` as the gateway's neutral messages: a string is one user message; a function call joins the
    assistant message before it (one assistant turn with text and calls, as Anthropic needs it)."""
    if isinstance(value, str):
        if not value.strip():
            raise BadField("input must be a non-empty string or a non-empty list of input items.", "input")
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise BadField("input must be a non-empty string or a non-empty list of input items.", "input")
    messages: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []  # thinking read from a reasoning item, for the assistant turn it belongs to
    for index, item in enumerate(value):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise BadField(f"{where} must be an object: a message, a function_call or a function_call_output.", where)
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "custom_tool_call":  # a custom tool's call: its function's, the input as its one argument
            if not isinstance(item.get("input"), str):
                raise BadField(f"{where}.input must be the call's input text.", f"{where}.input")
            item, kind = {**item, "arguments": json.dumps({"input": item["input"]})}, "function_call"
        if kind == "function_call" and isinstance(item.get("namespace"), str) and item["namespace"]:
            item = {**item, "name": f"{item['namespace']}{NAMESPACE_JOIN}{item.get('name')}"}  # as the vendor knows it
        elif kind == "custom_tool_call_output":
            kind = "function_call_output"
        if kind == "reasoning":
            blocks = _reasoning_blocks(item, where)
            last = messages[-1] if messages else None
            if blocks and last is not None and last["role"] == "assistant" and not last.get("thinking"):
                last["thinking"] = blocks  # after its turn's text or calls (a stream renders it last)
            else:
                pending += blocks  # before them (a whole response renders it first)
            continue
        if kind == "message":
            role = item.get("role")
            if role not in ROLES:
                raise BadField(f"{where}.role must be one of user, assistant, system, developer.", f"{where}.role")
            messages.append({"role": ROLES[role], "content": _content(item.get("content"), f"{where}.content")})
            if pending and ROLES[role] == "assistant":
                messages[-1]["thinking"], pending = pending, []
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            arguments = item.get("arguments", "{}")
            if not isinstance(call_id, str) or not call_id:
                raise BadField(f"{where}.call_id names the call.", f"{where}.call_id")
            if not isinstance(name, str) or not name:
                raise BadField(f"{where}.name names the function called.", f"{where}.name")
            if not isinstance(arguments, str):
                raise BadField(f"{where}.arguments must be the call's arguments as JSON text.", f"{where}.arguments")
            call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and isinstance(last["content"], str):
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
                if pending:
                    messages[-1]["thinking"], pending = pending, []
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise BadField(f"{where}.call_id names the call this output answers.", f"{where}.call_id")
            text = _tool_output(item.get("output"), f"{where}.output")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
        elif isinstance(kind, str):
            raise Unsupported(
                f"{where} is a {kind} item: this gateway takes message, reasoning, function_call, "
                "function_call_output and custom tool call items.",
                where,
            )
        else:
            raise BadField(f"{where} must have a type (message, function_call, function_call_output).", where)
    if not messages:
        raise BadField("input must hold at least one message.", "input")
    return messages


def _reasoning_blocks(item: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The thinking blocks a reasoning item carries back: its `encrypted_content` as Panel signed it (`[]`: none)."""
    content = item.get("encrypted_content")
    if content is None:
        return []  # a summary alone, or another server's reasoning: nothing a vendor can take back
    if not isinstance(content, str):
        raise BadField(f"{where}.encrypted_content must be the string Panel returned.", f"{where}.encrypted_content")
    try:
        blocks = signing.loads(content, salt=REASONING_SALT)
    except signing.BadSignature:
        raise BadField(
            f"{where}.encrypted_content is not reasoning Panel returned (or it was changed); send it back as it came, "
            "or leave the reasoning item out.",
            f"{where}.encrypted_content",
        ) from None
    return blocks if isinstance(blocks, list) else []


def reasoning_item(result: GenerationResult | None, call: GatewayCall) -> dict[str, Any] | None:
    """The response's `reasoning` item, when the answer carries thinking and the request asked for its summary or
    its encrypted content; else None."""
    if result is None:
        return None
    summary, encrypted = call.echo["reasoning"]["summary"], call.include_reasoning
    if not result.thinking or not (summary or encrypted):
        return None
    text = thinking.text_of(result.thinking)
    return {
        "id": new_id("rs"),
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}] if summary and text else [],
        "encrypted_content": signing.dumps(list(result.thinking), salt=REASONING_SALT, compress=True)
        if encrypted
        else None,
    }


def _include(value: Any) -> bool:
    """`include`: only `reasoning.encrypted_content` (True: asked for); anything else is a 400 naming it."""
    if value is None:
        return False
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadField("include must be a list of strings.", "include")
    for name in value:
        if name not in INCLUDABLE:
            raise Unsupported(f"include {name!r} is not supported by this gateway; remove it.", "include")
    return "reasoning.encrypted_content" in value


def _custom_tool(tool: dict[str, Any], where: str) -> dict[str, Any]:
    """A custom tool as a function tool whose one parameter, `input`, is the free-form text; its grammar, if any,
    quoted in the description."""
    description = tool.get("description") or ""
    if not isinstance(description, str):
        raise BadField(f"{where}.description must be text.", f"{where}.description")
    form = tool.get("format") or {"type": "text"}
    kind = form.get("type") if isinstance(form, dict) else None
    if kind == "grammar":
        definition, syntax = form.get("definition"), form.get("syntax")
        if not isinstance(definition, str) or not definition.strip() or syntax not in ("lark", "regex"):
            raise BadField(
                f"{where}.format must be {{type: grammar, syntax: lark or regex, definition: ...}}.", f"{where}.format"
            )
        description += f"\n\nThe input is free-form text that must match this {syntax} grammar:\n{definition}".lstrip()
    elif kind != "text":
        raise BadField(f"{where}.format.type must be text or grammar.", f"{where}.format")
    parameters = {
        "type": "object",
        "properties": {"input": {"type": "string", "description": "The tool's whole input, as free-form text."}},
        "required": ["input"],
        "additionalProperties": False,
    }
    function = {"name": tool["name"], "description": description, "parameters": parameters}
    return {"type": "function", "function": function}


NAMESPACE_JOIN = "__"  # a namespace's tool goes to the vendor as `<namespace>__<name>`


@dataclass(frozen=True)
class Served:
    """How a tool the vendor was given is answered in this dialect: its name and namespace, and whether it is a
    custom tool (a `custom_tool_call` with input text) or a function (a `function_call`)."""

    name: str
    namespace: str | None = None
    custom: bool = False


def served_tools(call: GatewayCall) -> dict[str, Served]:
    """The request's custom and namespaced tools by the name the vendor knows them by (`_tools`); a plain function
    tool is not in it (its calls are rendered as they come)."""
    served: dict[str, Served] = {}
    for tool in call.echo.get("tools") or ():
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "custom":
            served[tool["name"]] = Served(tool["name"], custom=True)
        elif tool.get("type") == "namespace":
            for inner in tool.get("tools") or ():
                flat = f"{tool['name']}{NAMESPACE_JOIN}{inner['name']}"
                served[flat] = Served(inner["name"], tool["name"], inner.get("type") == "custom")
    return served


def _tools(value: Any) -> list[dict[str, Any]] | None:
    """Responses' flat function tools as Chat Completions' (`providers/tools.py` normalizes those), custom tools as
    function tools of one string (`_custom_tool`), a namespace's tools each as its own, named
    `<namespace>__<name>` and its description led by the namespace's (Codex groups its sub-agent tools so)."""
    if value is None or value == []:
        return None
    if not isinstance(value, list):
        raise BadField("tools must be a list of function tools.", "tools")
    tools = []
    for index, tool in enumerate(value):
        where = f"tools[{index}]"
        if isinstance(tool, dict) and tool.get("type") == "namespace":
            tools += _namespace(tool, where)
        else:
            tools.append(_tool(tool, where))
    return tools


def _tool(tool: Any, where: str, namespace: str | None = None) -> dict[str, Any]:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind not in ("function", "custom"):
        if isinstance(kind, str):
            codex = ' (Codex: web_search = "disabled" in config.toml)' if kind.startswith("web_search") else ""
            raise Unsupported(
                f"{where} is OpenAI's hosted {kind} tool: this gateway takes function, custom and namespace "
                f"tools{codex}.",
                where,
            )
        raise BadField(f'{where} must be a function tool ({{"type": "function", "name": ...}}).', where)
    assert isinstance(tool, dict)
    if not isinstance(tool.get("name"), str) or not tool["name"]:
        raise BadField(f"{where}.name names the function.", f"{where}.name")
    if kind == "custom":
        made = _custom_tool(tool, where)
    else:
        function: dict[str, Any] = {"name": tool["name"]}
        for name in ("description", "parameters", "strict"):
            if tool.get(name) is not None:
                function[name] = tool[name]
        made = {"type": "function", "function": function}
    if namespace is not None:  # the vendor knows it by its namespace and name (`served_tools` reads it back)
        made["function"]["name"] = f"{namespace}{NAMESPACE_JOIN}{made['function']['name']}"
    return made


def _namespace(tool: dict[str, Any], where: str) -> list[dict[str, Any]]:
    name, inner = tool.get("name"), tool.get("tools")
    if not isinstance(name, str) or not name:
        raise BadField(f"{where}.name names the namespace.", f"{where}.name")
    if not isinstance(inner, list) or not inner:
        raise BadField(f"{where}.tools must be a non-empty list of function tools.", f"{where}.tools")
    description = tool.get("description") or ""
    return [
        _tool(
            {**t, "description": f"{description} {t.get('description') or ''}".strip()} if isinstance(t, dict) else t,
            f"{where}.tools[{index}]",
            name,
        )
        for index, t in enumerate(inner)
    ]


def _tool_choice(value: Any, has_tools: bool) -> Any:
    if value is None:
        return None
    if value in ("auto", "none", "required"):
        if value == "required" and not has_tools:
            raise BadField("tool_choice needs tools: give the tools it chooses among.", "tool_choice")
        return value if has_tools else None
    if isinstance(value, dict) and value.get("type") in ("function", "custom"):
        if not has_tools:
            raise BadField("tool_choice needs tools: give the tools it chooses among.", "tool_choice")
        if not isinstance(value.get("name"), str) or not value["name"]:
            raise BadField("tool_choice.name names the function to call.", "tool_choice.name")
        return {"type": "function", "function": {"name": value["name"]}}
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        raise Unsupported(
            f"tool_choice {value['type']!r} is not supported: use auto, none, required or a function.", "tool_choice"
        )
    raise BadField('tool_choice must be auto, none, required or {"type": "function", "name": ...}.', "tool_choice")


def _text_format(text: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the response schema the gateway validates against, or None; `text` as the response echoes it)."""
    if text is None:
        return None, {"format": {"type": "text"}}
    if not isinstance(text, dict):
        raise BadField("text must be an object with a format.", "text")
    form = text.get("format") or {"type": "text"}
    kind = form.get("type") if isinstance(form, dict) else None
    if kind == "text":
        return None, {"format": {"type": "text"}}
    if kind == "json_object":
        return {"type": "object"}, {"format": {"type": "json_object"}}
    if kind == "json_schema":
        if not isinstance(form.get("schema"), dict):
            raise BadField("text.format.schema must be a JSON schema object.", "text.format.schema")
        return form["schema"], {"format": form}
    raise BadField("text.format.type must be text, json_object or json_schema.", "text.format")


def _reasoning(value: Any) -> tuple[str | None, str | None]:
    """(`reasoning.effort`, `reasoning.summary`). The effort is the gateway's `reasoning` option, which OpenRouter
    takes (its unified parameter, for the models that reason); a provider without it refuses the call with a 400
    naming the option. The summary (auto, concise or detailed; `generate_summary` is its older name) asks for the
    answer's thinking as a reasoning item's summary, when the model returns its thinking."""
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise BadField('reasoning must be an object, e.g. {"effort": "low"}.', "reasoning")
    if unknown := sorted(set(value) - {"effort", "summary", "generate_summary"}):
        raise BadField(f"Unknown reasoning field(s): {', '.join(unknown)}; use effort and summary.", "reasoning")
    effort = value.get("effort")
    if effort is not None and (not isinstance(effort, str) or not effort):
        raise BadField("reasoning.effort must be a string such as low, medium or high.", "reasoning.effort")
    summary = value.get("summary") if value.get("summary") is not None else value.get("generate_summary")
    if summary is not None and summary not in SUMMARIES:
        raise BadField(f"reasoning.summary must be one of {', '.join(SUMMARIES)}.", "reasoning.summary")
    return effort, summary


def parse(data: Any) -> GatewayCall:
    """The gateway call a Responses request asks for; BadField/Unsupported name what to fix."""
    data = request_body(data, UNSUPPORTED)
    if data.get("truncation") not in (None, "disabled"):
        raise Unsupported("truncation 'auto' is not supported: send input that fits the model.", "truncation")
    include_encrypted = _include(data.get("include"))
    model = need_str(data, "model", required=True)
    assert model is not None
    max_tokens = need_int(data, "max_output_tokens")
    if max_tokens is not None and max_tokens < 1:
        raise BadField("max_output_tokens must be at least 1.", "max_output_tokens")
    temperature = need_number(data, "temperature")
    instructions = need_str(data, "instructions")
    options: dict[str, Any] = {}
    if (top_p := need_number(data, "top_p")) is not None:
        options["top_p"] = top_p
    user = need_str(data, "safety_identifier") or need_str(data, "user")
    if user is not None:
        options["user"] = user
    metadata = data.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())
    ):
        raise BadField("metadata must be an object of string values.", "metadata")
    stream = need_bool(data, "stream")
    effort, summary = _reasoning(data.get("reasoning"))
    if effort is not None:
        options["reasoning"] = {"effort": effort}
    schema, text = _text_format(data.get("text"))
    if isinstance(data.get("text"), dict) and (verbosity := need_str(data["text"], "verbosity")) is not None:
        options["verbosity"] = verbosity  # GPT-5's answer length: OpenAI and OpenRouter take it, others refuse it
        text = {**text, "verbosity": verbosity}
    if schema is not None:  # the gateway's structured output; streamed, it is sent once validated (views)
        options["response_schema"] = schema
    tools = _tools(data.get("tools"))
    if tools:
        options["tools"] = tools
    if (choice := _tool_choice(data.get("tool_choice"), bool(tools))) is not None:
        options["tool_choice"] = choice
    parallel = parallel_tool_calls(data, options)
    temperature = 1.0 if temperature is None else temperature
    echo = {
        "reasoning": {"effort": effort, "summary": summary},
        "instructions": instructions,
        "max_output_tokens": max_tokens,
        "metadata": metadata or {},
        "parallel_tool_calls": parallel,
        "temperature": temperature,
        "text": text,
        "tool_choice": data.get("tool_choice") or "auto",
        "tools": data.get("tools") or [],
        "top_p": options.get("top_p", 1.0),
        "user": data.get("user"),
        "safety_identifier": data.get("safety_identifier"),
    }
    messages = _input(data.get("input"))
    prompt_cache(data, messages, options)
    return GatewayCall(
        model=model,
        messages=messages,
        max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
        temperature=temperature,
        system_prompt=instructions or None,
        options=options,
        stream=stream,
        echo=echo,
        include_reasoning=include_encrypted,
    )


def new_id(prefix: str = "resp") -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def usage(result: GenerationResult) -> dict[str, Any]:
    return {
        "input_tokens": result.prompt_tokens,
        "input_tokens_details": {"cached_tokens": result.cached_tokens},
        "output_tokens": result.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": result.reasoning_tokens},
        "total_tokens": result.total_tokens or result.prompt_tokens + result.completion_tokens,
    }


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [] if status == "in_progress" else [output_text(text)]
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_items(result: GenerationResult | None, served: dict[str, Served] | None = None) -> list[dict[str, Any]]:
    """The result's tool calls as `function_call` items (Chat Completions' calls, `openai_dialect.tool_calls`,
    in Responses' flat shape: the same ids and arguments text); a call of a custom tool as a `custom_tool_call`
    item with its input text, and a namespace's tool under its own name with its `namespace` (`served_tools`)."""
    if result is None:
        return []
    items = []
    for made, call in zip(result.tool_calls, tool_calls(result), strict=True):
        tool = (served or {}).get(made.name) or Served(made.name)
        item: dict[str, Any] = {"id": new_id("fc"), "type": "function_call", "status": "completed"}
        item.update(call_id=made.id, name=tool.name)
        if tool.namespace is not None:
            item["namespace"] = tool.namespace
        if tool.custom:
            text = made.arguments.get("input")
            item.update(id=new_id("ctc"), type="custom_tool_call", input=text if isinstance(text, str) else "")
        else:
            item["arguments"] = call["function"]["arguments"]
        items.append(item)
    return items


def _status(result: GenerationResult | None) -> tuple[str, dict[str, str] | None]:
    reason = INCOMPLETE.get(result.finish_reason) if result is not None else None
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def _response(
    response_id: str,
    created: int,
    echo: dict[str, Any],
    model: str,
    status: str,
    output: list[dict[str, Any]],
    counts: dict[str, Any] | None,
    incomplete: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": incomplete,
        "model": model,
        "output": output,
        "previous_response_id": None,
        "service_tier": "default",
        "store": False,  # Panel keeps no responses: nothing to retrieve or continue from by id
        "truncation": "disabled",
        "usage": counts,
        **echo,
    }


def response(result: GenerationResult, call: GatewayCall) -> dict[str, Any]:
    """A `response` object for a finished call: its text as a message item, then its function calls."""
    output = call_items(result, served_tools(call))
    if result.content or not output:
        output.insert(0, message_item(new_id("msg"), result.content))
    if (reasoning := reasoning_item(result, call)) is not None:
        output.insert(0, reasoning)  # as OpenAI orders them: the reasoning, then what it led to
    status, incomplete = _status(result)
    return _response(new_id(), int(time.time()), call.echo, result.model, status, output, usage(result), incomplete)


class Events:
    """The SSE events of one streamed response: `first()`, `delta(text)` per piece, then `end(result)`.

    Every event carries the next `sequence_number`. The message item opens with the first text (a reply
    made only of function calls has none); the calls follow once the upstream's call is complete."""

    def __init__(self, model: str, call: GatewayCall) -> None:
        self.id = new_id()
        self.created = int(time.time())
        self.model = model
        self.call = call
        self.echo = call.echo
        self.sequence = 0
        self.item_id = new_id("msg")
        self.pieces: list[str] | None = None  # the text sent, once the message item is open
        self._delta_ends: tuple[bytes, bytes] | None = None

    def _event(self, kind: str, payload: dict[str, Any]) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **payload}
        self.sequence += 1
        return f"event: {kind}\ndata: ".encode() + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"

    def _snapshot(self, status: str, output: list[dict[str, Any]], counts: dict[str, Any] | None, **kw: Any) -> dict:
        return _response(self.id, self.created, self.echo, self.model, status, output, counts, **kw)

    def first(self) -> bytes:
        snapshot = self._snapshot("in_progress", [], None)
        return self._event("response.created", {"response": snapshot}) + self._event(
            "response.in_progress", {"response": snapshot}
        )

    def _open(self) -> bytes:
        self.pieces = []
        where = {"item_id": self.item_id, "output_index": 0, "content_index": 0}
        return self._event(
            "response.output_item.added", {"output_index": 0, "item": message_item(self.item_id, "", "in_progress")}
        ) + self._event("response.content_part.added", {**where, "part": output_text("")})

    def delta(self, text: str) -> bytes:
        """An `output_text.delta` event, from its fixed head, the sequence number and the text's JSON (nearly
        every event of a stream is one: as `openai_dialect.Chunks.delta`, issue 22)."""
        opening = self._open() if self.pieces is None else b""
        assert self.pieces is not None
        self.pieces.append(text)
        ends = self._delta_ends
        if ends is None:
            kind = "response.output_text.delta"
            head = f'event: {kind}\ndata: {{"type":"{kind}","sequence_number":'.encode()
            middle = json.dumps(
                {"item_id": self.item_id, "output_index": 0, "content_index": 0, "logprobs": []}, separators=(",", ":")
            )
            ends = self._delta_ends = (head, b"," + middle[1:-1].encode() + b',"delta":')
        number = self.sequence
        self.sequence += 1
        return opening + ends[0] + str(number).encode() + ends[1] + json.dumps(text).encode() + b"}\n\n"

    def end(self, result: GenerationResult | None) -> bytes:
        out = b""
        calls = call_items(result, served_tools(self.call))
        output: list[dict[str, Any]] = []
        if self.pieces is None and not calls:
            out += self._open()  # an empty answer is still one (empty) message
        if self.pieces is not None:
            text = "".join(self.pieces)
            where = {"item_id": self.item_id, "output_index": 0, "content_index": 0}
            item = message_item(self.item_id, text)
            out += (
                self._event("response.output_text.done", {**where, "text": text, "logprobs": []})
                + self._event("response.content_part.done", {**where, "part": output_text(text)})
                + self._event("response.output_item.done", {"output_index": 0, "item": item})
            )
            output.append(item)
        for item in calls:
            index = len(output)
            where = {"item_id": item["id"], "output_index": index}
            if item["type"] == "custom_tool_call":
                opened = {**item, "status": "in_progress", "input": ""}
                body = self._event("response.custom_tool_call_input.delta", {**where, "delta": item["input"]})
                body += self._event("response.custom_tool_call_input.done", {**where, "input": item["input"]})
            else:
                opened = {**item, "status": "in_progress", "arguments": ""}
                body = self._event("response.function_call_arguments.delta", {**where, "delta": item["arguments"]})
                body += self._event(
                    "response.function_call_arguments.done",
                    {**where, "name": item["name"], "arguments": item["arguments"]},
                )
            out += (
                self._event("response.output_item.added", {"output_index": index, "item": opened})
                + body
                + self._event("response.output_item.done", {"output_index": index, "item": item})
            )
            output.append(item)
        if (reasoning := reasoning_item(result, self.call)) is not None:
            # the thinking is known once the answer is (a stream's thinking pieces are not sent in this format), so
            # its item comes after the answer's; sent back, it joins the same assistant turn (`_input`)
            index = len(output)
            out += self._event(
                "response.output_item.added", {"output_index": index, "item": {**reasoning, "summary": []}}
            ) + self._event("response.output_item.done", {"output_index": index, "item": reasoning})
            output.append(reasoning)
        status, incomplete = _status(result)
        counts = usage(result) if result is not None else None
        final = self._snapshot(status, output, counts, incomplete=incomplete)
        return out + self._event(f"response.{status}", {"response": final})

    def error(self, failure: Failure) -> bytes:
        """Responses' `error` event after the stream started; its `error` object makes the SDK raise APIError."""
        body = error_body(failure)
        return self._event("error", {"code": failure.code, "message": failure.message, "param": failure.param, **body})
