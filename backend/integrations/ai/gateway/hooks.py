"""What the gateway gives every provider it builds: the ledger, shared pauses and the clock.

Providers (a Django-free package) report attempts and ask for waits through `ProviderHooks`;
this module wires those to the usage ledger (`usage.record_attempt`), the shared rate-limit
pauses (`pauses`) and the gateway clock (`clock`); each attempt also reaches observability
(its span). Looked up at call time, so a test's clock applies to providers built before it.
"""

from __future__ import annotations

import asyncio

from integrations.ai.ledger import usage
from integrations.ai.observability import calls as observed
from integrations.ai.providers.types import Attempt, ProviderHooks
from integrations.ai.runtime import clock, pauses
from integrations.ai.runtime.offload import offload


def _on_attempt(attempt: Attempt) -> None:
    usage.record_attempt(attempt)
    observed.attempt_ended(attempt)


def _sleep(seconds: float) -> None:
    clock.get().sleep(seconds)


def _monotonic() -> float:
    return clock.get().monotonic()


async def _asleep(seconds: float) -> None:
    """The async driver's wait: real time on the loop, or the test's clock (which records it, no waiting)."""
    current = clock.get()
    if type(current) is clock.Clock:
        if seconds > 0:
            await asyncio.sleep(seconds)
    else:  # on the thread the pipeline's other steps run on, so the fake time they read moves too
        await offload(current.sleep, seconds)


GATEWAY_HOOKS = ProviderHooks(
    on_attempt=_on_attempt,
    wait_if_paused=pauses.wait_if_paused,
    pause=pauses.pause,
    sleep=_sleep,
    monotonic=_monotonic,
    paused_for=pauses.paused_for,
    asleep=_asleep,
    offload=offload,
)
