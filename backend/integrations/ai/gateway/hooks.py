"""What the gateway gives every provider it builds: the ledger, shared pauses and the clock.

Providers (a Django-free package) report attempts and ask for waits through `ProviderHooks`;
this module wires those to the usage ledger (`usage.record_attempt`), the shared rate-limit
pauses (`pauses`) and the gateway clock (`clock`); each attempt also reaches observability
(its span). Looked up at call time, so a test's clock applies to providers built before it.
"""

from __future__ import annotations

from integrations.ai.ledger import usage
from integrations.ai.observability import calls as observed
from integrations.ai.providers.types import Attempt, ProviderHooks
from integrations.ai.runtime import clock, pauses


def _on_attempt(attempt: Attempt) -> None:
    usage.record_attempt(attempt)
    observed.attempt_ended(attempt)


def _sleep(seconds: float) -> None:
    clock.get().sleep(seconds)


def _monotonic() -> float:
    return clock.get().monotonic()


GATEWAY_HOOKS = ProviderHooks(
    on_attempt=_on_attempt,
    wait_if_paused=pauses.wait_if_paused,
    pause=pauses.pause,
    sleep=_sleep,
    monotonic=_monotonic,
)
