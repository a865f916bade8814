"""Daily, weekly and per-service budget windows, and the threshold alerts of every window.

Each window (today, this week, this month, one service this month) has two integer micro-dollar
counters in the Django cache, like `budget.py`'s monthly cap: `used` (spent + in flight) checked
with one atomic `incr` before the call, and `spent` moved after it. Cold counters are seeded from
the ledger (one query). The calendar month's cap itself stays enforced by `budget.py`; its window
here only drives the alerts.

Alerts: when a settlement moves a window's `spent` counter across a threshold (50/80/100 % by
default), the site's admins (users with a `SiteMembership` for it) are e-mailed and the optional
webhook gets a signed JSON POST. A unique `BudgetAlert` row per (site, window, period, threshold)
makes that happen once, across processes and restarts. The caller's thread only touches the
database when a threshold is actually crossed.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn

from integrations.ai.governance.busy import busy, busy_error, limit_of
from integrations.ai.governance.money import MILLION, micro, usd
from integrations.ai.ports import store
from integrations.ai.providers.errors import BudgetExceeded

logger = logging.getLogger("integrations.ai")
LABELS = {"day": "daily", "week": "weekly", "month": "monthly"}


@dataclass(frozen=True)
class Window:
    name: str  # day | week | month | service:<name>
    cap: Decimal
    start: datetime.datetime
    ttl: int
    service: str | None = None
    enforce: bool = True
    api_key: int | None = None  # a virtual key's own monthly budget (callers.KeyScope): its spend only
    key_label: str = ""
    user: int | None = None  # an editor's monthly cap on the site (callers.EditorLimits): their spend only

    @property
    def label(self) -> str:
        if self.api_key is not None:
            return f"monthly budget of the API key {self.key_label}"
        if self.user is not None:
            return f"monthly cap of the editor {self.key_label}"
        return f"monthly budget of the service {self.service}" if self.service else f"{LABELS[self.name]} budget"

    def seconds_left(self, now: float | None = None) -> float:
        """Seconds until this window's next period starts (a refusal's Retry-After)."""
        if self.name in ("day", "week"):
            end = self.start + datetime.timedelta(days=1 if self.name == "day" else 7)
        else:
            end = (self.start + datetime.timedelta(days=32)).replace(day=1)
        return max(1.0, end.timestamp() - (time.time() if now is None else now))

    def keys(self, site_id: int) -> tuple[str, str]:
        base = f"ai:window:{site_id}:{self.name}:{self.start:%Y%m%d}"
        return f"{base}:used", f"{base}:spent"


_calendar: tuple[Any, float, datetime.datetime, datetime.datetime, datetime.datetime] | None = None
_memo: dict[tuple[int, Decimal | None, str, float], tuple[Any, list[Window]]] = {}


def calendar(now: datetime.datetime | None = None) -> tuple[datetime.datetime, datetime.datetime, datetime.datetime]:
    """The starts of today, this week and this month in TIME_ZONE (never a request's activated zone:
    the ledger's daily roll-ups use the same days). Recomputed once a day, not per call."""
    from django.utils import timezone

    global _calendar
    zone = timezone.get_default_timezone()
    cached = _calendar
    if now is None and cached is not None and cached[0] is zone and time.time() < cached[1]:
        return cached[2], cached[3], cached[4]
    local = timezone.localtime(now, zone)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    week = day - datetime.timedelta(days=day.weekday())
    month = day.replace(day=1)
    if now is None:
        tomorrow = day + datetime.timedelta(days=1)  # wall-clock arithmetic: the next local midnight
        _calendar = (zone, tomorrow.timestamp(), day, week, month)
    return day, week, month


def windows_for(
    policy: Any, monthly_budget: Decimal | None, service: str, now: datetime.datetime | None = None
) -> list[Window]:
    """The windows that apply to a call of `service` (memoised per policy and day: the hot path asks per call)."""
    day, week, month = calendar(now)
    key = (id(policy), monthly_budget, service, day.timestamp())
    hit = _memo.get(key)
    if hit is not None and hit[0] is policy:
        return hit[1]
    windows = _windows(policy, monthly_budget, service, day, week, month)
    if len(_memo) > 512:
        _memo.clear()
    _memo[key] = (policy, windows)
    return windows


def _windows(
    policy: Any,
    monthly_budget: Decimal | None,
    service: str,
    day: datetime.datetime,
    week: datetime.datetime,
    month: datetime.datetime,
) -> list[Window]:
    windows = []
    if policy.daily_budget is not None:
        windows.append(Window("day", policy.daily_budget, day, 2 * 86400))
    if policy.weekly_budget is not None:
        windows.append(Window("week", policy.weekly_budget, week, 8 * 86400))
    if monthly_budget is not None:  # enforced by budget.py; here for its alerts
        windows.append(Window("month", monthly_budget, month, 32 * 86400, enforce=False))
    for name, cap in policy.service_budgets:
        if name == service:
            windows.append(Window(f"service:{name}", cap, month, 32 * 86400, service=name))
    return windows


def key_window(key: Any, now: datetime.datetime | None = None) -> Window | None:
    """A virtual key's monthly budget as one more window (its counters and spend are the key's own)."""
    if key is None or key.monthly_budget is None:
        return None
    return Window(
        f"key:{key.id}", key.monthly_budget, calendar(now)[2], 32 * 86400, api_key=key.id, key_label=key.label
    )


def editor_window(editor: Any, limits: Any, now: datetime.datetime | None = None) -> Window | None:
    """An editor's monthly cap on the site as one more window (its spend is the user's on this site)."""
    if editor is None or limits is None or limits.monthly_budget is None:
        return None
    return Window(
        f"user:{editor.user_id}",
        limits.monthly_budget,
        calendar(now)[2],
        32 * 86400,
        user=editor.user_id,
        key_label=f"{editor.label} ({limits.source})",
    )


def spent_since(site_id: int, window: Window) -> Decimal:
    return store().spend_since(site_id, window.start, window.service, api_key=window.api_key, user=window.user)


def _incr(site_id: int, window: Window, which: int, amount: int) -> int:
    from integrations.ai.runtime.shared_cache import cache

    key = window.keys(site_id)[which]
    try:
        return cache.incr(key, amount)
    except ValueError:  # cold: seed both counters from the ledger (`add` keeps whichever seed came first)
        from integrations.ai.ledger import journal as ledger_journal
        from integrations.ai.ledger import writer as ledger_writer

        ledger_journal.replay_once(ledger_writer.write_rows)  # ... and a killed process's journal
        seed = micro(spent_since(site_id, window))
        for k in window.keys(site_id):
            cache.add(k, seed, window.ttl)
        return cache.incr(key, amount)


@dataclass
class WindowReservation:
    site_id: int
    policy: Any
    held: list[tuple[Window, int]] = field(default_factory=list)

    def raise_to(self, estimate: Decimal) -> None:
        """Hold at least `estimate` in every enforced window (a failover candidate's worst case), or raise
        the first window's refusal; windows already raised stay raised until the settlement."""
        amount = micro(estimate)
        for index, (window, reserved) in enumerate(self.held):
            if window.enforce and amount > reserved:
                _hold(self.site_id, window, amount - reserved, amount, reserved, estimate)
                self.held[index] = (window, amount)

    def moves(self, actual: Decimal) -> dict[str, int]:
        """The counter moves that settle the reservations to `actual`: each enforced window's `used` by the
        difference from what it held, its `spent` by `actual`."""
        return self._moves(micro(actual))

    def _moves(self, spent: int) -> dict[str, int]:
        deltas: dict[str, int] = {}
        for window, reserved in self.held:
            if window.enforce:
                used_key, spent_key = window.keys(self.site_id)
                if spent != reserved:
                    deltas[used_key] = spent - reserved
                if spent:
                    deltas[spent_key] = spent
        return deltas

    def settle(
        self, actual: Decimal, month: tuple[int, int] | None = None, applied: dict[str, int | None] | None = None
    ) -> None:
        """Turn the reservations into the real spend, and send the alerts a crossing calls for.

        Every window's two counters move in one cache operation (one round trip with Redis, however many
        windows: each used to cost two), or already moved with the monthly cap's settlement: `applied` holds
        their new values then (`budget.Reservation.settle`'s `also`). `month` is the monthly cap's spend
        counter before and after this settlement (`budget.py`): the month window has no counters of its own,
        its alerts read that one.
        """
        from integrations.ai.runtime.shared_cache import incr_many

        spent = micro(actual)
        if applied:
            values = applied
        else:
            deltas = self._moves(spent)
            values = incr_many(deltas) if deltas else {}
        for window, reserved in self.held:
            if not window.enforce:  # the calendar month: counted by budget.py
                if month is not None:
                    crossed(self.site_id, window, self.policy, *month)
                continue
            used_key, spent_key = window.keys(self.site_id)
            if spent != reserved and values.get(used_key) is None:
                logger.warning("budget window counters of site %s vanished before a settlement", self.site_id)
                continue
            if not spent:
                continue
            after = values.get(spent_key)
            if after is None:  # the spend counter alone went cold: seeded from the ledger, then moved
                try:
                    after = _incr(self.site_id, window, 1, spent)
                except ValueError:
                    logger.warning("budget window counters of site %s vanished before a settlement", self.site_id)
                    continue
            crossed(self.site_id, window, self.policy, after - spent, after)


def _hold(site_id: int, window: Window, extra: int, amount: int, own: int, estimate: Decimal) -> None:
    """Add `extra` micro-dollars to the window's `used` counter, or give it back and raise its refusal
    (BudgetBusy when only other calls in flight fill it). `amount`: what the call would then hold; `own`:
    what it held before."""
    from integrations.ai.runtime.shared_cache import cache

    used = _incr(site_id, window, 0, extra)
    if _fits(window, used, extra):
        return
    cache.decr(window.keys(site_id)[0], extra)
    _refuse(site_id, window, used, extra, amount, own, estimate)


def _fits(window: Window, used: int, extra: int) -> bool:
    limit = limit_of(window.cap)
    return used <= limit and used - extra < limit


def _refuse(site_id: int, window: Window, used: int, extra: int, amount: int, own: int, estimate: Decimal) -> NoReturn:
    """Raise the refusal of a window whose `used` counter reached `used` with this call's `extra` (already given
    back): BudgetBusy when only calls in flight fill it, else BudgetExceeded naming the window."""
    from integrations.ai.runtime.shared_cache import cache

    spent_micro = int(cache.get(window.keys(site_id)[1]) or 0)
    spent = Decimal(spent_micro) / MILLION
    in_flight = max(0, used - extra - spent_micro - own)
    if busy(spent_micro, in_flight, amount, limit_of(window.cap)):
        raise busy_error(f"site's {window.label}", estimate, window.cap, spent, Decimal(in_flight) / MILLION)
    where = (
        "the key's settings (AI API keys)"
        if window.api_key is not None
        else "the site's AI editor quotas"
        if window.user is not None
        else "the site's AI provider settings"
    )
    raise BudgetExceeded(
        f"This request could cost up to {usd(estimate)}, which would pass the site's {window.label} of "
        f"{usd(window.cap)} ({usd(spent)} spent since {window.start:%Y-%m-%d}). Raise that cap in {where} "
        "or wait for the next period.",
        retry_after=window.seconds_left(),
    )


def holds(site_id: int | None, windows: list[Window], estimate: Decimal) -> dict[str, int]:
    """The counter moves that reserve `estimate` in every enforced window (`reserve`'s `applied`)."""
    if site_id is None:
        return {}
    return {window.keys(site_id)[0]: micro(estimate) for window in windows if window.enforce}


def reserve(
    site_id: int | None,
    windows: list[Window],
    policy: Any,
    estimate: Decimal,
    applied: dict[str, int | None] | None = None,
) -> WindowReservation | None:
    """Reserve `estimate` in every window, or give all back and raise BudgetExceeded naming the first window it
    does not fit (BudgetBusy when only calls in flight fill it). Every window's `used` counter moves in one cache
    operation (one round trip with Redis, however many windows), or already moved with the monthly cap's
    reservation: `applied` holds their new values then (`holds`, `budget.reserve`'s `also`). A cold window is
    seeded from the ledger."""
    if site_id is None or not windows:
        return None
    from integrations.ai.runtime.shared_cache import incr_many

    amount = micro(estimate)
    reservation = WindowReservation(site_id, policy)
    enforced = [window for window in windows if window.enforce]
    keys = [window.keys(site_id)[0] for window in enforced]
    values = applied if applied else incr_many(dict.fromkeys(keys, amount)) if enforced else {}
    used = [values.get(key) for key in keys]
    for index, window in enumerate(enforced):
        if used[index] is None:  # cold: seeded from the ledger (`add` keeps whichever seed came first), then held
            used[index] = _incr(site_id, window, 0, amount)
    refused = next((i for i, window in enumerate(enforced) if not _fits(window, used[i] or 0, amount)), None)
    if refused is not None:
        incr_many(dict.fromkeys(keys, -amount))
        _refuse(site_id, enforced[refused], used[refused] or 0, amount, amount, 0, estimate)
    reservation.held = [(window, amount if window.enforce else 0) for window in windows]
    return reservation


def crossed(site_id: int, window: Window, policy: Any, before_micro: int, after_micro: int) -> None:
    """Send the alerts of every threshold this settlement crossed (each once per period). Never raises."""
    cap_micro = micro(window.cap)
    for threshold in policy.alert_thresholds:
        level = cap_micro * threshold // 100
        if before_micro < level <= after_micro:
            try:
                send_alert(site_id, window, threshold, Decimal(after_micro) / MILLION)
            except Exception:  # a served answer never fails on its alert
                logger.exception("could not send the %s%% budget alert of site %s", threshold, site_id)


def send_alert(site_id: int, window: Window, threshold: int, spent: Decimal) -> bool:
    """E-mail the site's admins and call the webhook, unless this alert was already sent. True if sent now."""
    from django.core.mail import send_mail

    target = store().claim_alert(site_id, window.name, window.start.date(), threshold, window.cap, spent)
    if target is None:
        return False
    domain = target.domain
    subject = f"[{domain}] AI spend at {threshold}% of the {window.label}"
    body = (
        f"The site {domain} has spent {usd(spent)} of its {window.label} of {usd(window.cap)} "
        f"({threshold}% threshold) in the period starting {window.start:%Y-%m-%d}.\n"
        "Review the usage dashboard or raise the cap in the site's AI provider settings."
    )
    if target.recipients:
        send_mail(subject, body, None, list(target.recipients))
    if target.webhook_url:
        post_webhook(
            target.webhook_url,
            target.webhook_secret,
            {
                "site": domain,
                "site_id": site_id,
                "window": window.name,
                "period_start": str(window.start.date()),
                "threshold": threshold,
                "cap": str(window.cap),
                "spent": str(spent),
            },
        )
    return True


def signature(secret: str, body: bytes) -> str:
    import hashlib
    import hmac

    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_webhook(url: str, secret: str, payload: dict) -> int:
    """POST the alert through the outbound policy (no private addresses unless allowlisted); the status code."""
    import httpcore2
    import httpx2

    from integrations.ai.providers.outbound import OutboundPolicy, guarded_transport
    from integrations.ai.runtime.conf import outbound_allowlist

    policy = OutboundPolicy(outbound_allowlist())
    policy.check_url(url, field="alert webhook URL")
    body = json.dumps(payload, sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "Panel-AI-budget-alert"}
    if secret:
        headers["X-Panel-Signature"] = signature(secret, body)
    with httpx2.Client(transport=guarded_transport(policy, httpx2, httpcore2), timeout=5.0) as client:
        return client.post(url, content=body, headers=headers).status_code
