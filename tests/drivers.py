"""The gateway's two drivers behind one interface, so a behaviour test runs over both (issue 22).

`sync` calls `generate_content` / iterates `generate_stream` on the test's thread; `async` awaits
`agenerate_content` / `async for`s `astream` on an event loop (asgiref's `async_to_sync`, so the
steps the async driver runs off its loop run on the test's thread, inside the test's transaction).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import async_to_sync as _async_to_sync

from integrations.ai.gateway.service import AIService, GatewayStream
from integrations.ai.providers.types import GenerationResult


def async_to_sync(function: Callable[..., Any]) -> Callable[..., Any]:
    """asgiref's `async_to_sync`, or, when this thread already runs an event loop (Playwright's sync API
    leaves one running after the browser tests, which pytest-django orders before later transactional
    tests), the same on a thread of its own (asgiref refuses to nest in a running loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _async_to_sync(function)

    def run(*args: Any, **kwargs: Any) -> Any:
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(lambda: _async_to_sync(function)(*args, **kwargs)).result()

    return run


class Driver:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def generate(self, service: AIService, prompt: str, **kwargs: Any) -> GenerationResult:
        if self.name == "sync":
            return service.generate_content(prompt, **kwargs)
        return async_to_sync(service.agenerate_content)(prompt, **kwargs)

    def complete(self, service: AIService, messages: list[dict[str, str]], **kwargs: Any) -> GenerationResult:
        if self.name == "sync":
            return service.complete(messages, **kwargs)
        return async_to_sync(service.acomplete)(messages, **kwargs)

    def stream(
        self, service: AIService, prompt: str, received: list[str] | None = None, **kwargs: Any
    ) -> GatewayStream:
        """Consume a stream to its end; each delta is appended to `received` as it arrives (kept when it raises)."""
        received = [] if received is None else received
        if self.name == "sync":
            stream = service.generate_stream(prompt, **kwargs)
            for delta in stream:
                received.append(delta)
            return stream

        async def run() -> GatewayStream:
            stream = await service.astream(prompt, **kwargs)
            async for delta in stream:
                received.append(delta)
            return stream

        return async_to_sync(run)()
