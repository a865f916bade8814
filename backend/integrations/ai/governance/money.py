"""Money as the budget counters hold it: integer micro-dollars, and dollars as people read them.

A leaf of `governance` (the monthly cap in `budget` and the windows in `budget_windows` both count
in micro-dollars), so neither has to import the other for it.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

MILLION = Decimal(1_000_000)


def micro(amount: Decimal) -> int:
    """Whole micro-dollars, rounded up: the counters may overstate spend, never understate it."""
    return int((amount * MILLION).to_integral_value(rounding=ROUND_CEILING))


def usd(amount: Decimal) -> str:
    """$12.50 for money, $0.00042 for the fractions of a cent tokens cost."""
    return f"${amount:,.2f}" if abs(amount) >= Decimal("0.01") or amount == 0 else f"${amount.normalize():f}"
