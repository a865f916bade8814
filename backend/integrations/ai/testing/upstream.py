"""A loopback emulator of the OpenAI, OpenRouter and Anthropic HTTP APIs.

Tests must run the real SDK clients over real HTTP without reaching a vendor, and the demo must
answer without a key. This server speaks each wire format closely enough for the official SDKs
(responses, error bodies, request-id headers, SSE streams) and can be scripted per request: any
status with the vendor's error body, `Retry-After`, latency, a dropped socket, malformed JSON.
It records every request so tests assert on what was actually sent.

Flavours live under path prefixes of one server: `/openai/v1`, `/openrouter/api/v1`, `/anthropic`, and
`/compatible/v1`: a local OpenAI-compatible server (Ollama, vLLM) that takes any model id and no key.
Standard library only; run it alone with `python -m integrations.ai.testing.upstream --port 8765`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import upstream_extras as extras
from . import upstream_moderation as moderation

OPENAI_MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o1",
    "o3-mini",
    "gpt-3.5-turbo",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-5-chat-latest",
)
ANTHROPIC_MODELS = (
    "claude-3-5-sonnet-20241022",
    "claude-3-5-haiku-20241022",
    "claude-3-7-sonnet-20250219",
    "claude-sonnet-4-20250514",
    "claude-opus-4-20250514",
    "claude-3-opus-20240229",
    "claude-3-haiku-20240307",
    "claude-opus-4-1-20250805",
    "claude-haiku-4-5-20251001",
    "claude-sonnet-4-6",
)
# id -> (USD per prompt token, per completion token, context length)
OPENROUTER_MODELS: dict[str, tuple[str, str, int]] = {
    "openai/gpt-4o": ("0.0000025", "0.00001", 128000),
    "openai/gpt-4o-mini": ("0.00000015", "0.0000006", 128000),
    "openai/gpt-4.1": ("0.000002", "0.000008", 1047576),
    "openai/gpt-4.1-mini": ("0.0000004", "0.0000016", 1047576),
    "openai/gpt-4.1-nano": ("0.0000001", "0.0000004", 1047576),
    "openai/o3-mini": ("0.0000011", "0.0000044", 200000),
    "anthropic/claude-3.5-sonnet": ("0.000003", "0.000015", 200000),
    "anthropic/claude-3.5-haiku": ("0.0000008", "0.000004", 200000),
    "anthropic/claude-3.7-sonnet": ("0.000003", "0.000015", 200000),
    "anthropic/claude-sonnet-4": ("0.000003", "0.000015", 200000),
    "anthropic/claude-opus-4": ("0.000015", "0.000075", 200000),
    "anthropic/claude-3-haiku": ("0.00000025", "0.00000125", 200000),
    "anthropic/claude-opus-4.1": ("0.000015", "0.000075", 200000),
    "anthropic/claude-haiku-4.5": ("0.000001", "0.000005", 200000),
    "anthropic/claude-sonnet-4.6": ("0.000003", "0.000015", 1000000),
    "meta-llama/llama-3.1-70b-instruct": ("0.0000001", "0.00000028", 131072),
    "google/gemini-2.0-flash-001": ("0.0000001", "0.0000004", 1048576),
    "mistralai/mistral-large": ("0.000002", "0.000006", 128000),
}
UPSTREAM_NAMES = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "meta-llama": "DeepInfra",
    "google": "Google",
    "mistralai": "Mistral",
}
ANTHROPIC_VERSIONS = ("2023-06-01", "2026-10-21")
PREFIXES = (
    ("/openrouter/api/v1", "openrouter"),
    ("/openai/v1", "openai"),
    ("/anthropic", "anthropic"),
    ("/compatible/v1", "compatible"),
)
COMPATIBLE_MODELS = ("llama3.1", "mistral", "qwen2.5")  # what the local server lists; it serves any id
# With `Upstream.dated` on, OpenAI answers with the dated snapshot a model name points at (as the real API does),
# and Anthropic takes its `-latest` aliases and answers with the dated id they point at.
OPENAI_SNAPSHOTS = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "o1": "o1-2024-12-17",
    "o3-mini": "o3-mini-2025-01-31",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
}
ANTHROPIC_ALIASES = {
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
    "claude-3-5-sonnet-latest": "claude-3-5-sonnet-20241022",
    "claude-3-7-sonnet-latest": "claude-3-7-sonnet-20250219",
    "claude-3-opus-latest": "claude-3-opus-20240229",
}

OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_denied",
    404: "invalid_request_error",
    408: "timeout",
    409: "conflict",
    429: "rate_limit_exceeded",
}
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
MESSAGES = {
    400: "Invalid request.",
    401: "Invalid authentication credentials.",
    402: "Insufficient credits. Add more using https://openrouter.ai/credits",
    403: "Your request was flagged by moderation.",
    404: "Not found.",
    408: "Request timed out.",
    409: "Conflict.",
    413: "Request too large.",
    429: "Rate limit exceeded, slow down.",
    500: "Internal server error.",
    502: "The model returned an invalid response.",
    503: "No provider available that meets the routing requirements.",
    529: "Overloaded.",
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    flavor: str
    headers: dict[str, str]
    json: Any
    received_at: float = 0.0  # time.monotonic() when the request arrived


@dataclass
class Script:
    flavor: str | None = None
    status: int = 200
    content: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    drop: bool = False
    malformed: bool = False
    finish_reason: str | None = None
    served_model: str | None = None
    usage: dict | None = None
    times: int = 1
    cut_after: int | None = None  # streams: drop the connection after this many text deltas
    tool_calls: list | None = None  # [{"name", "arguments"}]: the calls the model makes when it has tools
    token_rate: float | None = None  # streams: text deltas per second (None: the emulator's `token_rate`)
    # Streams: after `cut_after` text deltas (default 1), an in-stream error as the vendor sends one when the
    # answer fails midway, then the body's end: OpenAI format, a chunk with `error` beside `finish_reason: "error"`
    # (OpenRouter); Anthropic, an `error` event (`overloaded_error`)
    stream_error: str | None = None
    # Streams: sent chunked on a connection kept for the next request (as the vendors' APIs do), not ended by
    # closing it: a client reuses it only once it has read the body to its end
    keep_alive: bool = False
    end_delay: float = 0.0  # kept-alive streams: seconds between the last event and the chunked body's end
    gate: threading.Event | None = None  # embeddings: answered once the test sets it (at most 60 s later)


def _words(text: str) -> list[str]:
    return text.split()


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return ""


def _instance(schema: dict, text: str) -> Any:
    """A minimal value that satisfies a JSON schema (structured outputs), its strings taken from `text`."""
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]  # a model picks one of the values it is given
    kind = schema.get("type")
    if kind == "object":
        return {name: _instance(sub, f"{name}: {text}") for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [_instance(schema.get("items") or {}, text) for _ in range(max(int(schema.get("minItems") or 1), 1))]
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    limit = int(schema.get("maxLength") or 200)
    return text[:limit].rsplit(" ", 1)[0] if len(text) > limit else text


# -- plausible CMS content ---------------------------------------------------------------------------
# The demo must show the product: asked for page meta or a content block, the emulator answers with
# text about the page in the requested shape (not an echo of the prompt), whether the shape came as
# a structured-output schema or only as a JSON instruction in the prompt (vendors without
# structured outputs, e.g. Anthropic).
META_SHAPE = {
    "type": "object",
    "properties": {
        "meta_title": {"type": "string", "maxLength": 60},
        "meta_description": {"type": "string", "maxLength": 160},
    },
}
_SHAPE_LINE = re.compile(r"Return JSON of exactly this shape: (\{.*\})\s*$", re.DOTALL)
_PAGE_TITLE = re.compile(r"(?:Image title in the library: |Page title: |for the web page \")([^\"\n]+)")
_PAGE_BODY = re.compile(r"Page content:\n(.+)", re.DOTALL)


def _shape_to_schema(shape: str) -> dict | None:
    """Read the prompt's block shape (`pages.blocks.describe`) back into a JSON schema."""
    pos = 0

    def skip() -> None:
        nonlocal pos
        while pos < len(shape) and shape[pos] in " ,":
            pos += 1

    def obj() -> dict:
        nonlocal pos
        assert shape[pos] == "{"
        pos += 1
        props: dict[str, Any] = {}
        while True:
            skip()
            if shape[pos] == "}":
                pos += 1
                return {"type": "object", "properties": props}
            key = re.match(r'"([^"]+)":\s*', shape[pos:])
            assert key
            pos += key.end()
            listed = re.match(r"\[(\d+)-(\d+) x ", shape[pos:])
            if listed:
                pos += listed.end()
                items = obj()
                assert shape[pos] == "]"
                pos += 1
                props[key.group(1)] = {
                    "type": "array",
                    "minItems": int(listed.group(1)),
                    "maxItems": int(listed.group(2)),
                    "items": items,
                }
                continue
            field_ = re.match(r"string(?: \(optional\))? <= (\d+) chars", shape[pos:])
            assert field_
            pos += field_.end()
            props[key.group(1)] = {"type": "string", "maxLength": int(field_.group(1))}

    try:
        return obj()
    except (AssertionError, IndexError):
        return None


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:-")


