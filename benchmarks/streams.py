"""Long streams at scale (issue 22): N concurrent streams of 200 tokens at 20 tokens/s each.

One asyncio client process opens N streamed `POST /v1/chat/completions` (ramped over a few
seconds, so they all overlap: each lives ~10 s) against, in turn, the emulator directly, Panel
(`bin/serve`, its default ASGI shape) and LiteLLM's proxy, both pointed at the same emulator (its
own process, pacing every stream at 20 tokens/s). Per contender: time to the first content chunk
(p50/p99), the most streams open at once, streams that ended in an error or without `[DONE]`, and
the server's resident memory per open stream (RSS of its whole process group at the peak minus
before the run, over the streams open then). Run by `run.py` (`bin/bench`, or `bin/bench --streams`
for this step alone).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TOKENS, RATE = 200, 20.0  # per stream: 200 tokens at 20 tokens/s (the emulator paces them)
CONTENT = b'"content":"'
EMPTY = b'"content":""'


def group_rss(pgid: int) -> int:
    """Resident bytes of every process in process group `pgid` (a server's master and its workers)."""
    total = 0
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid:  # field 5 of stat: the process group
                total += int((entry / "statm").read_text().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
    return total


async def _one(
    host: str, port: int, path: str, payload: bytes, auth: str, state: dict[str, Any], timeout: float
) -> None:
    started = time.perf_counter()
    first: float | None = None
    done = False
    writer = None
    state["open"] += 1
    state["peak"] = max(state["peak"], state["open"])
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=1 << 20), timeout)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Authorization: {auth}\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + payload)
        await writer.drain()
        status = int((await asyncio.wait_for(reader.readline(), timeout)).split()[1])
        deadline = time.monotonic() + timeout
        while line := await asyncio.wait_for(reader.readline(), max(deadline - time.monotonic(), 0.1)):
            squeezed = line.replace(b": ", b":")
            if first is None and line.startswith(b"data:") and CONTENT in squeezed and EMPTY not in squeezed:
                first = (time.perf_counter() - started) * 1000
            if line.startswith(b"data: [DONE]"):
                done = True
        if status == 200 and first is not None and done:
            state["ttft"].append(first)
        else:
            state["errors"] += 1
    except (TimeoutError, OSError, ValueError, IndexError):
        state["errors"] += 1
    finally:
        state["open"] -= 1
        if writer is not None:
            writer.close()


async def _run(url: str, body: dict, auth: str, streams: int, ramp: float, timeout: float, sample: Callable) -> dict:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    state: dict[str, Any] = {"open": 0, "peak": 0, "errors": 0, "ttft": [], "rss_at_peak": 0, "open_at_rss": 0}
    stop = asyncio.Event()

    async def watch() -> None:  # the server's RSS when the most streams are open
        while not stop.is_set():
            if state["open"] >= state["open_at_rss"]:
                rss = sample()
                if state["open"] >= state["open_at_rss"]:
                    state["rss_at_peak"], state["open_at_rss"] = rss, state["open"]
            await asyncio.sleep(0.25)

    watcher = asyncio.create_task(watch())
    tasks = []
    began = time.perf_counter()
    for index in range(streams):
        delay = began + index * ramp / streams - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(
            asyncio.create_task(
                _one(parts.hostname or "127.0.0.1", parts.port or 80, parts.path, payload, auth, state, timeout)
            )
        )
    await asyncio.gather(*tasks)
    stop.set()
    await watcher
    state["wall"] = time.perf_counter() - began
    return state


def run_streams(url: str, body: dict, auth: str, streams: int, ramp: float, pgid: int | None) -> dict:
    """N streams against `url`; pgid: the server's process group, for its RSS (None: not measured)."""
    sample = (lambda: group_rss(pgid)) if pgid is not None else (lambda: 0)
    idle = sample()
    state = asyncio.run(_run(url, {**body, "stream": True}, auth, streams, ramp, TOKENS / RATE * 4, sample))
    ttfts = sorted(state["ttft"])

    def pct(q: float) -> float:
        return ttfts[min(len(ttfts) - 1, max(0, round(q / 100 * (len(ttfts) - 1))))] if ttfts else 0.0

    per_stream = (
        (state["rss_at_peak"] - idle) / state["open_at_rss"] if pgid is not None and state["open_at_rss"] else None
    )
    return {
        "p50": pct(50),
        "p99": pct(99),
        "completed": len(ttfts),
        "errors": state["errors"],
        "peak": state["peak"],
        "rss_idle": idle,
        "rss_per_stream": per_stream,
        "wall": state["wall"],
    }
