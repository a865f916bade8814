"""The gateway's clock: one seam for time and sleeping, so waits are testable without waiting.

Retries, backoff, shared rate-limit pauses and cooldowns all ask `clock.get()`. Tests (and a
simulation) install a `FakeClock` with `clock.use(...)`: a `Retry-After: 30` then costs no real
time, and the fake records every sleep so a test asserts the order and length of waits.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator


class Clock:
    """Real time."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.perf_counter()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock(Clock):
    """Time that moves only when someone sleeps; every sleep is recorded (thread-safe).

    Each thread's sleeps move that thread's own view of time, as real threads sleeping side by side
    each wait their own while: a pause one worker sets is still ahead of another worker, which
    then waits it out too. `advance()` moves every thread's time.
    """

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._base = start
        self._slept: dict[int, float] = {}
        self._lock = threading.Lock()
        self.sleeps: list[float] = []
        # (thread name, seconds, real perf_counter when it slept): lets a test check the order of events
        self.events: list[tuple[str, float, float]] = []

    def time(self) -> float:
        with self._lock:
            return self._base + self._slept.get(threading.get_ident(), 0.0)

    def monotonic(self) -> float:
        return self.time()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(round(seconds, 3))
            self.events.append((threading.current_thread().name, seconds, time.perf_counter()))
            ident = threading.get_ident()
            self._slept[ident] = self._slept.get(ident, 0.0) + max(seconds, 0.0)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._base += seconds


_current: Clock = Clock()


def get() -> Clock:
    return _current


@contextlib.contextmanager
def use(clock: Clock) -> Iterator[Clock]:
    """Install `clock` for the block (process-wide: threads of a batch see it too)."""
    global _current
    previous, _current = _current, clock
    try:
        yield clock
    finally:
        _current = previous
