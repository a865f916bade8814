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

Redis unreachable (`cache.degraded`, `panel.cache.ResilientRedisCache`): a call reserves in the site's
`BudgetPeriod` row instead (`Store.reserve_budget`: one conditional UPDATE of `reserved`, never past the
cap, atomic across processes) and settles there (`reserved` released, the cost added to `spent` at once;
its ledger rows are marked `budget_settled` so the writer does not add it again). Each such change bumps the
row's `version`; this process keeps it as an event and carries it into the Redis counters when Redis answers
(`_catch_up`, one `APPLY_VERSIONED` script), unless the counters' seed read the row at that version or later
(their stamp holds the version): so the database's changes are counted once, whether Redis kept its data or
lost it and another process reseeded. A seed counts `reserved` as in flight.
Redis restarted empty: the first call reseeds from the database, which never saw the reservations held in
Redis then; each process re-adds its own that are still in flight when it sees the new stamp (every
reservation and settlement reads it in the same round trip), and a settlement on counters seeded after its
reservation adds its hold back. Not covered: another process's holds until that process's next reservation or
settlement, a reservation held in Redis that must grow (failover) while Redis is unreachable (refused, BudgetBusy),
and the budget windows (`budget_windows`: per process while Redis is unreachable).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import random
import threading
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import TYPE_CHECKING, Any, NoReturn

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


# (site, provider, model) -> the overshoot ratio this process last read or wrote (None: none): a reservation made
# in the round trip that reads the ratio is made at this one, and raised if the ratio read has grown
_ratios: dict[tuple[int, str, str], int | None] = {}


def known_ratio(site_id: int, provider: str, model: str) -> int | None:
    """The overshoot ratio (per mille) this process last saw for this model on this site; None: none seen."""
    return _ratios.get((site_id, provider, model))


def note_ratio(site_id: int, provider: str, model: str, per_mille: int | None) -> None:
    if len(_ratios) > 10_000:  # bounded: a process serving very many sites and models forgets, then reads again
        _ratios.clear()
    _ratios[site_id, provider, model] = per_mille


def forget_ratios() -> None:
    """Forget the ratios this process saw (the shared cache was cleared: a test's fresh start)."""
    _ratios.clear()


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
        note_ratio(site_id, provider, model, per_mille)
    elif scaled:
        cache.delete(key)
        note_ratio(site_id, provider, model, None)


STAMP = 1_000_000  # a seed's stamp: the budget period's version times this, plus a random part


def _degraded() -> bool:
    """Whether the shared cache is Redis and Redis is unreachable (`panel.cache.ResilientRedisCache`)."""
    from integrations.ai.runtime.shared_cache import cache

    return bool(getattr(cache, "degraded", False))


def _stamp_key(keys: tuple[str, str]) -> str:
    return keys[0].removesuffix(":used") + ":seed"


_lock = threading.Lock()
# counters -> changes not carried into them yet (`APPLY_VERSIONED`): (0, the budget period's version, d_used,
# d_spent) made in the database, (1, the counters' stamp, d_used, d_spent) a settlement Redis did not take
_events: dict[tuple[str, str], list[tuple[int, int, int, int]]] = {}
# counters -> this process's reservations held in them (id -> reservation), re-held when they are reseeded
_holding: dict[tuple[str, str], dict[int, Reservation]] = {}
_seen: dict[tuple[str, str], int | None] = {}  # counters -> the seed stamp this process saw last
_unsettled: list[tuple[Reservation, Decimal]] = []  # settlements the database did not take (it was down too)


