"""The emulator's tools, structured output, images and embeddings, in each vendor's wire format.

Pure functions `upstream.py` calls: what a vendor would refuse (a tool result with no call before it,
a call left unanswered, an image sent to a text-only model, a strict schema that is not closed, too
many embedding inputs), the tool calls a model would make (the forced tool, else the first, with
arguments that satisfy its schema — or the script's), the answer after a tool result (it quotes the
result, so tests see it arrived), an image's description and tokens by each vendor's rule, streamed
tool-call deltas (OpenAI `delta.tool_calls`, Anthropic `input_json_delta`), and `/embeddings`.
Standard library only, like the emulator.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import struct
import uuid
from decimal import Decimal
from typing import Any

TEXT_ONLY = (
    "gpt-3.5-turbo",
    "o1-mini",
    "o3-mini",
    "claude-3-5-haiku-20241022",
    "openai/gpt-3.5-turbo",
    "openai/o3-mini",
    "anthropic/claude-3.5-haiku",
)
EMBEDDING_MODELS = {
    "text-embedding-3-small": ("0.00000002", 1536),
    "text-embedding-3-large": ("0.00000013", 3072),
    "text-embedding-ada-002": ("0.0000001", 1536),
}
EMBEDDING_MAX_INPUTS = 2048
EMBEDDING_MAX_TOKENS = 300_000
EMBEDDING_DIMENSIONS = 64  # shorter than a vendor's (1,536) unless `dimensions` asks: enough for hashed words
ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def input_modalities(model: str) -> list[str]:
    """OpenRouter's catalogue: what a model takes (`architecture.input_modalities`)."""
    return ["text"] if model in TEXT_ONLY or model.startswith(("meta-llama/", "mistralai/")) else ["text", "image"]


REASONING_MODELS = (
    "openai/o3-mini",
    "anthropic/claude-3.7-sonnet",
    "anthropic/claude-sonnet-4",
    "anthropic/claude-opus-4",
    "anthropic/claude-opus-4.1",
    "anthropic/claude-haiku-4.5",
    "anthropic/claude-sonnet-4.6",
)
# OpenRouter's effort levels as a share of max_tokens spent reasoning (its documented mapping)
EFFORT_SHARE = {"xhigh": 0.95, "high": 0.8, "medium": 0.5, "low": 0.2, "minimal": 0.1, "none": 0.0}


def supported_parameters(model: str) -> list[str]:
    """OpenRouter's catalogue: the request parameters a model supports."""
    params = ["max_tokens", "temperature", "top_p", "stop", "tools", "tool_choice"]
    if model in ("openai/gpt-3.5-turbo",):
        return params
    params += ["response_format", "structured_outputs"]
    return [*params, "reasoning", "include_reasoning"] if model in REASONING_MODELS else params


def openai_reasoning_model(model: str) -> bool:
    """OpenAI's reasoning models (o-series, GPT-5 but its chat variant)."""
    return model.startswith(("o1", "o3", "o4", "gpt-5")) and not model.startswith("gpt-5-chat")


def openai_reasoning_problem(model: str, body: dict) -> tuple[str, str, str] | None:
    """(message, code, param) of OpenAI's 400 for a reasoning parameter a chat model does not take, else None."""
    if openai_reasoning_model(model):
        if "max_tokens" in body:
            return (
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' "
                "instead.",
                "unsupported_parameter",
                "max_tokens",
            )
        if body.get("temperature", 1) != 1:
            return (
                f"Unsupported value: 'temperature' does not support {body['temperature']} with this model. Only the "
                "default (1) value is supported.",
                "unsupported_value",
                "temperature",
            )
        effort = body.get("reasoning_effort")
        if effort is not None and effort not in ("none", "minimal", "low", "medium", "high", "xhigh"):
            return f"Invalid value: '{effort}'.", "invalid_value", "reasoning_effort"
    elif "reasoning_effort" in body:
        return (
            "Unrecognized request argument supplied: reasoning_effort",
            "unsupported_parameter",
            "reasoning_effort",
        )
    return None


