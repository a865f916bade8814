"""How the async driver runs a blocking step (the cache, the database, Redis) without blocking its event loop.

One function, so every step the async path keeps off the loop goes the same way: asgiref's
`sync_to_async` on a thread of its pool (not thread-sensitive: steps of different calls run side by
side), with the caller's context variables (the call being ledgered, the acting virtual key) carried
there and back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async

T = TypeVar("T")


async def offload(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`call(*args, **kwargs)` on a worker thread, awaited."""
    return await sync_to_async(call, thread_sensitive=False)(*args, **kwargs)