@dataclass
class Reservation:
    site_id: int
    amount: Decimal
    keys: tuple[str, str]
    reserved: int  # micro-dollars
    cap: Decimal | None = None
    gen: int | None = None  # the stamp of the counters it is held in (Redis path)
    in_db: bool = False  # held in the site's `BudgetPeriod` (reserved while Redis was unreachable)
    month: datetime.date | None = None  # the budget period it is held in (database path)

    def raise_to(self, estimate: Decimal) -> None:
        """Hold at least `estimate` (a failover candidate's worst case) before that candidate is tried, or
        raise BudgetBusy/BudgetExceeded and keep holding what was held."""
        amount = micro(estimate)
        extra = amount - self.reserved
        if extra <= 0:
            return
        cap = self.cap or Decimal(0)
        if self.in_db:
            _hold_db(self.site_id, self.keys, cap, extra, amount, self.reserved, estimate, self.month)
        elif _degraded() or _hold(self.site_id, self.keys, cap, extra, amount, self.reserved, estimate) is OUTAGE:
            # held in the shared counters, which cannot be reached now: nothing can be added to it safely
            raise busy_error(
                "site's monthly AI budget (the shared cache is unreachable)", estimate, cap, Decimal(0), Decimal(0)
            )
        self.reserved = amount
        self.amount = estimate

    def settle(
        self, actual: Decimal, also: dict[str, int] | None = None, also_values: dict[str, int | None] | None = None
    ) -> tuple[int, int] | None:
        """Turn the reservation into the real spend (zero if the call failed): both counters moved in one
        cache operation (one round trip with Redis); a reservation held in the database settles there.

        An actual cost above the reservation (overshoot) moves `used` by all of it, so the next
        reservation sees it. Returns the month's spend counter (micro-dollars) before and after, when it
        moved: the monthly alerts are read from it (`budget_windows`), so the month is counted once.

        `also`: other counters (the budget windows') moved in the same round trip, their new values put in
        `also_values` (None: a counter that does not exist); left empty when they were not moved (held in
        the database), for the caller to move them itself.
        """
        if self.in_db:
            return _settle_db(self, actual)
        from integrations.ai.runtime.shared_cache import cache, incr_many

        spent = micro(actual)
        used_key, spent_key = self.keys
        deltas = {}
        if spent != self.reserved:
            deltas[used_key] = spent - self.reserved
        if spent:
            deltas[spent_key] = spent
        if not deltas and not also:
            _release(self, None)
            return None
        stamp_key = _stamp_key(self.keys)
        values = incr_many({**deltas, stamp_key: 0, **(also or {})})
        if also and also_values is not None:
            also_values.update({key: values[key] for key in also})
        if not deltas:
            _release(self, None)
            return None
        if any(values[key] is None for key in deltas):
            _release(self, None)
            if _degraded():  # Redis unreachable: carried into the counters it was held in when it answers
                _listen()
                gen = -1 if self.gen is None else self.gen
                with _lock:
                    _events.setdefault(self.keys, []).append((1, gen, spent - self.reserved, spent))
            else:  # evicted or reseeded from the database (then this call's row counts once written)
                logger.warning("budget counters of site %s vanished before a settlement", self.site_id)
            return None
        if _release(self, values[stamp_key]):  # reseeded since it was reserved: the seed did not hold it
            with contextlib.suppress(ValueError):
                cache.incr(used_key, self.reserved)
        if spent:
            after = values[spent_key]
            assert after is not None
            return after - spent, after
        return None


class _Outage:
    pass


OUTAGE: Any = _Outage()  # `_hold`: the shared cache went unreachable while reserving


def _register(reservation: Reservation) -> None:
    with _lock:
        _holding.setdefault(reservation.keys, {})[id(reservation)] = reservation


def _release(reservation: Reservation, stamp: int | None) -> bool:
    """Stop tracking a settled reservation; True when the counters it was settled on were seeded after it
    was reserved (and no `_rehold` added it to them since): its hold must be added back."""
    with _lock:
        _holding.get(reservation.keys, {}).pop(id(reservation), None)
        if stamp is None or stamp == reservation.gen:
            return False
        reservation.gen = stamp
        return True


def _rehold(keys: tuple[str, str], stamp: int | None) -> int:
    """The counters were reseeded (from the database: a Redis restart) since this process last used them:
    add this process's reservations still held in the old ones, which the seed could not know. Returns what
    was added (micro-dollars)."""
    from integrations.ai.runtime.shared_cache import cache

    with _lock:
        moved = [r for r in _holding.get(keys, {}).values() if r.gen != stamp]
        for reservation in moved:
            reservation.gen = stamp
        total = sum(r.reserved for r in moved)
    if total:
        try:
            cache.incr(keys[0], total)
        except ValueError:  # gone again: the next seed starts over
            return 0
    return total


