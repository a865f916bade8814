"""Write an async iterator's parts, each write holding every part it had ready without waiting.

Why: a `/v1` stream sends one small event per token, and each send was one `write` on the client's
socket: the largest single cost of a streamed chunk (about a third of a worker's time at 1,000 streams).
When a worker falls behind, several of a stream's chunks arrive in one read from the vendor and pass
through the gateway without it waiting once; those are written together here. A part that needs a wait
(the next token is not there yet) is never waited for before the parts already in hand are written, so
this adds no latency: under light load every write holds one part, as before.

How: the iterator's next step is started by hand (`send(None)` on its `__anext__()` awaitable). A step that
finishes at once is a ready part; one that stops on a future is kept, and after the write the future is
handed to the task and the step driven on from there (`_Resume`). Whatever reaches the task meanwhile (a
cancellation while the write waits on a slow client) is thrown into the kept step, as if the iterator had been
awaited all along, so its cleanup (closing the upstream request, settling the call) runs as before.

Imports: the standard library only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any

LIMIT = 256  # parts in one write at most (a few KiB of events: a write stays small)


class _Resume:
    """Awaiting it finishes a step of an async iterator that was started by hand and stopped on `pending`
    (or, with `error`, throws that into the step first)."""

    __slots__ = ("error", "pending", "step")

    def __init__(self, step: Any, pending: Any, error: BaseException | None = None) -> None:
        self.step, self.pending, self.error = step, pending, error

    def __await__(self) -> Generator[Any, Any, Any]:
        step, pending, error = self.step, self.pending, self.error
        try:
            if error is not None:
                pending = step.throw(error)
            while True:
                try:
                    value = yield pending
                except BaseException as exc:  # a cancellation (or close) of the task: the step gets it
                    pending = step.throw(exc)
                else:
                    pending = step.send(value)
        except StopIteration as stop:
            return stop.value


async def write_coalesced(
    parts: AsyncIterator[bytes], write: Callable[[bytes], Awaitable[None]], limit: int = LIMIT
) -> None:
    """`write` each part of `parts`, in order, joining the parts that were ready together into one write."""
    kept: tuple[Any, Any] | None = None  # a started step, and what it waits on
    while True:
        try:
            first = await (anext(parts) if kept is None else _Resume(*kept))
        except StopAsyncIteration:
            return
        kept = None
        batch = [first]
        stop: BaseException | None = None  # the iterator's end or error, raised once the batch is written
        while len(batch) < limit:
            step: Any = parts.__anext__()
            try:
                pending = step.send(None)
            except StopIteration as ready:
                batch.append(ready.value)
            except BaseException as exc:  # StopAsyncIteration, or the iterator's own error
                stop = exc
                break
            else:
                kept = (step, pending)
                break
        try:
            await write(batch[0] if len(batch) == 1 else b"".join(batch))
        except BaseException as exc:
            if kept is not None:  # the step left waiting sees what the task saw, and cleans up as it would
                await _Resume(*kept, error=exc)
            raise
        if stop is not None:
            if isinstance(stop, StopAsyncIteration):
                return
            raise stop