def _plausible(name: str, schema: dict, topic: str, about: str, index: int = 0) -> Any:
    """A value for field `name` about `topic` that a person would accept as a first draft."""
    if "const" in schema or (isinstance(schema.get("enum"), list) and schema["enum"]):
        return _instance(schema, topic)  # one of the values it is given
    kind = schema.get("type")
    if kind == "object":
        return {key: _plausible(key, sub, topic, about, index) for key, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        count = min(max(int(schema.get("minItems") or 1), 3), int(schema.get("maxItems") or 3))
        return [_plausible(name, schema.get("items") or {}, topic, about, i) for i in range(count)]
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    limit = int(schema.get("maxLength") or 200)
    angle = ("quality", "service", "value")[index % 3]
    texts = {
        "meta_title": f"{topic} | Fresh ideas, friendly service",
        "meta_description": f"{about or topic}. Visit us to learn more about {topic.lower()}.",
        "heading": topic,
        "title": f"{topic}: {angle}",
        "subheading": f"Everything you need to know about {topic.lower()}",
        "body": f"{about or topic}. We take pride in our {angle} and look forward to welcoming you.",
        "question": [
            f"What makes {topic.lower()} special?",
            f"How do I order {topic.lower()}?",
            f"How far ahead should I plan for {topic.lower()}?",
        ][index % 3],
        "answer": f"Our team puts care into every detail of {topic.lower()}; ask us anything in store or online.",
        "description": f"{about or topic} — known for our {angle}.",
        "text": f"Ready for {topic.lower()}? Get in touch today.",
        "cta_text": "Find out more",
        "button_text": "Get in touch",
        "cta_url": "/contact/",
        "button_url": "/contact/",
        "alt_text": f"{topic}: {about or 'the picture shown on this page'}",  # images.alt_text (an image part)
    }
    return _clip(texts.get(name, f"{topic} ({name.replace('_', ' ')})"), limit)


def _cms_answer(system: str, last: str, schema: dict | None) -> str | None:
    """JSON for a CMS service's request (meta or block), or None for any other prompt."""
    if schema is None:
        shape = _SHAPE_LINE.search(last)
        if shape:
            schema = _shape_to_schema(shape.group(1))
        elif "meta_title" in system and "JSON" in system:
            schema = META_SHAPE
    if schema is None:
        return None
    title = _PAGE_TITLE.search(last)
    body = _PAGE_BODY.search(last)
    topic = _clip(title.group(1).strip(), 40) if title else _clip(" ".join(last.split()[:6]), 40)
    about = _clip(re.split(r"(?<=[.!?:])\s", body.group(1).strip())[0].rstrip(".:"), 120) if body else ""
    return json.dumps(_plausible("", schema, topic, about))


def _prose(flavor: str, model: str, last: str) -> str:
    """A short paragraph for a writing request that came with a system prompt (prompt templates).

    It keeps the emulator's label and ends with the request, which tests and the demo rely on.
    """
    subject = _clip(re.sub(r"^(write|create|draft|compose)\s+", "", last.strip(), flags=re.I).rstrip("."), 120)
    return (
        f"Emulated {flavor} reply ({model}): {subject[:1].upper()}{subject[1:]} — crafted with care, made "
        "fresh every day and ready when you are. Stop by or order online; we would love to hear what you "
        f"think.\n\nIn reply to: {last[:200]}"
    )


def _merge(usage: dict, changes: dict) -> None:
    """Apply a script's usage changes; nested detail blocks are merged, not replaced."""
    for name, value in changes.items():
        if isinstance(value, dict) and isinstance(usage.get(name), dict):
            usage[name] = {**usage[name], **value}
        else:
            usage[name] = value


def _parts(content: Any) -> list:
    """A message's content as a list of parts (a plain string is one text part without cache_control)."""
    return content if isinstance(content, list) else [{"type": "text", "text": content or ""}]


def _cached_prefixes(system: Any, messages: Any = ()) -> list[str]:
    """The text up to each block marked `cache_control` (Anthropic caches the prefix at each breakpoint), shortest
    first: the system's blocks, then the messages' (a string content is one unmarked block)."""
    blocks = [b for b in system if isinstance(b, dict)] if isinstance(system, list) else [{"text": system or ""}]
    for message in messages or ():
        content = message.get("content") if isinstance(message, dict) else None
        for block in _parts(content):
            if isinstance(block, dict):
                text = block.get("text") if "text" in block else block.get("content")
                blocks.append({**block, "text": text if isinstance(text, str) else _text_of(text)})
    return [_text_of(blocks[: i + 1]) for i, block in enumerate(blocks) if block.get("cache_control")]


def _mask(key: str) -> str:
    return f"{key[:3]}{'*' * 8}{key[-4:]}" if len(key) > 8 else "****"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # a burst of connections (1,000 streams opened at once) waits, not refused
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], upstream: Upstream) -> None:
        self.upstream = upstream
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):  # one call per accepted TCP connection
        with self.upstream._lock:
            self.upstream.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request, client_address):  # client went away: nothing to report
        pass


