"""Monthly spend caps per site, enforced before any upstream call.

A capped request reserves its worst-case cost (prompt estimate x prompt price + max_tokens x
completion price) with one atomic `incr` on the site's month counter in the Django cache (integer
micro-dollars: spent + in flight), and gives it back with `decr` when that passes the cap, so two
requests can never both slip past it; afterwards it settles to the real cost. With Redis as the
cache the counters are shared by every process. The counters are seeded from the site's
`BudgetPeriod` row when cold (one query, then none), and the ledger writer adds each written row's
cost to that row, so the cap holds after a restart. Sites without a cap skip all of this.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

from integrations.ai.providers.errors import BudgetExceeded

if TYPE_CHECKING:
    from integrations.ai.ledger.usage import Price

# django.db and django.utils.timezone are imported inside the functions: only capped sites need it, and importing it
# here would triple the import time of `integrations.ai`.

logger = logging.getLogger("integrations.ai")
MILLION = Decimal(1_000_000)
COUNTER_TTL = 40 * 24 * 3600  # outlives the month it counts


def micro(amount: Decimal) -> int:
    """Whole micro-dollars, rounded up: the counters may overstate spend, never understate it."""
    return int((amount * MILLION).to_integral_value(rounding=ROUND_CEILING))


_keys: dict[tuple[int, datetime.datetime], tuple[str, str]] = {}


def counter_keys(site_id: int) -> tuple[str, str]:
    """(spent + reserved, spent) counters of the site's current month (memoised: every capped call asks)."""
    month = month_start()
    keys = _keys.get((site_id, month))
    if keys is None:
        base = f"ai:budget:{site_id}:{month:%Y-%m}"
        if len(_keys) > 4096:
            _keys.clear()
        keys = _keys[site_id, month] = (f"{base}:used", f"{base}:spent")
    return keys


def usd(amount: Decimal) -> str:
    """$12.50 for money, $0.00042 for the fractions of a cent tokens cost."""
    return f"${amount:,.2f}" if abs(amount) >= Decimal("0.01") or amount == 0 else f"${amount.normalize():f}"


def month_start() -> datetime.datetime:
    """The start of this month in TIME_ZONE (the budget windows' and daily roll-ups' calendar)."""
    from integrations.ai.governance.budget_windows import calendar

    return calendar()[2]


def month_to_date_spend(site_id: int) -> Decimal:
    from django.db.models import Sum

    from integrations.models import AIUsage

    total = AIUsage.objects.filter(site_id=site_id, created_at__gte=month_start()).aggregate(total=Sum("cost"))
    return total["total"] or Decimal(0)


def estimate_cost(
    price: Price | tuple[Decimal, Decimal] | None,
    messages: list[dict[str, str]],
    system_prompt: str | None,
    max_tokens: int,
) -> Decimal:
    """Worst case for one call: ~1 token per 3 characters of input, and every allowed output token.

    An unpriced model (None) is estimated at `AI_UNPRICED_PRICE`, never zero (`pricing.estimate`)."""
    from integrations.ai.ledger.pricing import estimate

    return estimate(price, sum(len(m["content"]) for m in messages) + len(system_prompt or ""), max_tokens)


@dataclass
class Reservation:
    site_id: int
    amount: Decimal
    keys: tuple[str, str]
    reserved: int  # micro-dollars

    def settle(self, actual: Decimal) -> tuple[int, int] | None:
        """Turn the reservation into the real spend (zero if the call failed): two cache increments.

        Returns the month's spend counter (micro-dollars) before and after, when it moved: the monthly
        alerts are read from it (`budget_windows`), so the month is counted once.
        """
        from integrations.ai.runtime.shared_cache import cache

        spent = micro(actual)
        used_key, spent_key = self.keys
        try:
            if spent != self.reserved:
                cache.incr(used_key, spent - self.reserved)
            if spent:
                after = cache.incr(spent_key, spent)
                return after - spent, after
        except ValueError:  # the counters were evicted meanwhile: the next call reseeds them from the database
            if not getattr(cache, "degraded", False):  # not once per call of a Redis outage (panel.cache logs it)
                logger.warning("budget counters of site %s vanished before a settlement", self.site_id)
        return None


def _period(site_id: int):
    from django.db import IntegrityError, transaction

    from integrations.models import BudgetPeriod

    month = month_start().date()
    period = BudgetPeriod.objects.filter(site_id=site_id, month=month).first()
    if period is None:
        try:
            with transaction.atomic():
                # Seed from the ledger so spend recorded before the row existed still counts.
                period = BudgetPeriod.objects.create(site_id=site_id, month=month, spent=month_to_date_spend(site_id))
        except IntegrityError:  # another process created it first
            period = BudgetPeriod.objects.get(site_id=site_id, month=month)
    return period


def _seed(site_id: int, keys: tuple[str, str]) -> None:
    """Cold counters: start them at the month's recorded spend (`add` keeps whichever seed came first)."""
    from integrations.ai.ledger import journal as ledger_journal
    from integrations.ai.ledger import writer as ledger_writer
    from integrations.ai.runtime.shared_cache import cache

    ledger_journal.replay_once(ledger_writer.write_rows)  # a killed process's rows count before the seed
    spent = micro(_period(site_id).spent)
    used_key, spent_key = keys
    cache.add(spent_key, spent, COUNTER_TTL)
    cache.add(used_key, spent, COUNTER_TTL)


def forget(site_id: int) -> None:
    """Drop a site's counters, so the next call reseeds them: after editing its `BudgetPeriod` by hand."""
    from integrations.ai.runtime.shared_cache import cache

    cache.delete_many(list(counter_keys(site_id)))


def reserve(site_id: int | None, cap: Decimal | None, estimate: Decimal) -> Reservation | None:
    """Reserve `estimate` against the site's cap, or raise BudgetExceeded. None when there is no cap."""
    if site_id is None or cap is None:
        return None
    from integrations.ai.runtime.shared_cache import cache

    keys = counter_keys(site_id)
    used_key, spent_key = keys
    amount = micro(estimate)
    limit = int((cap * MILLION).to_integral_value(rounding=ROUND_FLOOR))
    try:
        used = cache.incr(used_key, amount)
    except ValueError:  # cold
        _seed(site_id, keys)
        used = cache.incr(used_key, amount)
    if used <= limit and used - amount < limit:
        return Reservation(site_id=site_id, amount=estimate, keys=keys, reserved=amount)
    cache.decr(used_key, amount)
    spent = Decimal(cache.get(spent_key) or 0) / MILLION
    in_flight = max(Decimal(0), Decimal(used - amount) / MILLION - spent)
    if spent >= cap:
        from integrations.ai.governance.budget_windows import Window

        raise BudgetExceeded(
            f"This site's monthly AI budget of {usd(cap)} is used up ({usd(spent)} spent this month). "
            "Raise the cap in the site's AI provider settings or wait for next month.",
            retry_after=Window("month", cap, month_start(), 0).seconds_left(),
        )
    raise BudgetExceeded(
        f"This request could cost up to {usd(estimate)}, which would pass the site's monthly AI budget of "
        f"{usd(cap)} ({usd(spent)} spent, {usd(in_flight)} in flight). Lower max_tokens, "
        "raise the cap, or retry when running requests finish."
    )
