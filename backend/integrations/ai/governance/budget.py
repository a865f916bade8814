"""Monthly spend caps per site, enforced before any upstream call.

A capped request reserves its worst-case cost (prompt estimate x prompt price + max_tokens x
completion price) with one atomic `incr` on the site's month counter in the Django cache (integer
micro-dollars: spent + in flight), and gives it back with `decr` when that passes the cap, so two
requests can never both slip past it; afterwards it settles to the real cost. With Redis as the
cache the counters are shared by every process. The counters are seeded from the site's
`BudgetPeriod` row when cold (one query, then none), and the ledger writer adds each written row's
cost to that row, so the cap holds after a restart. Sites without a cap skip all of this.

Hard caps: before the gateway tries a failover candidate it raises the reservation to that
candidate's worst case (`Reservation.raise_to`), so a dearer fallback never runs on a cheaper
provider's reservation; and a settlement above the reservation (a vendor-reported cost, more tokens
than estimated) moves the `used` counter by the whole overshoot, so the next reservation sees it.
The guarantee: the month's spend stays <= the cap, plus the overshoots (actual - reserved, where
positive) of the calls in flight when the last call was admitted; with no overshoot, <= the cap (a
table-priced call overshoots only when the vendor counts more input tokens than the estimate's ~1 per
3 characters, since output is capped at max_tokens).
A vendor-reported overshoot is also remembered per (site, provider, model) as the ratio of the actual cost to the
estimate (`learn`, a day in the shared cache) and later worst cases of that model are scaled by it
(`scaled`), so calls admitted together after one overshoot reserve what the vendor really charges.

A refusal is `BudgetBusy` (retryable, `Retry-After`) when the settled spend leaves room for the call
and only other calls' in-flight reservations fill the cap; otherwise `BudgetExceeded`.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING

from integrations.ai.governance.busy import busy, busy_error, limit_of
from integrations.ai.governance.money import MILLION, micro
from integrations.ai.governance.money import usd as usd  # the one money format (re-exported)
from integrations.ai.ports import store
from integrations.ai.providers.errors import BudgetExceeded

if TYPE_CHECKING:
    from integrations.ai.ports import Price

logger = logging.getLogger("integrations.ai")
COUNTER_TTL = 40 * 24 * 3600  # outlives the month it counts
OVERSHOOT_TTL = 24 * 3600  # how long an observed cost/estimate ratio scales a model's worst cases


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


def month_start() -> datetime.datetime:
    """The start of this month in TIME_ZONE (the budget windows' and daily roll-ups' calendar)."""
    from integrations.ai.governance.budget_windows import calendar

    return calendar()[2]


def month_to_date_spend(site_id: int) -> Decimal:
    """What the site's ledger rows of this month cost (one query)."""
    return store().spend_since(site_id, month_start())


def estimate_cost(
    price: Price | tuple[Decimal, Decimal] | None,
    messages: list[dict[str, str]],
    system_prompt: str | None,
    max_tokens: int,
) -> Decimal:
    """Worst case for one call: ~1 token per 3 characters of input, and every allowed output token.

    An unpriced model (None) is estimated at `AI_UNPRICED_PRICE`, never zero (`pricing.estimate`)."""
    from integrations.ai.pricing import estimate

    return estimate(price, sum(len(m["content"]) for m in messages) + len(system_prompt or ""), max_tokens)


def _overshoot_key(site_id: int, provider: str, model: str) -> str:
    return f"ai:budget:overshoot:{site_id}:{provider}:{model}"


def overshoot_key(site_id: int, provider: str, model: str) -> str:
    """The cache key of the cost/estimate ratio (per mille) last observed for this model on this site."""
    return _overshoot_key(site_id, provider, model)


def scaled(site_id: int | None, provider: str, model: str, estimate: Decimal, per_mille: int | None = -1) -> Decimal:
    """`estimate` times the cost/estimate ratio last observed for this model on this site (1 when none).

    `per_mille`: that ratio when the caller already read it (None: none stored); -1 reads it here."""
    if site_id is None:
        return estimate
    if per_mille == -1:
        from integrations.ai.runtime.shared_cache import cache

        per_mille = cache.get(_overshoot_key(site_id, provider, model))
    return estimate * per_mille / 1000 if per_mille else estimate


def learn(
    site_id: int | None, provider: str, model: str, estimate: Decimal, actual: Decimal, *, scaled: bool = True
) -> None:
    """Remember how far a call's actual cost passed its unscaled worst case (a vendor-reported cost above
    the price tables'), or forget it once a call stays within the estimate (`scaled`: whether a ratio was
    applied to this call, so there is one to forget; no cache operation for the usual call)."""
    if site_id is None or estimate <= 0:
        return
    from integrations.ai.runtime.shared_cache import cache

    key = _overshoot_key(site_id, provider, model)
    if actual > estimate:
        per_mille = int((actual * 1000 / estimate).to_integral_value(rounding=ROUND_CEILING))
        cache.set(key, per_mille, OVERSHOOT_TTL)
    elif scaled:
        cache.delete(key)


