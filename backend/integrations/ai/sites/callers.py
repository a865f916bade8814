"""Who is calling: a site's virtual API key, as one more governance scope.

The `/v1` endpoints run each call `acting_as(key)`. The gateway then treats the key like the site,
with the same mechanisms: `governance.admit` counts the call against the key's own requests and
tokens per minute (`ratelimit`, keyed by the key) and its monthly budget (one more budget window,
`budget_windows`); `governance.candidate_refusal` refuses a model outside the key's allowed models;
and every ledger row of the call carries the key's id (`usage.CallRecord.api_key_id`). A context
variable, like the ledger's content attribution, so `AIService` keeps its signatures.

This module imports nothing of Django's: the gateway imports it on every call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from integrations.ai.providers.errors import PolicyViolation
from integrations.ai.sites import policy


@dataclass(frozen=True)
class KeyScope:
    """The limits of one virtual key, frozen when its row was read (see integrations.api.v1.keys)."""

    id: int
    site_id: int
    name: str
    last4: str
    monthly_budget: Decimal | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    allowed_models: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """How messages name the key: its name and last four characters, never more of it."""
        return f"“{self.name}” (…{self.last4})" if self.name else f"…{self.last4}"

    @property
    def rate_scope(self) -> str:
        """The key's rate-limit counters' scope (a site's are its id)."""
        return f"key{self.id}"

    def model_allowed(self, *names: str | None) -> bool:
        return policy.model_allowed(self.allowed_models, *names)

    def refusal(self, provider: Any, model: str | None) -> PolicyViolation | None:
        """Why this key may not call `model` on `provider`, or None (the site's matching rule, `policy`)."""
        return policy.model_refusal(
            self.allowed_models,
            provider,
            model,
            who=f"The API key {self.label}",
            rule="api_key.allowed_models",
            listed="its allowed models",
        )


_current: ContextVar[KeyScope | None] = ContextVar("integrations_ai_caller", default=None)


@contextlib.contextmanager
def acting_as(key: KeyScope | None) -> Iterator[KeyScope | None]:
    """AI calls made inside this block are the key's: its limits apply and the ledger names it."""
    token = _current.set(key)
    try:
        yield key
    finally:
        _current.reset(token)


def current() -> KeyScope | None:
    return _current.get()


def current_id() -> int | None:
    key = _current.get()
    return key.id if key is not None else None
