"""An OpenAI-format upstream on one event loop, for the long-streams step (`bin/bench --streams`) only.

Why not the test emulator (`integrations.ai.testing.upstream`): it is the standard library's threaded
HTTP server, a thread per stream under one interpreter lock. At 1,000 streams of 20 tokens a second it
had to make 20,000 paced writes a second from 1,000 threads and took 27 s to a first token with nobody in
front of it, so the step measured the emulator, not Panel or LiteLLM's proxy. This server does the one
thing the step needs on asyncio: `POST …/chat/completions` answered as OpenAI answers it (a JSON
completion, or with `"stream": true` an SSE stream of `--tokens` word deltas paced at `--rate` a second,
the usage chunk when `stream_options.include_usage` asks for it, `data: [DONE]`). Anything else is a 404.
The tests keep using the full emulator; this one is not imported by Panel.

Run: `python benchmarks/stream_upstream.py --port 8766 --rate 20 --tokens 200`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

WORDS = ("tide", "pools", "hold", "small", "worlds", "of", "anemones", "and", "crabs", "at", "low", "water")


def _chunk(gen_id: str, created: int, model: str, delta: dict, finish: str | None = None) -> bytes:
    data = {
        "id": gen_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


class Upstream:
    def __init__(self, rate: float, tokens: int) -> None:
        self.gap = 1.0 / rate if rate else 0.0
        self.tokens = tokens

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection is done."""
        line = await reader.readline()
        if not line:
            return False
        method, path, _ = line.decode("latin-1").split(" ", 2)
        length, close = 0, False
        while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection":
                close = value.strip().lower() == "close"
        body = json.loads(await reader.readexactly(length)) if length else {}
        if method != "POST" or not path.split("?")[0].endswith("/chat/completions"):
            return self._send(
                writer, 404, {"error": {"message": f"No route for {method} {path}.", "type": "not_found"}}
            )
        model = str(body.get("model") or "gpt-4o-mini")
        gen_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", ())) + 3
        if not body.get("stream"):
            text = " ".join(WORDS[i % len(WORDS)] for i in range(min(self.tokens, 20)))
            completion = {
                "id": gen_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 20, "total_tokens": prompt_tokens + 20},
            }
            return self._send(writer, 200, completion)
        # chunked, and the connection kept afterwards unless the client asked to close it: as the vendors do
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n" + (b"Connection: close\r\n" if close else b"") + b"\r\n"
        )

        def send(data: bytes) -> None:
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))

        send(_chunk(gen_id, created, model, {"role": "assistant", "content": ""}))
        # each word delta is this stream's fixed head and tail around the word's JSON: byte for byte what
        # `_chunk` makes, without building and encoding the whole object 20,000 times a second
        head, _, tail = _chunk(gen_id, created, model, {"content": ""}).partition(b'"content":""')
        head, tail = head + b'"content":', tail
        for index in range(self.tokens):
            word = WORDS[index % len(WORDS)]
            send(head + json.dumps(word if index == 0 else " " + word).encode() + tail)
            await writer.drain()
            if self.gap and index < self.tokens - 1:
                await asyncio.sleep(self.gap)
        send(_chunk(gen_id, created, model, {}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": self.tokens}
            usage["total_tokens"] = prompt_tokens + self.tokens
            last = {"id": gen_id, "object": "chat.completion.chunk", "created": created, "model": model}
            payload = {**last, "choices": [], "usage": usage}
            send(b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n")
        send(b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return not close

    @staticmethod
    def _send(writer: asyncio.StreamWriter, status: int, payload: dict) -> bool:
        data = json.dumps(payload).encode()
        reason = "OK" if status == 200 else "Not Found"
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            f"x-request-id: req_{uuid.uuid4().hex[:16]}\r\n\r\n".encode()
            + data
        )
        return True


async def serve(port: int, rate: float, tokens: int) -> None:
    server = await asyncio.start_server(Upstream(rate, tokens).handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--rate", type=float, default=20.0, help="word deltas a second per stream (0: unpaced)")
    parser.add_argument("--tokens", type=int, default=200, help="word deltas per stream")
    args = parser.parse_args()
    try:  # uvloop when installed (with Panel's dependencies): the upstream's own cost is not what is measured
        import uvloop
    except ImportError:
        asyncio.run(serve(args.port, args.rate, args.tokens))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(args.port, args.rate, args.tokens))


if __name__ == "__main__":
    main()
