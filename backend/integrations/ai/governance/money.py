"""Money: integer micro-dollars as the budget counters hold them, and dollars as people read them.

A leaf of `governance` (the monthly cap in `budget` and the windows in `budget_windows` both count in
micro-dollars), so neither has to import the other for it.

One format everywhere (messages, e-mails, admin screens, charts' data). Sums come back from SQLite as
floats (`0.00427750000000001`), caps as `5.000000`, small prices in exponent form (`2.5E-5`): `usd`
turns every one of them into the same plain text. Whole cents and more: two decimals with thousands
separators (`$1,234.50`, `$5.00`); under a cent: three significant digits, never an exponent
(`$0.00428`, `$0.000025`). The admin's `money` template filter and the dashboard's chart labels
(static/integrations/usage_dashboard.js, `money`) follow the same rules.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, InvalidOperation

MILLION = Decimal(1_000_000)
CENT = Decimal("0.01")
SIGNIFICANT = 3  # digits kept of an amount under a cent


def micro(amount: Decimal) -> int:
    """Whole micro-dollars, rounded up: the counters may overstate spend, never understate it."""
    return int((amount * MILLION).to_integral_value(rounding=ROUND_CEILING))


def amount(value: object) -> Decimal | None:
    """`value` (Decimal, int, float, numeric string) as a Decimal without float noise; None if not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        # a float by its shortest repr, noise past 1e-12 dropped
        number = Decimal(repr(round(value, 12))) if isinstance(value, float) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def usd(value: object) -> str:
    """`$12.50`, `$1,234.50`, `$0.00`, `$0.00428`, `-$3.00`; an empty string for something not a number."""
    number = amount(value)
    if number is None:
        return ""
    sign = "-" if number < 0 else ""
    number = abs(number)
    rounded = number.quantize(CENT, rounding=ROUND_HALF_UP)
    if number == 0 or rounded >= CENT:
        return f"{sign}${rounded:,.2f}"
    exponent = number.adjusted() - SIGNIFICANT + 1  # keep SIGNIFICANT digits
    small = number.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP).normalize()
    return f"{sign}${small:f}"


def editable(value: object) -> str:
    """An amount as a form's input shows it: `5.00` for `5.000000`, every digit kept below a cent
    (`0.000025`), so saving the form unchanged never changes the amount. Empty for None."""
    number = amount(value)
    if number is None:
        return ""
    cents = number.quantize(CENT)
    return f"{cents:.2f}" if cents == number else f"{number.normalize():f}"