def _seed(site_id: int, keys: tuple[str, str]) -> None:
    """Cold counters: start them at the month's recorded spend (`add` keeps whichever seed came first).

    `used` also counts what calls reserved in the database (while Redis was unreachable) and still hold,
    and a stamp records the budget period's version read, so the changes made in the database later are
    carried in once (`_catch_up`), never twice."""
    from integrations.ai.ledger import journal as ledger_journal
    from integrations.ai.ledger import writer as ledger_writer
    from integrations.ai.runtime.shared_cache import cache

    ledger_journal.replay_once(ledger_writer.write_rows)  # a killed process's rows count before the seed
    start = month_start()
    row = store().budget_row(site_id, start.date(), start)
    spent = micro(row.spent)
    used_key, spent_key = keys
    cache.add(spent_key, spent, COUNTER_TTL)
    cache.add(used_key, spent + micro(row.reserved), COUNTER_TTL)
    cache.add(_stamp_key(keys), row.version * STAMP + random.randrange(1, STAMP), COUNTER_TTL)


def forget(site_id: int) -> None:
    """Drop a site's counters, so the next call reseeds them: after editing its `BudgetPeriod` by hand."""
    from integrations.ai.runtime.shared_cache import cache

    keys = counter_keys(site_id)
    cache.delete_many([*keys, _stamp_key(keys)])


def reserve(
    site_id: int | None,
    cap: Decimal | None,
    estimate: Decimal,
    read: list[str] | None = None,
    reads: dict[str, object] | None = None,
    also: dict[str, int] | None = None,
    also_values: dict[str, int | None] | None = None,
) -> Reservation | None:
    """Reserve `estimate` against the site's cap, or raise BudgetExceeded (BudgetBusy when only calls in flight
    fill it). None when there is no cap.

    `read`: cache keys to read in the same round trip, their values (missing ones left out) put in `reads`; read
    only when the reservation is held in the shared counters (not `in_db`). `also`: other counters (the budget
    windows' holds) moved in that same round trip, their new values put in `also_values` (None: a counter that
    does not exist) once they moved, refused or not; left empty when they were not moved (no cap), for the
    caller to move them itself.

    In the shared counters; while Redis is unreachable, in the site's `BudgetPeriod` row instead (one
    conditional UPDATE), so the cap holds across processes during an outage too."""
    if site_id is None or cap is None:
        return None
    if _unsettled or _events:
        _catch_up()
    amount = micro(estimate)
    keys = counter_keys(site_id)
    if not _degraded():
        stamp = _hold(site_id, keys, cap, amount, amount, 0, estimate, read, reads, also, also_values)
        if stamp is not OUTAGE:
            reservation = Reservation(site_id=site_id, amount=estimate, keys=keys, reserved=amount, cap=cap, gen=stamp)
            _register(reservation)
            return reservation
    month = month_start().date()
    _hold_db(site_id, keys, cap, amount, amount, 0, estimate, month)
    return Reservation(site_id=site_id, amount=estimate, keys=keys, reserved=amount, cap=cap, in_db=True, month=month)


def _hold(
    site_id: int,
    keys: tuple[str, str],
    cap: Decimal,
    extra: int,
    amount: int,
    own: int,
    estimate: Decimal,
    read: list[str] | None = None,
    reads: dict[str, object] | None = None,
    also: dict[str, int] | None = None,
    also_values: dict[str, int | None] | None = None,
) -> Any:
    """Add `extra` micro-dollars to the month's `used` counter, or give it back and raise the refusal.

    `amount` is the whole reservation this call would then hold, `own` what it already held. Returns the
    counters' seed stamp, or OUTAGE when Redis became unreachable (nothing held: reserve in the database).
    `read`: keys read in the same round trip (into `reads`); `also`: other counters moved in it (`reserve`)."""
    from integrations.ai.runtime.shared_cache import cache, incr_many, incr_many_reading

    used_key, spent_key = keys
    stamp_key = _stamp_key(keys)
    limit = limit_of(cap)
    deltas = {used_key: extra, stamp_key: 0, **(also or {})}
    if read:
        values, got = incr_many_reading(deltas, read)
        if reads is not None:
            reads.update(got)
    else:
        values = incr_many(deltas)
    if also and also_values is not None:
        also_values.update({key: values[key] for key in also})
    if values[used_key] is None:  # cold
        if _degraded():
            return OUTAGE
        _seed(site_id, keys)
        values = incr_many({used_key: extra, stamp_key: 0})
        if values[used_key] is None:
            if _degraded():
                return OUTAGE
            raise ValueError(f"Key '{used_key}' not found.")
    used = values[used_key]
    assert used is not None
    stamp = values[stamp_key]
    seen = _seen.get(keys, OUTAGE)
    if stamp != seen:
        _seen[keys] = stamp
        if seen is not OUTAGE:  # reseeded since this process last held spend in them
            used += _rehold(keys, stamp)
    if used <= limit and used - extra < limit:
        return stamp
    cache.decr(used_key, extra)
    spent_micro = int(cache.get(spent_key) or 0)
    _refuse(cap, spent_micro, used - extra - spent_micro, amount, own, estimate, limit)


