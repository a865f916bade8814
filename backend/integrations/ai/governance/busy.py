"""In-flight refusals: whether a refused reservation is held only by other calls still running.

When the settled spend leaves room for a call and only other calls' in-flight reservations fill a cap,
the refusal is `BudgetBusy` (retryable, `Retry-After`) rather than "budget used up". The monthly cap
(`budget`) and the windows (`budget_windows`) both decide it here, so neither imports the other.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from integrations.ai.governance.money import MILLION, usd
from integrations.ai.providers.errors import BudgetBusy

BUSY_RETRY_AFTER = 2.0  # seconds a BudgetBusy refusal asks the caller to wait: in-flight calls settle within a call


def limit_of(cap: Decimal) -> int:
    """A cap in whole micro-dollars, rounded down: the counters never admit more than the cap."""
    return int((cap * MILLION).to_integral_value(rounding=ROUND_FLOOR))


def busy(spent: int, in_flight: int, amount: int, limit: int) -> bool:
    """Whether a refused reservation of `amount` is refused only because of other calls in flight
    (micro-dollars): the settled spend leaves room for it, so retrying after they settle may succeed."""
    return in_flight > 0 and spent + amount <= limit


def busy_error(what: str, estimate: Decimal, cap: Decimal, spent: Decimal, in_flight: Decimal) -> BudgetBusy:
    return BudgetBusy(
        f"The {what} of {usd(cap)} is held by requests still running ({usd(spent)} spent, {usd(in_flight)} "
        f"reserved in flight); this request could cost up to {usd(estimate)}. Retry in a few seconds.",
        retry_after=BUSY_RETRY_AFTER,
    )