def openai_reasoning_tokens(model: str, body: dict, max_tokens: int) -> int:
    """The tokens an OpenAI reasoning model spends thinking: its effort's share of max_completion_tokens."""
    if not openai_reasoning_model(model):
        return 0
    return int(max_tokens * EFFORT_SHARE.get(body.get("reasoning_effort") or "medium", 0.5))


def reasoning_problem(reasoning: object) -> str | None:
    """What OpenRouter answers 400 for in a `reasoning` object, else None."""
    if not isinstance(reasoning, dict):
        return "reasoning must be an object"
    if reasoning.get("effort") is not None and reasoning.get("max_tokens") is not None:
        return "Only one of reasoning.effort and reasoning.max_tokens may be given"
    if reasoning.get("effort") is not None and reasoning["effort"] not in EFFORT_SHARE:
        return f"Invalid reasoning.effort: {reasoning['effort']}"
    return None


def reasoning_tokens(model: str, reasoning: object, max_tokens: int) -> int:
    """The tokens a reasoning model spends thinking for a `reasoning` request (0 for other models or
    none asked): its `max_tokens` budget, or its effort's share of the request's max_tokens."""
    if model not in REASONING_MODELS or not isinstance(reasoning, dict) or reasoning.get("enabled") is False:
        return 0
    if reasoning.get("max_tokens") is not None:
        return min(int(reasoning["max_tokens"]), max_tokens)
    return int(max_tokens * EFFORT_SHARE[reasoning.get("effort") or "medium"])


def _words(text: str) -> int:
    return len(text.split())


# -- tool conversations -------------------------------------------------------------------------------
def openai_problem(body: dict) -> str | None:
    """What OpenAI answers 400 for in a tools request or history, else None."""
    for tool in body.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function" or not function.get("name"):
            return "Invalid 'tools': each tool needs type 'function' and function.name."
    if "parallel_tool_calls" in body and not body.get("tools"):
        return (
            "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified."
        )
    open_calls: list[str] = []
    for message in body.get("messages") or ():
        role = message.get("role")
        if role == "tool":
            if message.get("tool_call_id") not in open_calls:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    "with 'tool_calls'."
                )
            open_calls.remove(message["tool_call_id"])
            continue
        if open_calls:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {open_calls[0]}"
            )
        open_calls = [c.get("id") for c in message.get("tool_calls") or ()]
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        spec = response_format.get("json_schema") or {}
        if spec.get("strict") and not _closed(spec.get("schema") or {}):
            return (
                f"Invalid schema for response_format '{spec.get('name')}': In context=(), "
                "'additionalProperties' is required to be supplied and to be false, and 'required' must list "
                "every property."
            )
    return None


def _closed(schema: Any) -> bool:
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            props = schema.get("properties") or {}
            if schema.get("additionalProperties") is not False or set(schema.get("required") or ()) != set(props):
                return False
        return all(_closed(v) for v in schema.values())
    if isinstance(schema, list):
        return all(_closed(v) for v in schema)
    return True