def _refuse(
    cap: Decimal, spent_micro: int, in_flight: int, amount: int, own: int, estimate: Decimal, limit: int
) -> NoReturn:
    """Raise the refusal of a reservation that did not fit (`in_flight`: every call's, this one's held part
    included)."""
    spent = Decimal(spent_micro) / MILLION
    in_flight = max(0, in_flight)
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


# -- the database path: while Redis is unreachable -------------------------------------------------------------


def _hold_db(
    site_id: int,
    keys: tuple[str, str],
    cap: Decimal,
    extra: int,
    amount: int,
    own: int,
    estimate: Decimal,
    month: datetime.date | None,
) -> None:
    """Add `extra` micro-dollars to the budget period's `reserved`, only if spent + reserved stays within the
    cap (one conditional UPDATE: atomic across processes), or raise the refusal."""
    assert month is not None
    start = month_start()
    limit = limit_of(cap)
    row = store().reserve_budget(site_id, month, start, Decimal(extra) / MILLION, Decimal(limit) / MILLION)
    if not row.ok:
        spent_micro = micro(row.spent)
        _refuse(cap, spent_micro, micro(row.reserved), amount, own, estimate, limit)
    _listen()
    with _lock:
        _events.setdefault(keys, []).append((0, row.version, extra, 0))


def _settle_db(reservation: Reservation, actual: Decimal) -> tuple[int, int] | None:
    """Settle a reservation held in the database there: its hold released and `actual` added to the
    period's spend in one UPDATE (its ledger rows, marked `budget_settled`, add nothing there again); then
    carried into the shared counters when Redis answers. A database that does not answer either: kept
    and retried at the next reservation."""
    try:
        after = _settle_in_db(reservation, actual)
    except Exception as exc:
        if not store().is_outage(exc):
            raise
        logger.warning("could not settle a budget reservation of site %s in the database (kept)", reservation.site_id)
        with _lock:
            _unsettled.append((reservation, actual))
        return None
    if not _degraded():
        _catch_up()
    spent = micro(actual)
    return (after - spent, after) if spent else None


def _settle_in_db(reservation: Reservation, actual: Decimal) -> int:
    assert reservation.month is not None
    row = store().settle_budget(reservation.site_id, reservation.month, Decimal(reservation.reserved) / MILLION, actual)
    spent = micro(actual)
    with _lock:
        _events.setdefault(reservation.keys, []).append((0, row.version, spent - reservation.reserved, spent))
    return micro(row.spent)


def _catch_up() -> None:
    """Retry the settlements the database did not take, then carry the changes made in the database into the
    shared counters, each once (their seed's stamp says which it holds already: `APPLY_VERSIONED`)."""
    from integrations.ai.runtime.shared_cache import cache

    with _lock:
        retry = _unsettled[:]
        _unsettled.clear()
    for index, (reservation, actual) in enumerate(retry):
        try:
            _settle_in_db(reservation, actual)
        except Exception as exc:
            if not store().is_outage(exc):
                raise
            with _lock:
                _unsettled[:0] = retry[index:]
            break
    apply = getattr(cache, "apply_versioned", None)
    if apply is None or _degraded():
        return
    with _lock:
        pending = dict(_events)
        _events.clear()
    for keys, events in pending.items():
        for start in range(0, len(events), 1000):  # a long outage's events in bounded scripts, in order
            if apply(keys, _stamp_key(keys), STAMP, events[start : start + 1000]) is None:
                with _lock:  # unreachable again: kept for the next time
                    _events.setdefault(keys, [])[:0] = events[start:]
                break


def _listen() -> None:
    """Have the shared cache call `_catch_up` as soon as Redis answers again (it keeps one of each listener)."""
    from integrations.ai.runtime.shared_cache import cache

    on_recovery = getattr(cache, "on_recovery", None)
    if on_recovery is not None:
        on_recovery(_catch_up)
