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
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TOKENS, RATE = 200, 20.0  # per stream: 200 tokens at 20 tokens/s (the emulator paces them)


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


FIRST = re.compile(rb'"content": ?"[^"]')  # a content delta that is not empty (either JSON spacing)
DONE = b"data: [DONE]"


class _Stream(asyncio.Protocol):
    """One streamed request, read by callbacks: each received block is searched once (for the first content
    delta, then for `[DONE]`), never split into lines or awaited line by line.

    Why: the client shares the machine with the server measured. Read with `StreamReader.readline` under
    `wait_for` (a task and a timer per line, two lines per event), it took ~80% of a core at 1,000 streams,
    more than either Panel worker, and starved the servers it measured; this reader costs a fraction."""

    def __init__(self, request: bytes, started: float, done: asyncio.Future[tuple[int, float | None, bool]]) -> None:
        self.request, self.started, self.done = request, started, done
        self.status = 0
        self.first: float | None = None
        self.finished = False
        self.tail = b""  # the end of the previous block: a marker split across two reads is still found

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        block = self.tail + data
        if not self.status:
            if b"\r\n" not in block:
                self.tail = block
                return
            try:
                self.status = int(block.split(b" ", 2)[1])
            except (IndexError, ValueError):
                self.status = -1
        if self.first is None and FIRST.search(block):
            self.first = (time.perf_counter() - self.started) * 1000
        if self.first is not None and DONE in block:
            self.finished = True
        self.tail = block[-32:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result((self.status, self.first, self.finished))


async def _one(host: str, port: int, request: bytes, state: dict[str, Any], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    done: asyncio.Future[tuple[int, float | None, bool]] = loop.create_future()
    transport = None
    state["open"] += 1
    state["peak"] = max(state["peak"], state["open"])
    opened_with = state["open"]  # streams open when this one started, itself included
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(lambda: _Stream(request, started, done), host, port)
            status, first, finished = await done  # the server closes the connection (`Connection: close`)
        if status == 200 and first is not None and finished:
            state["ttft"].append(first)
            state["by_open"].append((opened_with, first))
        else:
            state["errors"] += 1
    except (TimeoutError, OSError):
        state["errors"] += 1
    finally:
        state["open"] -= 1
        if transport is not None:
            transport.close()


async def _run(url: str, body: dict, auth: str, streams: int, ramp: float, timeout: float, sample: Callable) -> dict:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    payload = json.dumps(body).encode()
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Authorization: {auth}\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    )
    request = head.encode() + payload
    state: dict[str, Any] = {"open": 0, "peak": 0, "errors": 0, "ttft": [], "by_open": []}
    state.update(rss_at_peak=0, open_at_rss=0)
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
        tasks.append(asyncio.create_task(_one(host, port, request, state, timeout)))
    await asyncio.gather(*tasks)
    stop.set()
    await watcher
    state["wall"] = time.perf_counter() - began
    return state


def percentile(ordered: list[float], q: float) -> float:
    """The q-th percentile of an ascending list (nearest rank; 0 for none)."""
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))] if ordered else 0.0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed (it is, with Panel's dependencies): the lighter the client, the more of the
    machine is left to the server measured. The same client measures every contender."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run_streams(url: str, body: dict, auth: str, streams: int, ramp: float, pgid: int | None) -> dict:
    """N streams against `url`; pgid: the server's process group, for its RSS (None: not measured)."""
    sample = (lambda: group_rss(pgid)) if pgid is not None else (lambda: 0)
    idle = sample()
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        state = runner.run(_run(url, {**body, "stream": True}, auth, streams, ramp, TOKENS / RATE * 4, sample))
    ttfts = sorted(state["ttft"])
    # the same, for the streams that started with at most a quarter, half, ... of the N open: where the machine
    # stops keeping up shows as the band where the times jump
    bands = {}
    for quarter in (1, 2, 3, 4):
        low, high = streams * (quarter - 1) // 4, streams * quarter // 4
        band = sorted(first for opened, first in state["by_open"] if low < opened <= high)
        bands[high] = (percentile(band, 50), percentile(band, 99), len(band))

    per_stream = (
        (state["rss_at_peak"] - idle) / state["open_at_rss"] if pgid is not None and state["open_at_rss"] else None
    )
    return {
        "p50": percentile(ttfts, 50),
        "p99": percentile(ttfts, 99),
        "bands": bands,
        "completed": len(ttfts),
        "errors": state["errors"],
        "peak": state["peak"],
        "rss_idle": idle,
        "rss_per_stream": per_stream,
        "wall": state["wall"],
    }