def anthropic_problem(body: dict) -> str | None:
    """What Anthropic answers 400 for in a tools request or history, else None."""
    for tool in body.get("tools") or ():
        schema = (tool.get("input_schema") or {}) if isinstance(tool, dict) else {}
        if not isinstance(tool, dict) or not tool.get("name") or schema.get("type") != "object":
            return "tools.0.input_schema: Input should be a valid JSON schema of type object"
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and "disable_parallel_tool_use" in choice and choice.get("type") == "none":
        return "tool_choice.none.disable_parallel_tool_use: Extra inputs are not permitted"
    previous: list[str] = []
    for index, message in enumerate(body.get("messages") or ()):
        role = message.get("role")
        if role not in ("user", "assistant"):
            return f'messages.{index}.role: Input should be "user" or "assistant"'
        blocks = message.get("content") if isinstance(message.get("content"), list) else []
        results = [str(b.get("tool_use_id")) for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        if previous and sorted(results) != sorted(previous):
            missing = [i for i in previous if i not in results]
            if missing:
                return (
                    f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block "
                    "in the next message."
                )
        unknown = [i for i in results if i not in previous]
        if unknown:
            return (
                f"messages.{index}.content: unexpected `tool_use_id` found in `tool_result` blocks: {unknown[0]}. "
                "Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
            )
        previous = (
            [str(b.get("id")) for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]
            if (role == "assistant")
            else []
        )
        if any(not ANTHROPIC_ID.match(str(i)) for i in previous):
            return f"messages.{index}.content: tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"
    return None


def tool_result_text(flavor: str, messages: list) -> str | None:
    """The tool results that end the conversation (the model's turn to answer them), joined; else None."""
    if not messages:
        return None
    last = messages[-1]
    if flavor == "anthropic":
        blocks = last.get("content") if isinstance(last.get("content"), list) else []
        results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        texts = [b["content"] if isinstance(b.get("content"), str) else json.dumps(b.get("content")) for b in results]
        return "; ".join(texts) if results else None
    tail: list[str] = []
    if len(messages) > 1 and last.get("role") == "user" and messages[-2].get("role") == "tool":
        messages = messages[:-1]  # the results' images, in the user message right after them (OpenAI's format)
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        tail.insert(0, str(message.get("content")))
    return "; ".join(tail) if tail else None


def tool_calls_for(
    flavor: str, body: dict, messages: list, scripted: list | None, instance: Any, text: str
) -> list[tuple[str, str, dict]] | None:
    """The calls the model makes: (id, name, arguments), or None for a text answer."""
    tools = body.get("tools") or []
    if not tools:
        return None
    choice = body.get("tool_choice")
    names = [t["function"]["name"] if flavor != "anthropic" else t["name"] for t in tools]
    schemas = {
        name: (t["function"].get("parameters") if flavor != "anthropic" else t.get("input_schema")) or {}
        for name, t in zip(names, tools, strict=True)
    }
    forced = None
    if isinstance(choice, dict):
        forced = (choice.get("function") or {}).get("name") or choice.get("name")
        if choice.get("type") == "any":
            forced = names[0]
        if choice.get("type") in ("auto", "none"):
            forced = None
    elif choice == "required":
        forced = names[0]
    if choice == "none" or (isinstance(choice, dict) and choice.get("type") == "none"):
        return None
    if forced is None and tool_result_text(flavor, messages) is not None:
        return None  # the results are in: answer them
    prefix = "toolu_" if flavor == "anthropic" else "call_"
    if scripted:
        # one call per turn when the caller turned parallel calls off (OpenAI's flag, Anthropic's tool_choice one)
        one = body.get("parallel_tool_calls") is False or (
            isinstance(choice, dict) and choice.get("disable_parallel_tool_use")
        )
        calls = scripted[:1] if one else scripted
        return [(f"{prefix}{uuid.uuid4().hex[:20]}", c["name"], c.get("arguments") or {}) for c in calls]
    name = forced or names[0]
    return [(f"{prefix}{uuid.uuid4().hex[:20]}", name, instance(schemas.get(name) or {}, text))]


def split_json(arguments: dict, pieces: int = 3) -> list[str]:
    text = json.dumps(arguments)
    size = max(1, math.ceil(len(text) / pieces))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


# -- images ---------------------------------------------------------------------------------------------
def images_in(flavor: str, messages: list) -> list[dict]:
    """The images of the last user message: media type and size when the bytes are inline."""
    users = [m for m in messages if m.get("role") == "user"]
    content = users[-1].get("content") if users else None
    found = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            detail = (part.get("image_url") or {}).get("detail", "auto")
            match = re.match(r"data:(image/[a-z]+);base64,(.*)", url, re.DOTALL)
            found.append(
                {
                    "media": match.group(1) if match else "url",
                    "detail": detail,
                    "size": _png_size(match.group(2)) if match else None,
                }
            )
        elif part.get("type") == "image":
            source = part.get("source") or {}
            data = source.get("data") if source.get("type") == "base64" else None
            found.append(
                {"media": source.get("media_type", "url"), "detail": "auto", "size": _png_size(data) if data else None}
            )
    return found


def _png_size(data: str) -> tuple[int, int] | None:
    try:
        raw = base64.b64decode(data[:64] + "=" * (-len(data[:64]) % 4))
    except (binascii.Error, ValueError):
        return None
    if raw[:8] != b"\x89PNG\r\n\x1a\n" or len(raw) < 24:
        return None
    width, height = struct.unpack(">II", raw[16:24])
    return width, height


def image_tokens(flavor: str, model: str, image: dict) -> int:
    """Tokens by the vendor's rule: OpenAI tiles (85 + 170 per 512-px tile after scaling; low = 85),
    Anthropic width x height / 750."""
    size = image["size"] or (1024, 1024)
    width, height = size
    if flavor == "anthropic" or model.startswith("anthropic/"):
        scale = min(1.0, 1568 / max(width, height))
        return min(math.ceil(width * scale * height * scale / 750), 1600)
    base, tile = (2833, 5667) if "4o-mini" in model else (85, 170)
    if image["detail"] == "low":
        return base
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    return base + tile * math.ceil(width * scale / 512) * math.ceil(height * scale / 512)


def image_problem(model: str, messages: list, flavor: str) -> str | None:
    if images_in(flavor, messages) and model in TEXT_ONLY:
        return (
            "Invalid content type. image_url is only supported by certain models."
            if flavor != "anthropic"
            else f"model {model} does not support image input."
        )
    return None


# -- embeddings ------------------------------------------------------------------------------------------
def embeddings(flavor: str, body: dict) -> tuple[int, dict]:
    """(status, payload) of `POST /embeddings`: the vendor's limits, deterministic vectors, usage (and
    OpenRouter's cost)."""
    model = str(body.get("model") or "")
    bare = model.split("/", 1)[1] if flavor == "openrouter" and model.startswith("openai/") else model
    if flavor != "compatible" and bare not in EMBEDDING_MODELS:
        return 404 if flavor == "openai" else 400, {
            "message": f"The model `{model}` does not exist or is not an embedding model."
        }
    inputs = body.get("input")
    inputs = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) and t for t in inputs):
        return 400, {"message": "'$.input' is invalid. Please check the API reference."}
    if flavor != "compatible" and len(inputs) > EMBEDDING_MAX_INPUTS:
        return 400, {"message": f"'$.input' is invalid: at most {EMBEDDING_MAX_INPUTS} inputs per request."}
    tokens = [max(_words(t), 1) for t in inputs]
    if flavor != "compatible" and sum(tokens) > EMBEDDING_MAX_TOKENS:
        return 400, {
            "message": f"Requests can use at most {EMBEDDING_MAX_TOKENS} tokens in total across "
            f"all inputs; this one has {sum(tokens)}."
        }
    dims = int(body.get("dimensions") or EMBEDDING_DIMENSIONS)
    data = [{"object": "embedding", "index": i, "embedding": _vector(text, dims)} for i, text in enumerate(inputs)]
    usage: dict[str, Any] = {"prompt_tokens": sum(tokens), "total_tokens": sum(tokens)}
    if flavor == "openrouter":
        usage["cost"] = float(Decimal(EMBEDDING_MODELS[bare][0]) * sum(tokens))
    return 200, {"object": "list", "data": data, "model": model, "usage": usage}