class Upstream:
    """The emulator. `start()` serves on an ephemeral loopback port in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._server = _Server((host, port), self)
        self._thread: threading.Thread | None = None
        self.requests: list[RecordedRequest] = []
        self.connections = 0
        self._scripts: list[Script] = []
        self._generations: dict[str, dict] = {}
        self._prompt_cache: set[tuple[str, str]] = set()  # Anthropic (model, cached prefix) written so far
        self.dated = False  # answer with dated snapshot ids, as the vendors do (OPENAI_SNAPSHOTS, ANTHROPIC_ALIASES)
        # streams: text deltas per second (0: as fast as the socket takes them), and the length in words of an
        # unscripted streamed reply (0: the usual echo) — the streaming benchmark's 200 tokens at 20 tokens/s
        self.token_rate = 0.0
        self.stream_words = 0
        # streams whose client went away before the end (a broken pipe mid-stream), and an event set at each
        self.aborted_streams = 0
        self.stream_aborted = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/openai/v1"

    @property
    def openrouter_base_url(self) -> str:
        return f"{self.url}/openrouter/api/v1"

    @property
    def anthropic_base_url(self) -> str:
        return f"{self.url}/anthropic"

    @property
    def compatible_base_url(self) -> str:
        """An OpenAI-compatible local server (Ollama-style): any model id, no key needed."""
        return f"{self.url}/compatible/v1"

    def start(self) -> Upstream:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="upstream-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting and inspection ------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self.requests.clear()
            self._prompt_cache.clear()
            self._generations.clear()
            self.connections = 0
            self.dated = False
            self.token_rate, self.stream_words, self.aborted_streams = 0.0, 0, 0
            self.stream_aborted.clear()

    def script(
        self,
        *,
        flavor: str | None = None,
        status: int = 200,
        content: str | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
        delay: float = 0.0,
        drop: bool = False,
        malformed: bool = False,
        finish_reason: str | None = None,
        served_model: str | None = None,
        usage: dict | None = None,
        times: int = 1,
        cut_after: int | None = None,
        tool_calls: list | None = None,
        token_rate: float | None = None,
        stream_error: str | None = None,
        keep_alive: bool = False,
        end_delay: float = 0.0,
        gate: threading.Event | None = None,
    ) -> None:
        """Queue how the next `times` matching generation requests are answered (FIFO)."""
        with self._lock:
            self._scripts.append(
                Script(
                    flavor,
                    status,
                    content,
                    dict(headers or {}),
                    body,
                    delay,
                    drop,
                    malformed,
                    finish_reason,
                    served_model,
                    usage,
                    times,
                    cut_after,
                    tool_calls,
                    token_rate,
                    stream_error,
                    keep_alive,
                    end_delay,
                    gate,
                )
            )

    def requests_for(self, flavor: str) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if r.flavor == flavor]

    def cache_use(self, model: str, prefixes: list[str], prompt_tokens: int) -> tuple[int, int]:
        """(tokens read from the prompt cache, tokens written to it) for a request whose marked blocks end these
        prefixes (`_cached_prefixes`), as Anthropic counts them: the longest prefix written before is read, the rest
        up to the last breakpoint written; every breakpoint's prefix is kept."""
        if not prefixes:
            return 0, 0
        with self._lock:
            hits = [p for p in prefixes if (model, p) in self._prompt_cache]
            self._prompt_cache.update((model, p) for p in prefixes)
        read = min(len(_words(max(hits, key=len))) if hits else 0, prompt_tokens)
        return read, min(len(_words(prefixes[-1])), prompt_tokens) - read

    def _take_script(self, flavor: str, exact: bool = False) -> Script | None:
        """The next script for `flavor` (or for any flavour, unless `exact`: `moderation` takes only its own)."""
        with self._lock:
            for index, script in enumerate(self._scripts):
                if script.flavor == flavor or (script.flavor is None and not exact):
                    script.times -= 1
                    if script.times <= 0:
                        del self._scripts[index]
                    return script
        return None