@dataclass
class Reservation:
    site_id: int
    amount: Decimal
    keys: tuple[str, str]
    reserved: int  # micro-dollars
    cap: Decimal | None = None

    def raise_to(self, estimate: Decimal) -> None:
        """Hold at least `estimate` (a failover candidate's worst case) before that candidate is tried, or
        raise BudgetBusy/BudgetExceeded and keep holding what was held."""
        amount = micro(estimate)
        extra = amount - self.reserved
        if extra <= 0:
            return
        _hold(self.site_id, self.keys, self.cap or Decimal(0), extra, amount, self.reserved, estimate)
        self.reserved = amount
        self.amount = estimate

    def settle(self, actual: Decimal) -> tuple[int, int] | None:
        """Turn the reservation into the real spend (zero if the call failed): both counters moved in one
        cache operation (one round trip with Redis).

        An actual cost above the reservation (overshoot) moves `used` by all of it, so the next
        reservation sees it. Returns the month's spend counter (micro-dollars) before and after, when it
        moved: the monthly alerts are read from it (`budget_windows`), so the month is counted once.
        """
        from integrations.ai.runtime.shared_cache import cache, incr_many

        spent = micro(actual)
        used_key, spent_key = self.keys
        deltas = {}
        if spent != self.reserved:
            deltas[used_key] = spent - self.reserved
        if spent:
            deltas[spent_key] = spent
        if not deltas:
            return None
        values = incr_many(deltas)
        if any(value is None for value in values.values()):
            # evicted meanwhile: the next call reseeds them from the database (not logged once per call of a
            # Redis outage: panel.cache logs that)
            if not getattr(cache, "degraded", False):
                logger.warning("budget counters of site %s vanished before a settlement", self.site_id)
            return None
        if spent:
            after = values[spent_key]
            assert after is not None
            return after - spent, after
        return None


def _period_spent(site_id: int) -> Decimal:
    """The spend of the site's `BudgetPeriod` of this month, created (seeded from the ledger) if missing."""
    start = month_start()
    return store().month_spend(site_id, start.date(), start)


def _seed(site_id: int, keys: tuple[str, str]) -> None:
    """Cold counters: start them at the month's recorded spend (`add` keeps whichever seed came first)."""
    from integrations.ai.ledger import journal as ledger_journal
    from integrations.ai.ledger import writer as ledger_writer
    from integrations.ai.runtime.shared_cache import cache

    ledger_journal.replay_once(ledger_writer.write_rows)  # a killed process's rows count before the seed
    spent = micro(_period_spent(site_id))
    used_key, spent_key = keys
    cache.add(spent_key, spent, COUNTER_TTL)
    cache.add(used_key, spent, COUNTER_TTL)


def forget(site_id: int) -> None:
    """Drop a site's counters, so the next call reseeds them: after editing its `BudgetPeriod` by hand."""
    from integrations.ai.runtime.shared_cache import cache

    cache.delete_many(list(counter_keys(site_id)))


def reserve(site_id: int | None, cap: Decimal | None, estimate: Decimal) -> Reservation | None:
    """Reserve `estimate` against the site's cap, or raise BudgetExceeded (BudgetBusy when only calls in flight
    fill it). None when there is no cap."""
    if site_id is None or cap is None:
        return None
    amount = micro(estimate)
    keys = counter_keys(site_id)
    _hold(site_id, keys, cap, amount, amount, 0, estimate)
    return Reservation(site_id=site_id, amount=estimate, keys=keys, reserved=amount, cap=cap)


def _hold(site_id: int, keys: tuple[str, str], cap: Decimal, extra: int, amount: int, own: int, estimate: Decimal):
    """Add `extra` micro-dollars to the month's `used` counter, or give it back and raise the refusal.

    `amount` is the whole reservation this call would then hold, `own` what it already held."""
    from integrations.ai.runtime.shared_cache import cache

    used_key, spent_key = keys
    limit = limit_of(cap)
    try:
        used = cache.incr(used_key, extra)
    except ValueError:  # cold
        _seed(site_id, keys)
        used = cache.incr(used_key, extra)
    if used <= limit and used - extra < limit:
        return
    cache.decr(used_key, extra)
    spent_micro = int(cache.get(spent_key) or 0)
    spent = Decimal(spent_micro) / MILLION
    in_flight = max(0, used - extra - spent_micro)
    if spent >= cap:
        from integrations.ai.governance.budget_windows import Window

        raise BudgetExceeded(
            f"This site's monthly AI budget of {usd(cap)} is used up ({usd(spent)} spent this month). "
            "Raise the cap in the site's AI provider settings or wait for next month.",
            retry_after=Window("month", cap, month_start(), 0).seconds_left(),
        )
    if busy(spent_micro, in_flight - own, amount, limit):
        raise busy_error("site's monthly AI budget", estimate, cap, spent, Decimal(in_flight - own) / MILLION)
    raise BudgetExceeded(
        f"This request could cost up to {usd(estimate)}, which would pass the site's monthly AI budget of "
        f"{usd(cap)} ({usd(spent)} spent, {usd(Decimal(in_flight) / MILLION)} in flight). Lower max_tokens "
        "or raise the cap."
    )
