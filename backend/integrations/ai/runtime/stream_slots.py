"""Back-pressure for streams: a per-process cap on upstream streams held open at once (`AI_MAX_STREAMS`).

An event loop holds thousands of idle streams cheaply, but not without bound: memory, file
descriptors and the vendor's own concurrency limits run out first. A stream past the cap is refused
at once with `Overloaded` (a 503 with Retry-After on /v1) rather than queued behind streams that may
run for a minute. One counter for both drivers (a lock: the sync driver's threads take slots too).
"""

from __future__ import annotations

import threading

from integrations.ai.providers.errors import Overloaded
from integrations.ai.runtime import conf

_lock = threading.Lock()
_open = 0


def acquire() -> None:
    """Take a slot for one upstream stream, or raise `Overloaded` when the process holds its cap."""
    global _open
    cap = conf.max_streams()
    with _lock:
        if cap and _open >= cap:
            raise Overloaded(
                f"This server holds {cap} streams at once (AI_MAX_STREAMS); retry in a moment.", retry_after=1.0
            )
        _open += 1


def release() -> None:
    global _open
    with _lock:
        _open = max(0, _open - 1)


def held() -> int:
    """Streams open in this process now."""
    return _open