def _prompt_tokens(flavor: str, model: str, system: str, messages: list, pictures: list) -> int:
    """The input tokens this emulator bills (and counts) for a request: words of the system prompt and the
    messages, plus each image's tokens by the vendor's rule."""
    words = len(_words(system)) + sum(len(_words(_text_of(m.get("content")))) for m in messages if isinstance(m, dict))
    return words + sum(extras.image_tokens(flavor, model, p) for p in pictures)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    _token_gap = 0.0
    _chunked = False  # a stream sent chunked on a kept connection (`Script.keep_alive`)
    _end_delay = 0.0  # `Script.end_delay`
    _stream_error: str | None = None
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms ACK stalls
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- plumbing ------------------------------------------------------------------------------
    def _route(self) -> tuple[str, str]:
        path = urlsplit(self.path).path
        for prefix, flavor in PREFIXES:
            if path.startswith(prefix + "/") or path == prefix:
                return flavor, path[len(prefix) :]
        return "", path

    def _record(self, flavor: str) -> RecordedRequest:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        parts = urlsplit(self.path)
        request = RecordedRequest(
            self.command,
            parts.path,
            dict(parse_qsl(parts.query)),
            flavor,
            {k.lower(): v for k, v in self.headers.items()},
            body,
            time.monotonic(),
        )
        with self.server.upstream._lock:
            self.server.upstream.requests.append(request)
        return request

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None, raw: bytes | None = None):
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _drop(self) -> None:
        # RST instead of FIN so the client sees the connection die mid-request.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.connection.close()

    def _error(
        self,
        flavor: str,
        status: int,
        message: str | None = None,
        extra: dict | None = None,
        headers: dict[str, str] | None = None,
        model: str = "",
    ) -> None:
        message = message or MESSAGES.get(status, "Upstream error.")
        if flavor == "anthropic":
            body: Any = {
                "type": "error",
                "error": {"type": ANTHROPIC_ERROR_TYPES.get(status, "api_error"), "message": message},
            }
            headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}", **(headers or {})}
            if status == 429:
                headers.setdefault("anthropic-ratelimit-requests-remaining", "0")
        elif flavor == "openrouter":
            metadata: dict[str, Any] = {}
            if status == 403:
                metadata = {"reasons": ["violence"], "flagged_input": "…", "provider_name": None, "model_slug": model}
            body = {"error": {"code": status, "message": message, "metadata": metadata}}
        else:
            body = {
                "error": {
                    "message": message,
                    "type": OPENAI_ERROR_TYPES.get(status, "server_error"),
                    "param": None,
                    "code": (extra or {}).get("code"),
                }
            }
            headers = {"x-request-id": f"req_{uuid.uuid4().hex[:24]}", **(headers or {})}
        self._send(status, body, headers)

    # -- HTTP verbs ---------------------------------------------------------------------------------
    def do_GET(self) -> None:
        flavor, path = self._route()
        request = self._record(flavor)
        if not self._authorised(flavor, request):
            return
        if path == "/models" and flavor == "openrouter":
            data = [
                {
                    "id": mid,
                    "name": mid.split("/", 1)[1],
                    "created": 1700000000,
                    "context_length": ctx,
                    "pricing": {"prompt": p, "completion": c, "request": "0", "image": "0"},
                    "top_provider": {"context_length": ctx, "max_completion_tokens": 16384, "is_moderated": False},
                    "architecture": {"input_modalities": extras.input_modalities(mid), "output_modalities": ["text"]},
                    "supported_parameters": extras.supported_parameters(mid),
                }
                for mid, (p, c, ctx) in OPENROUTER_MODELS.items()
            ]
            return self._send(200, {"data": data})
        if path == "/models" and flavor in ("openai", "compatible"):
            listed = OPENAI_MODELS if flavor == "openai" else COMPATIBLE_MODELS
            owner = "openai" if flavor == "openai" else "library"
            data = [{"id": m, "object": "model", "created": 1700000000, "owned_by": owner} for m in listed]
            return self._send(200, {"object": "list", "data": data})
        if path == "/v1/models" and flavor == "anthropic":
            data = [
                {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
                for m in ANTHROPIC_MODELS
            ]
            return self._send(
                200, {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
            )
        if path == "/key" and flavor == "openrouter":
            used = sum(float(g["total_cost"]) for g in self.server.upstream._generations.values())
            return self._send(
                200,
                {
                    "data": {
                        "label": "sk-or-v1-emu...",
                        "usage": round(used, 8),
                        "limit": 10.0,
                        "limit_remaining": round(10.0 - used, 8),
                        "is_free_tier": False,
                        "rate_limit": {"requests": 100, "interval": "10s"},
                    }
                },
            )
        if path == "/generation" and flavor == "openrouter":
            generation = self.server.upstream._generations.get(request.query.get("id", ""))
            if generation is None:
                return self._error(flavor, 404, "Generation not found.")
            return self._send(200, {"data": generation})
        self._error(flavor or "openai", 404, f"No route for GET {request.path}.")

    def do_POST(self) -> None:
        flavor, path = self._route()
        request = self._record(flavor)
        if flavor in ("openai", "openrouter", "compatible") and path == "/embeddings":
            return self._embeddings(flavor, request)
        if flavor == "openai" and path == "/moderations":
            return self._moderations(request)
        if flavor == "anthropic" and path == "/v1/messages/count_tokens":
            return self._count_tokens(request)
        generation = (flavor in ("openai", "openrouter", "compatible") and path == "/chat/completions") or (
            flavor == "anthropic" and path == "/v1/messages"
        )
        if not generation:
            return self._error(flavor or "openai", 404, f"No route for POST {request.path}.")
        script = self.server.upstream._take_script(flavor)
        self._cut_after = script.cut_after if script else None
        self._stream_error = script.stream_error if script else None
        self._chunked = bool(script and script.keep_alive)
        self._end_delay = script.end_delay if script else 0.0
        if self._stream_error is not None and self._cut_after is None:
            self._cut_after = 1
        rate = script.token_rate if script and script.token_rate is not None else self.server.upstream.token_rate
        self._token_gap = 1.0 / rate if rate else 0.0
        if script and script.delay:
            time.sleep(script.delay)
        if script and script.drop:
            return self._drop()
        if not self._authorised(flavor, request):
            return
        body = request.json if isinstance(request.json, dict) else {}
        self._body = body
        model = str(body.get("model") or "")
        if script and script.status != 200:
            if script.body is not None:
                return self._send(script.status, script.body, script.headers)
            return self._error(flavor, script.status, headers=script.headers, model=model)
        if script and script.malformed:
            return self._send(200, None, script.headers, raw=b'{"id": "chatcmpl-trunc", "choices": [')
        if script and script.body is not None:
            return self._send(200, script.body, script.headers)
        problem = self._validate(flavor, body)
        if problem:
            return self._error(
                flavor, problem[0], problem[1], extra=problem[2] if len(problem) > 2 else None, model=model
            )
        if flavor == "anthropic":
            return self._anthropic(body, script)
        return self._chat(flavor, body, script)

    def _embeddings(self, flavor: str, request: RecordedRequest) -> None:
        if not self._authorised(flavor, request):
            return None
        script = self.server.upstream._take_script("embeddings", exact=True)  # script(flavor="embeddings", gate=...)
        if script is not None and script.gate is not None:
            script.gate.wait(60)
        status, payload = extras.embeddings(flavor, request.json if isinstance(request.json, dict) else {})
        if status != 200:
            return self._error(flavor, status, payload["message"])
        headers = {} if flavor == "openrouter" else {"x-request-id": f"req_{uuid.uuid4().hex[:24]}"}
        return self._send(200, payload, headers)

    def _moderations(self, request: RecordedRequest) -> None:
        if not self._authorised("openai", request):
            return None
        script = self.server.upstream._take_script("moderation", exact=True)  # script(flavor="moderation", ...)
        if script is not None and script.status != 200:
            return self._error("openai", script.status, headers=script.headers)
        status, payload = moderation.moderations(request.json if isinstance(request.json, dict) else {})
        if status != 200:
            return self._error("openai", status, payload["message"])
        return self._send(200, payload, {"x-request-id": f"req_{uuid.uuid4().hex[:24]}"})

    # -- validation ------------------------------------------------------------------------------
    def _authorised(self, flavor: str, request: RecordedRequest) -> bool:
        if flavor == "anthropic":
            # API 2023-06-01 reads x-api-key; SDK 2.x (API 2026-10-21) sends Authorization: Bearer.
            auth = request.headers.get("authorization", "")
            key = request.headers.get("x-api-key", "") or (auth[7:] if auth.lower().startswith("bearer ") else "")
            if key and request.headers.get("anthropic-version") not in ANTHROPIC_VERSIONS:
                self._error(flavor, 400, "anthropic-version: header is required (2023-06-01 or 2026-10-21)")
                return False
        else:
            auth = request.headers.get("authorization", "")
            key = auth[7:] if auth.lower().startswith("bearer ") else ""
        if flavor == "compatible" and "invalid" not in key:
            return True  # a local server: no key needed, any key accepted
        if not key:
            self._error(flavor or "openai", 401, "Missing authentication.")
            return False
        if "invalid" in key:
            message = (
                f"Incorrect API key provided: {_mask(key)}. You can find your API key at "
                "https://platform.openai.com/account/api-keys."
                if flavor == "openai"
                else "invalid x-api-key"
                if flavor == "anthropic"
                else "No auth credentials found"
            )
            self._error(flavor, 401, message)
            return False
        return True

    def _validate(self, flavor: str, body: dict) -> tuple | None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return 400, "'messages' is required and must be a non-empty array."
        model = body.get("model")
        if flavor == "anthropic":
            if "max_tokens" not in body:
                return 400, "max_tokens: Field required"
            if any(m.get("role") == "system" for m in messages if isinstance(m, dict)):
                return 400, 'messages: Unexpected role "system". Use the top-level `system` parameter.'
            sampling = sorted({"temperature", "top_p", "top_k"} & set(body))
            if sampling and (self.headers.get("anthropic-version") or "") >= "2026-10-21":
                return 400, f"{sampling[0]}: Extra inputs are not permitted"
            if model not in ANTHROPIC_MODELS and not (self.server.upstream.dated and model in ANTHROPIC_ALIASES):
                return 404, f"model: {model}"
            problem = (
                extras.anthropic_problem(body)
                or extras.thinking_problem(body)
                or extras.image_problem(str(model), messages, flavor)
            )
            if problem:
                return 400, problem
        elif flavor == "compatible":
            if not isinstance(model, str) or not model:
                return 400, "'model' is required."
        elif flavor == "openai":
            if model not in OPENAI_MODELS:
                return (
                    404,
                    f"The model `{model}` does not exist or you do not have access to it.",
                    {"code": "model_not_found"},
                )
            if refused := extras.openai_reasoning_problem(str(model), body):
                return 400, refused[0], {"code": refused[1], "param": refused[2]}
        else:
            candidates = [model, *(body.get("models") or [])]
            if not any(c in OPENROUTER_MODELS for c in candidates):
                return 400, f"{model} is not a valid model ID"
        if flavor != "anthropic":
            problem = extras.openai_problem(body) or extras.image_problem(str(model), messages, flavor)
            if problem:
                return 400, problem
        return None

    # -- successful answers ------------------------------------------------------------------------
    def _reply(
        self, flavor: str, model: str, system: str, messages: list, max_tokens: int, script: Script | None
    ) -> tuple[str, int, int, bool]:
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        last = _text_of(users[-1].get("content")) if users else ""
        content = (
            script.content
            if script and script.content is not None
            else (f"Emulated {flavor} reply ({model}): {last[:200]}")
        )
        pictures = extras.images_in(flavor, messages)
        answered = extras.tool_result_text(flavor, messages)
        if not (script and script.content is not None) and answered is not None:
            content = f"Emulated {flavor} reply ({model}): the tool said {answered[:300]}"
        elif not (script and script.content is not None) and pictures:
            seen = ", ".join(
                f"{p['media']} {p['size'][0]}x{p['size'][1]}" if p["size"] else p["media"] for p in pictures
            )
            content = f"Emulated {flavor} reply ({model}): I see {len(pictures)} image(s) ({seen}). {last[:200]}"
        schema = ((self._body.get("response_format") or {}).get("json_schema") or {}).get("schema")
        if not (script and script.content is not None) and pictures and schema:  # e.g. alt text: JSON in shape
            content = _cms_answer(system, last, schema) or json.dumps(_instance(schema, content))
        if not (script and script.content is not None) and answered is None and not pictures:
            cms = extras.translation_answer(system, last, schema) or _cms_answer(system, last, schema)
            if cms is not None:  # a CMS service asked for meta or a block: JSON in that shape
                content = cms
            elif schema:  # structured outputs of another shape
                content = json.dumps(_instance(schema, " ".join(last.split()[:40])))
            elif system and re.match(r"\s*(write|create|draft|compose)\b", last, re.I):
                content = _prose(flavor, model, last)
        long_stream = self.server.upstream.stream_words
        if long_stream and self._body.get("stream") and not (script and script.content is not None):
            head = f"Emulated {flavor} reply ({model}):".split(" ")
            content = " ".join(head + [f"w{n}" for n in range(max(long_stream - len(head), 0))])
        prompt_words = _prompt_tokens(flavor, model, system, messages, pictures)
        words = _words(content)
        truncated = len(words) > max_tokens
        if truncated:
            content = " ".join(words[:max_tokens])
            words = words[:max_tokens]
        return content, max(prompt_words, 1), len(words), truncated

    def _chat(self, flavor: str, body: dict, script: Script | None) -> None:
        model = str(body["model"])
        if flavor == "openrouter" and model not in OPENROUTER_MODELS:
            model = next(m for m in body.get("models") or [] if m in OPENROUTER_MODELS)
        if flavor == "openai" and self.server.upstream.dated:
            model = OPENAI_SNAPSHOTS.get(model, model)
        if script and script.served_model:
            model = script.served_model
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 4096)
        messages = body["messages"]
        system = " ".join(_text_of(m.get("content")) for m in messages if m.get("role") == "system")
        chat = [m for m in messages if m.get("role") != "system"]
        thinking = 0  # OpenRouter's `reasoning`: tokens spent thinking, inside max_tokens
        if flavor == "openrouter" and "reasoning" in body:
            problem = extras.reasoning_problem(body["reasoning"])
            if problem:
                return self._send(400, {"error": {"code": 400, "message": problem}})
            thinking = extras.reasoning_tokens(model, body["reasoning"], max_tokens)
        if flavor == "openrouter" and (problem := extras.openrouter_thinking_problem(body, model)):
            return self._send(400, {"error": {"code": 400, "message": problem}})
        if flavor == "openai":  # a reasoning model thinks inside max_completion_tokens, at its effort
            thinking = extras.openai_reasoning_tokens(model, body, max_tokens)
        details = extras.openrouter_details(model, body, thinking) if flavor == "openrouter" else []
        content, prompt_tokens, completion_tokens, truncated = self._reply(
            flavor, model, system, chat, max(max_tokens - thinking, 0), script
        )
        if thinking and not completion_tokens:
            truncated = True  # the whole budget went on reasoning: no answer (what the controls prevent)
        completion_tokens += thinking
        prompt_tokens += len(_words(system))
        finish = script.finish_reason if script and script.finish_reason else ("length" if truncated else "stop")
        calls = self._calls(flavor, body, chat, script)
        if calls:
            content, truncated = "", False
            completion_tokens = sum(len(_words(json.dumps(args))) for _, _, args in calls)
            finish = script.finish_reason if script and script.finish_reason else "tool_calls"
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": thinking, "audio_tokens": 0},
        }
        gen_id = f"gen-{uuid.uuid4().hex[:20]}" if flavor == "openrouter" else f"chatcmpl-{uuid.uuid4().hex[:24]}"
        extra: dict[str, Any] = {}
        if flavor == "openrouter":
            price = OPENROUTER_MODELS.get(model, ("0", "0", 0))
            cost = Decimal(price[0]) * prompt_tokens + Decimal(price[1]) * completion_tokens
            read = written = 0
            system_parts = [p for m in messages if m.get("role") == "system" for p in _parts(m.get("content"))]
            prefixes = _cached_prefixes(system_parts, [m for m in messages if m.get("role") != "system"])
            read, written = self.server.upstream.cache_use(model, prefixes, prompt_tokens)
            usage.update(
                {
                    "cost": float(cost),
                    "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": written, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": thinking, "audio_tokens": 0},
                }
            )
            extra["provider"] = UPSTREAM_NAMES.get(model.split("/", 1)[0], "Emulated")
            self.server.upstream._generations[gen_id] = {
                "id": gen_id,
                "model": model,
                "total_cost": float(cost),
                "tokens_prompt": prompt_tokens,
                "tokens_completion": completion_tokens,
                "provider_name": extra["provider"],
            }
        if script and script.usage:
            _merge(usage, script.usage)
        headers = {} if flavor == "openrouter" else {"x-request-id": f"req_{uuid.uuid4().hex[:24]}"}
        headers.update(script.headers if script else {})
        created = int(time.time())
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage")) or (
                flavor == "openrouter" and bool((body.get("usage") or {}).get("include"))
            )
            return self._chat_stream(
                flavor,
                gen_id,
                created,
                model,
                content,
                finish,
                usage if include_usage else None,
                headers,
                calls,
                details,
            )
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": None},
            "logprobs": None,
            "finish_reason": finish,
        }
        if calls:
            choice["message"].update(
                content=None,
                tool_calls=[
                    {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}}
                    for i, n, a in calls
                ],
            )
        if flavor == "openrouter":
            choice["native_finish_reason"] = finish
            if thinking and not (body.get("reasoning") or {}).get("exclude"):
                choice["message"]["reasoning"] = f"Emulated reasoning of {thinking} tokens."
            if details:
                choice["message"]["reasoning_details"] = details
        payload = {
            "id": gen_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [choice],
            "usage": usage,
            "system_fingerprint": "fp_emulator",
            **extra,
        }
        self._send(200, payload, headers)

    def _calls(self, flavor: str, body: dict, messages: list, script: Script | None) -> list | None:
        """The tool calls the model makes (see upstream_extras.tool_calls_for); CMS schemas get CMS content."""
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        last = _text_of(users[-1].get("content")) if users else ""
        system = body.get("system") or ""
        system_text = system if isinstance(system, str) else _text_of(system)

        def instance(schema: dict, text: str) -> Any:
            cms = (
                extras.translation_answer(system_text, last, schema) or _cms_answer(system_text, last, schema)
                if schema.get("properties")
                else None
            )
            return json.loads(cms) if cms is not None else _instance(schema, " ".join(text.split()[:40]))

        return extras.tool_calls_for(flavor, body, messages, script.tool_calls if script else None, instance, last)

    def _count_tokens(self, request: RecordedRequest) -> None:
        """Anthropic's `POST /v1/messages/count_tokens`: the input tokens the same body would be billed as a
        message request (this emulator's rule: words of the system prompt and messages, plus image tokens)."""
        if not self._authorised("anthropic", request):
            return
        body = request.json if isinstance(request.json, dict) else {}
        for extra in ("max_tokens", "stream", "temperature", "stop_sequences", "metadata"):
            if extra in body:
                return self._error("anthropic", 400, f"{extra}: Extra inputs are not permitted")
        budget = (body.get("thinking") or {}).get("budget_tokens") if isinstance(body.get("thinking"), dict) else None
        room = budget + 1 if isinstance(budget, int) else 1  # a count has no max_tokens: room for the thinking's budget
        problem = self._validate("anthropic", {**body, "max_tokens": room})  # the model, messages, tools as a message's
        if problem:
            return self._error("anthropic", problem[0], problem[1], model=str(body.get("model") or ""))
        messages = body["messages"]
        system = body.get("system") or ""
        system_text = system if isinstance(system, str) else _text_of(system)
        pictures = extras.images_in("anthropic", messages)
        tokens = _prompt_tokens("anthropic", str(body["model"]), system_text, messages, pictures)
        self._send(200, {"input_tokens": max(tokens, 1)}, {"request-id": f"req_{uuid.uuid4().hex[:24]}"})

    def _anthropic(self, body: dict, script: Script | None) -> None:
        model = str(body["model"])
        if self.server.upstream.dated:
            model = ANTHROPIC_ALIASES.get(model, model)
        if script and script.served_model:
            model = script.served_model
        system = body.get("system") or ""
        system_text = system if isinstance(system, str) else _text_of(system)
        users = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
        thinking = extras.thinking_blocks(body, _text_of(users[-1].get("content")) if users else "")
        thought = extras.thinking_tokens(thinking)  # billed as output, inside max_tokens
        content, prompt_tokens, completion_tokens, truncated = self._reply(
            "anthropic", model, system_text, body["messages"], max(int(body["max_tokens"]) - thought, 1), script
        )
        stop = script.finish_reason if script and script.finish_reason else ("max_tokens" if truncated else "end_turn")
        calls = self._calls("anthropic", body, body["messages"], script)
        if calls:
            content = ""
            completion_tokens = sum(len(_words(json.dumps(args))) for _, _, args in calls)
            stop = script.finish_reason if script and script.finish_reason else "tool_use"
        completion_tokens += thought
        # prompt caching: the prefix at each marked block is written once, then read
        read, written = self.server.upstream.cache_use(model, _cached_prefixes(system, body["messages"]), prompt_tokens)
        usage = {
            "input_tokens": prompt_tokens - read - written,
            "output_tokens": completion_tokens,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
        }
        if script and script.usage:
            _merge(usage, script.usage)
        msg_id = f"msg_{uuid.uuid4().hex[:24]}"
        headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}", **(script.headers if script else {})}
        if body.get("stream"):
            return self._anthropic_stream(msg_id, model, content, stop, usage, headers, calls, thinking)
        blocks: list[dict[str, Any]] = list(thinking)
        blocks += [{"type": "text", "text": content}] if content or not calls else []
        blocks += [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in calls or ()]
        self._send(
            200,
            {
                "id": msg_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": blocks,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": usage,
            },
            headers,
        )

    # -- streaming -----------------------------------------------------------------------------------
    def _start_stream(self, headers: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        if self._chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.close_connection = not self._chunked

    def _write(self, text: str) -> None:
        data = text.encode()
        if self._chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        self.wfile.write(data)
        self.wfile.flush()

    def _end_stream(self) -> None:
        """After `data: [DONE]`: the chunked body's end (a kept connection); nothing when closing ends it."""
        if self._chunked:
            if self._end_delay:  # a server slow to end its body (the reader waits for it only so long)
                time.sleep(self._end_delay)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    def _pace(self, index: int, count: int) -> None:
        """Between two text deltas of a stream, the scripted (or the emulator's) token rate's gap."""
        if self._token_gap and index < count - 1:
            time.sleep(self._token_gap)

    def _aborted(self) -> None:
        upstream = self.server.upstream
        with upstream._lock:
            upstream.aborted_streams += 1
        upstream.stream_aborted.set()

    def _chat_stream(
        self,
        flavor: str,
        gen_id: str,
        created: int,
        model: str,
        content: str,
        finish: str,
        usage: dict | None,
        headers: dict[str, str],
        calls: list | None = None,
        thinking: list | None = None,
    ) -> None:
        self._start_stream(headers)

        def chunk(delta: dict, finish_reason: str | None = None, **extra: Any) -> str:
            data = {
                "id": gen_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                **extra,
            }
            return f"data: {json.dumps(data)}\n\n"

        try:
            if flavor == "openrouter":
                self._write(": OPENROUTER PROCESSING\n\n")
            self._write(chunk({"role": "assistant", "content": ""}))
            for detail in thinking or ():  # OpenRouter's reasoning first: its text, then its signature alone
                text = {k: v for k, v in detail.items() if k != "signature"}
                self._write(chunk({"reasoning": detail["text"], "reasoning_details": [text]}))
                signed = {"type": detail["type"], "signature": detail["signature"], "index": detail["index"]}
                self._write(chunk({"reasoning": "", "reasoning_details": [{**signed, "format": detail["format"]}]}))
            for index, (call_id, name, arguments) in enumerate(calls or ()):
                self._write(
                    chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": call_id,
                                    "type": "function",
                                    "function": {"name": name, "arguments": ""},
                                }
                            ]
                        }
                    )
                )
                for piece_index, piece in enumerate(extras.split_json(arguments)):
                    if self._cut_after is not None and piece_index >= self._cut_after:
                        return self._drop()
                    self._write(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
            words = content.split(" ") if content or not calls else []
            for index, word in enumerate(words):
                piece = word if index == len(words) - 1 else word + " "
                if self._cut_after is not None and index >= self._cut_after:
                    if self._stream_error is not None:
                        failure = {"code": "server_error", "message": self._stream_error}
                        self._write(chunk({"content": ""}, "error", error=failure))
                        self._write("data: [DONE]\n\n")
                        return self._end_stream()
                    return self._drop()
                self._write(chunk({"content": piece}))
                self._pace(index, len(words))
                if flavor == "openrouter" and index == len(words) // 2:
                    self._write(": OPENROUTER PROCESSING\n\n")
            self._write(chunk({}, finish))
            if usage is not None:
                last = {
                    "id": gen_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
                self._write(f"data: {json.dumps(last)}\n\n")
            self._write("data: [DONE]\n\n")
            self._end_stream()
        except (BrokenPipeError, ConnectionResetError):
            self._aborted()

    def _anthropic_stream(
        self,
        msg_id: str,
        model: str,
        content: str,
        stop: str,
        usage: dict,
        headers: dict[str, str],
        calls: list | None = None,
        thinking: list | None = None,
    ) -> None:
        self._start_stream(headers)

        def event(name: str, data: dict) -> str:
            return f"event: {name}\ndata: {json.dumps(data)}\n\n"

        try:
            start_usage = {**usage, "output_tokens": 1}
            self._write(
                event(
                    "message_start",
                    {
                        "type": "message_start",
                        "message": {
                            "id": msg_id,
                            "type": "message",
                            "role": "assistant",
                            "model": model,
                            "content": [],
                            "stop_reason": None,
                            "stop_sequence": None,
                            "usage": start_usage,
                        },
                    },
                )
            )
            for at, block in enumerate(thinking or ()):  # the thinking first, each block closed before the next
                self._write(self._thinking_events(event, at, block))
            first = len(thinking or ())  # the text block's index
            text_block = bool(content) or not calls  # a reply of tool calls only has no text block
            if text_block:
                self._write(
                    event(
                        "content_block_start",
                        {"type": "content_block_start", "index": first, "content_block": {"type": "text", "text": ""}},
                    )
                )
            self._write(event("ping", {"type": "ping"}))
            words = content.split(" ") if text_block else []
            for index, word in enumerate(words):
                piece = word if index == len(words) - 1 else word + " "
                if self._cut_after is not None and index >= self._cut_after:
                    if self._stream_error is not None:  # Anthropic's in-stream error event, then the body's end
                        failure = {"type": "overloaded_error", "message": self._stream_error}
                        self._write(event("error", {"type": "error", "error": failure}))
                        return self._end_stream()
                    return self._drop()
                self._write(
                    event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": first, "delta": {"type": "text_delta", "text": piece}},
                    )
                )
                self._pace(index, len(words))
            if text_block:
                self._write(event("content_block_stop", {"type": "content_block_stop", "index": first}))
            for index, (call_id, name, arguments) in enumerate(calls or (), start=first + int(text_block)):
                self._write(
                    event(
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": index,
                            "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}},
                        },
                    )
                )
                for piece_index, piece in enumerate(extras.split_json(arguments)):
                    if self._cut_after is not None and piece_index >= self._cut_after:
                        return self._drop()
                    self._write(
                        event(
                            "content_block_delta",
                            {
                                "type": "content_block_delta",
                                "index": index,
                                "delta": {"type": "input_json_delta", "partial_json": piece},
                            },
                        )
                    )
                self._write(event("content_block_stop", {"type": "content_block_stop", "index": index}))
            self._write(
                event(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop, "stop_sequence": None},
                        "usage": {"output_tokens": usage["output_tokens"]},
                    },
                )
            )
            self._write(event("message_stop", {"type": "message_stop"}))
            self._end_stream()
        except (BrokenPipeError, ConnectionResetError):
            self._aborted()

    @staticmethod
    def _thinking_events(event: Any, index: int, block: dict[str, Any]) -> str:
        """A thinking block as Anthropic streams it: opened empty, its text in word deltas, then its signature
        in a delta of its own; a redacted block whole in its start event."""
        if block["type"] == "redacted_thinking":
            opened = {"type": "content_block_start", "index": index, "content_block": block}
            return event("content_block_start", opened) + event(
                "content_block_stop", {"type": "content_block_stop", "index": index}
            )
        out = event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            },
        )
        words = block["thinking"].split(" ")
        for at, word in enumerate(words):
            text = word if at == len(words) - 1 else word + " "
            delta = {"type": "thinking_delta", "thinking": text}
            out += event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        signed = {"type": "signature_delta", "signature": block["signature"]}
        out += event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": signed})
        return out + event("content_block_stop", {"type": "content_block_stop", "index": index})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the OpenAI/OpenRouter/Anthropic upstream emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token-rate", type=float, default=0.0, help="streams: text deltas per second (0: no pacing)")
    parser.add_argument("--stream-words", type=int, default=0, help="streams: reply length in words (0: an echo)")
    args = parser.parse_args(argv)
    upstream = Upstream(args.host, args.port)
    upstream.token_rate, upstream.stream_words = args.token_rate, args.stream_words
    print(
        f"Upstream emulator listening on {upstream.url} "
        f"(openai {upstream.openai_base_url}, openrouter {upstream.openrouter_base_url}, "
        f"anthropic {upstream.anthropic_base_url})",
        flush=True,
    )
    try:
        upstream._server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        upstream._server.server_close()


if __name__ == "__main__":
    main()
