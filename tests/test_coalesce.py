"""`panel.coalesce.write_coalesced`, the /v1 stream writer (issue 22): the parts an iterator has ready at once
share one write, a part that needs a wait never delays the parts in hand, and an error or a cancellation
reaches the iterator as if it had been awaited all along (its cleanup runs)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from panel.coalesce import write_coalesced


def run(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """`main()` on an event loop of its own thread (this one may run Playwright's)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, asyncio.wait_for(main(), 10)).result()


def test_parts_ready_together_share_a_write_and_the_next_wait_comes_after_it():
    writes: list[bytes] = []

    async def main() -> None:
        written = asyncio.Event()

        async def parts() -> AsyncIterator[bytes]:
            yield b"a"
            yield b"b"
            yield b"c"
            await written.wait()  # set only by a write: waited for before writing "abc", this never ends
            yield b"d"
            yield b"e"

        async def write(data: bytes) -> None:
            writes.append(data)
            written.set()

        await write_coalesced(parts(), write)

    run(main)
    assert writes == [b"abc", b"de"]


def test_each_part_is_written_alone_when_each_needs_a_wait():
    writes: list[bytes] = []

    async def main() -> None:
        async def parts() -> AsyncIterator[bytes]:
            for part in (b"a", b"b", b"c"):
                await asyncio.sleep(0)
                yield part

        async def write(data: bytes) -> None:
            writes.append(data)

        await write_coalesced(parts(), write)

    run(main)
    assert writes == [b"a", b"b", b"c"]


def test_a_write_holds_at_most_the_limit():
    writes: list[bytes] = []

    async def main() -> None:
        async def parts() -> AsyncIterator[bytes]:
            for n in range(10):
                yield b"%d" % n

        async def write(data: bytes) -> None:
            writes.append(data)

        await write_coalesced(parts(), write, limit=4)

    run(main)
    assert writes == [b"0123", b"4567", b"89"]


def test_an_error_after_ready_parts_comes_after_their_write():
    writes: list[bytes] = []

    async def main() -> None:
        async def parts() -> AsyncIterator[bytes]:
            yield b"a"
            yield b"b"
            raise ValueError("upstream broke")

        async def write(data: bytes) -> None:
            writes.append(data)

        await write_coalesced(parts(), write)

    with pytest.raises(ValueError, match="upstream broke"):
        run(main)
    assert writes == [b"ab"]


def test_a_cancellation_during_a_write_reaches_the_waiting_iterator_and_its_cleanup_runs():
    seen: list[str] = []

    async def main() -> None:
        writing, never = asyncio.Event(), asyncio.Event()

        async def parts() -> AsyncIterator[bytes]:
            try:
                yield b"a"
                await never.wait()  # the next token: still waited for when the write is cancelled
                yield b"b"
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise
            finally:
                await asyncio.sleep(0)  # cleanup that awaits (closing the upstream request does)
                seen.append("cleaned up")

        async def write(data: bytes) -> None:
            writing.set()
            await never.wait()  # a client that stopped reading

        task = asyncio.create_task(write_coalesced(parts(), write))
        await writing.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main)
    assert seen == ["cancelled", "cleaned up"]


def test_any_async_iterator_not_only_a_generator():
    writes: list[bytes] = []

    class Parts:
        def __init__(self) -> None:
            self.left = [b"x", b"y"]

        def __aiter__(self) -> Parts:
            return self

        async def __anext__(self) -> bytes:
            if not self.left:
                raise StopAsyncIteration
            return self.left.pop(0)

    async def main() -> None:
        async def write(data: bytes) -> None:
            writes.append(data)

        await write_coalesced(Parts(), write)

    run(main)
    assert writes == [b"xy"]
