"""How the async driver runs a blocking step (the cache, the database, Redis) without blocking its event loop.

One function, so every step the async path keeps off the loop goes the same way: asgiref's
`sync_to_async`, thread-sensitive as Django's own sync code under ASGI is. Within a request that is
the request's own thread (Django gives each ASGI request one): the steps of one call run in order
on it, with its database connection, while other requests' steps run on theirs; under
`async_to_sync` (a sync caller, a test) it is the caller's thread. The caller's context variables
(the call being ledgered, the acting virtual key) go there and back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async

T = TypeVar("T")


async def offload(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`call(*args, **kwargs)` off the event loop, awaited."""
    return await sync_to_async(call, thread_sensitive=True)(*args, **kwargs)