_STOPWORDS = frozenset(
    (
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "our",
        "the",
        "this",
        "to",
        "we",
        "with",
        "you",
        "your",
    )
)


def _stem(word: str) -> str:
    """A crude stem, so "recipes" and "recipe", "baking" and "bake" meet in one dimension."""
    for suffix in ("ing", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _vector(text: str, dims: int) -> list[float]:
    """A unit vector of hashed words (feature hashing, signed), as a vendor's vectors are of unit length:
    texts sharing words point the same way, so search by meaning works on the emulator. A text with no
    word falls back to its digest."""
    words = [_stem(w) for w in re.findall(r"[^\W\d_]+", text.lower()) if w not in _STOPWORDS and len(w) > 1]
    if not words:
        digest = hashlib.sha256(text.encode()).digest()
        raw = [(digest[i % len(digest)] - 128) / 128 for i in range(dims)]
    else:
        raw = [0.0] * dims
        for word in words:
            digest = hashlib.sha256(word.encode()).digest()
            raw[int.from_bytes(digest[:4], "big") % dims] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [round(x / norm, 6) for x in raw]


# -- translation -----------------------------------------------------------------------------------------
_TARGET = re.compile(r"into [^\n(]*\(([A-Za-z-]{2,12})\)")
_GLOSSARY_LINE = re.compile(r'^- "([^"]+)" -> (?:"([^"]+)"|keep as is)$', re.MULTILINE)
_FIELDS = re.compile(r"^Fields:\n(\{.*\})\s*$", re.DOTALL | re.MULTILINE)


def translation_answer(system: str, last: str, schema: dict | None) -> str | None:
    """JSON for a page translation request (`pages.translation`), else None: each field's text tagged
    with the target language, the glossary's fixed translations applied, so tests see both arrive."""
    if "translate" not in system.lower():
        return None
    target, fields = _TARGET.search(last), _FIELDS.search(last)
    if target is None or fields is None:
        return None
    try:
        source = json.loads(fields.group(1))
    except ValueError:
        return None
    glossary = [(term, fixed) for term, fixed in _GLOSSARY_LINE.findall(last) if fixed]
    keys = list((schema or {}).get("properties") or source)
    answer = {}
    for key in keys:
        text = str(source.get(key, ""))
        for term, fixed in glossary:
            text = re.sub(rf"\b{re.escape(term)}\b", fixed, text, flags=re.IGNORECASE)
        answer[key] = f"[{target.group(1)}] {text}"
    return json.dumps(answer, ensure_ascii=False)


# -- extended thinking (Anthropic) --------------------------------------------------------------------
# Anthropic's documented test string: a request holding it is answered with a redacted_thinking block.
REDACTED_TRIGGER = (
    "ANTHROPIC_MAGIC_STRING_TRIGGER_REDACTED_THINKING_46C9A13E193C177646C7398A98432ECCCE4C1253D5E2D82641AC0E52CC2876CB"
)
_SIGNING_KEY = b"upstream-emulator-thinking"


def thinking_signature(text: str) -> str:
    """The emulator's signature of a thinking text (the vendor's is opaque too): what it checks when the block
    comes back, so a block edited, re-created or moved between answers is refused as the vendor refuses it."""
    import hmac

    return base64.b64encode(hmac.new(_SIGNING_KEY, text.encode(), hashlib.sha256).digest()).decode()


def thinking_budget(body: dict) -> int | None:
    """The thinking a request asks for: its budget in tokens (adaptive: a quarter of max_tokens), None when off."""
    config = body.get("thinking")
    if not isinstance(config, dict) or config.get("type") in (None, "disabled"):
        return None
    if config.get("type") == "adaptive":
        return max(1, int(body.get("max_tokens") or 0) // 4)
    return int(config.get("budget_tokens") or 0)


def thinking_problem(body: dict) -> str | None:
    """What Anthropic answers 400 for in a request's thinking (its config, the blocks given back, its effort), else
    None."""
    effort = (body.get("output_config") or {}).get("effort") if isinstance(body.get("output_config"), dict) else None
    if effort is not None and effort not in ("low", "medium", "high", "xhigh", "max"):
        return "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
    config = body.get("thinking")
    if config is not None:
        kind = config.get("type") if isinstance(config, dict) else None
        if kind not in ("enabled", "adaptive", "disabled"):
            return "thinking: Input tag does not match any of the expected tags: 'enabled', 'adaptive', 'disabled'"
        if kind == "enabled":
            budget = config.get("budget_tokens")
            if not isinstance(budget, int) or budget < 1024:
                return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            if budget >= int(body.get("max_tokens") or 0):
                return "`max_tokens` must be greater than `thinking.budget_tokens`."
    on = thinking_budget(body) is not None
    if on:
        if "temperature" in body and body["temperature"] != 1:
            return "`temperature` may only be set to 1 when thinking is enabled or in adaptive mode."
        if "top_k" in body:
            return "`top_k` must be unset when thinking is enabled or in adaptive mode."
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
            return "Thinking may not be enabled when tool_choice forces tool use."
    messages = body.get("messages") or ()
    for index, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        for place, block in enumerate(content if isinstance(content, list) else []):
            kind = block.get("type") if isinstance(block, dict) else None
            where = f"messages.{index}.content.{place}"
            if kind == "thinking" and block.get("signature") != thinking_signature(str(block.get("thinking"))):
                return f"{where}: Invalid `signature` in `thinking` block"
            if kind == "redacted_thinking" and not _redacted_ok(str(block.get("data"))):
                return f"{where}: Invalid `data` in `redacted_thinking` block"
    if on and messages:  # a tool loop going on: the assistant turn it continues must open with its thinking
        last = messages[-1]
        blocks = last.get("content") if isinstance(last.get("content"), list) else []
        if any(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks) and len(messages) > 1:
            turn = messages[-2].get("content")
            first = turn[0] if isinstance(turn, list) and turn else None
            if not isinstance(first, dict) or first.get("type") not in ("thinking", "redacted_thinking"):
                found = first.get("type") if isinstance(first, dict) else "text"
                return (
                    f"messages.{len(messages) - 2}.content.0.type: Expected `thinking` or `redacted_thinking`, but "
                    f"found `{found}`. When `thinking` is enabled, a final `assistant` message must start with a "
                    "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks)."
                )
    return None


def _redacted_ok(data: str) -> bool:
    head, _, signature = data.rpartition(".")
    return bool(head) and signature == thinking_signature(head)


def thinking_blocks(body: dict, about: str) -> list[dict[str, Any]]:
    """The thinking blocks of an answer to `body` (none when it asks for none): one signed block whose length
    stays within the budget, or a redacted one when the request holds Anthropic's test string."""
    budget = thinking_budget(body)
    if budget is None:
        return []
    if REDACTED_TRIGGER in json.dumps(body.get("messages")):
        secret = base64.b64encode(f"emulated encrypted thinking {uuid.uuid4().hex}".encode()).decode()
        return [{"type": "redacted_thinking", "data": f"{secret}.{thinking_signature(secret)}"}]
    words = f"Emulated thinking before answering: {' '.join(about.split()[:12])}".split()[:budget]
    text = " ".join(words)
    return [{"type": "thinking", "thinking": text, "signature": thinking_signature(text)}]


def thinking_tokens(blocks: list[dict[str, Any]]) -> int:
    """Output tokens the thinking is billed (a word each; a redacted block as 8)."""
    return sum(len(str(b.get("thinking", "")).split()) if b["type"] == "thinking" else 8 for b in blocks)


def openrouter_details(model: str, body: dict, thinking: int) -> list[dict[str, Any]]:
    """The `reasoning_details` of an OpenRouter answer: a signed `reasoning.text` for an Anthropic model that
    reasoned (what OpenRouter relays of Anthropic's thinking), none otherwise or when excluded."""
    if not thinking or not model.startswith("anthropic/") or (body.get("reasoning") or {}).get("exclude"):
        return []
    text = f"Emulated reasoning of {thinking} tokens."
    signed = {"type": "reasoning.text", "text": text, "signature": thinking_signature(text)}
    return [{**signed, "format": "anthropic-claude-v1", "index": 0}]


def openrouter_thinking_problem(body: dict, model: str) -> str | None:
    """What OpenRouter relays of Anthropic's 400s for reasoning given back: a detail whose signature does not
    hold, or a tool loop of a reasoning Anthropic model whose assistant turn came back without its reasoning."""
    messages = body.get("messages") or ()
    for index, message in enumerate(messages):
        for place, detail in enumerate(message.get("reasoning_details") or () if isinstance(message, dict) else ()):
            signature = detail.get("signature") if isinstance(detail, dict) else None
            if signature is not None and signature != thinking_signature(str(detail.get("text"))):
                return f"messages.{index}.reasoning_details.{place}: Invalid `signature` in `thinking` block"
    reasoning = body.get("reasoning")
    on = isinstance(reasoning, dict) and reasoning.get("enabled") is not False and model.startswith("anthropic/")
    if on and messages and messages[-1].get("role") == "tool":
        turn = next((m for m in reversed(messages) if m.get("role") == "assistant"), None)
        if turn is not None and turn.get("tool_calls") and not turn.get("reasoning_details"):
            return (
                "When `thinking` is enabled, a final `assistant` message must start with a thinking block "
                "(preceeding the lastmost set of `tool_use` and `tool_result` blocks)."
            )
    return None
