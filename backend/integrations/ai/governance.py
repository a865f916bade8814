"""The gateway's admission step: rate limits and budget before the chain, policy per candidate.

`AIService` calls `admit()` once before it tries any provider and `candidate_refusal()` for each
candidate of the failover chain. Every refusal (rate limit, budget, policy) is written to the
usage ledger as a `refused` row with the error class and message, with no upstream request, so
the dashboard can count what was stopped and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from . import budget, budget_windows, ratelimit, usage
from .providers.errors import AIProviderError, BudgetExceeded, PolicyViolation, RateLimited

REFUSALS = (BudgetExceeded, PolicyViolation, RateLimited)


@dataclass
class Admission:
    """What an admitted call holds (budget reservation, rate-limit ticket) until `settle`."""

    reservation: budget.Reservation | None = None
    ticket: ratelimit.Ticket | None = None
    windows: budget_windows.WindowReservation | None = None

    def settle(self, record: usage.CallRecord, prices: usage.Prices) -> None:
        """Settle the budget to what the call cost and the token window to what it used."""
        cost = usage.total_cost(record, prices)
        if self.reservation is not None:
            self.reservation.settle(cost)
        if self.windows is not None:
            self.windows.settle(cost)
        if self.ticket is not None:
            used = sum(a.result.total_tokens for a in record.attempts if a.result is not None)
            self.ticket.settle(used)


def refuse(site_id: int | None, service: str, requested_model: str, provider: str,
           error: AIProviderError) -> AIProviderError:
    """Record a refusal in the ledger (status `refused`, no upstream request) and return the error to raise."""
    record = usage.CallRecord(site_id, service, requested_model or "", refusal=(provider, error))
    usage.write_ledger(record, {})
    return error


def admit(service: Any, snapshot: Any, provider: Any, requested_model: str | None, resolved: str,
          messages: list[dict[str, str]], system_prompt: str | None, max_tokens: int, *,
          check_budget: bool = True) -> Admission:
    """Rate limits, then the budget; a refusal is recorded and raised, and nothing stays taken."""
    site_id = service.site_id
    policy = snapshot.policy
    admission = Admission()
    try:
        admission.ticket = ratelimit.admit(
            site_id, policy.requests_per_minute, policy.tokens_per_minute,
            ratelimit.estimate_tokens(messages, system_prompt, max_tokens),
        )
        windows = budget_windows.windows_for(policy, snapshot.monthly_budget, service.service) if site_id else []
        if check_budget and windows:
            price = service.price_for(snapshot, provider, resolved)
            estimate = budget.estimate_cost(price, messages, system_prompt, max_tokens)
            admission.windows = budget_windows.reserve(site_id, windows, policy, estimate)
            if snapshot.monthly_budget is not None:
                admission.reservation = budget.reserve(site_id, snapshot.monthly_budget, estimate)
    except REFUSALS as exc:
        if admission.ticket is not None:
            admission.ticket.settle(0)
        if admission.windows is not None:
            admission.windows.settle(Decimal(0))
        raise refuse(site_id, service.service, requested_model or resolved, provider.name, exc) from None
    return admission


def candidate_refusal(snapshot: Any, provider: Any, model: str | None) -> PolicyViolation | None:
    """Why the site's policy refuses this failover candidate, or None."""
    return snapshot.policy.refusal(provider, model)


def options_for(snapshot: Any, provider: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The call's options with the site's OpenRouter data policy applied (other providers unchanged)."""
    if provider.name != "openrouter":
        return options
    return snapshot.policy.openrouter_options(options)

