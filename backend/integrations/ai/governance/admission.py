"""The gateway's admission step: rate limits and budget before the chain, policy per candidate.

`AIService` calls `admit()` once before it tries any provider and `candidate_refusal()` for each
candidate of the failover chain. Every refusal (rate limit, budget, policy) is written to the
usage ledger as a `refused` row with the error class and message, with no upstream request, so
the dashboard can count what was stopped and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from integrations.ai import pricing
from integrations.ai.governance import budget, budget_windows, ratelimit
from integrations.ai.ledger import usage
from integrations.ai.providers.errors import (
    AIProviderError,
    BudgetExceeded,
    PolicyViolation,
    RateLimited,
    UnpricedModel,
)
from integrations.ai.runtime import conf, pauses
from integrations.ai.sites import callers

REFUSALS = (BudgetExceeded, PolicyViolation, RateLimited)


@dataclass
class Admission:
    """What an admitted call holds (budget reservation, rate-limit ticket) until `settle`."""

    reservation: budget.Reservation | None = None
    ticket: ratelimit.Ticket | None = None
    windows: budget_windows.WindowReservation | None = None
    key_ticket: ratelimit.Ticket | None = None  # the calling virtual key's own rate limits (callers)
    editor_ticket: ratelimit.Ticket | None = None  # the calling editor's requests per minute on the site
    site_id: int | None = None
    # (provider, model) -> (its unscaled worst case, whether an overshoot ratio scaled it), for every candidate
    # the reservation covered (`budget.learn`)
    estimates: dict[tuple[str, str], tuple[Decimal, bool]] = field(default_factory=dict)
    # (provider, model) -> the overshoot ratio (per mille, None: none) read for this call (`budget.scaled`)
    ratios: dict[tuple[str, str], int | None] = field(default_factory=dict)

    @property
    def settles_in_db(self) -> bool:
        """Whether the monthly cap was reserved in the database (Redis was unreachable): the call's ledger rows
        are then marked `budget_settled` (set on the record before it is handed to the ledger)."""
        return self.reservation is not None and self.reservation.in_db

    @property
    def holds_spend(self) -> bool:
        """Whether this call reserved spend (a cap applies): its failover candidates must be covered."""
        return self.reservation is not None or self.windows is not None

    def cover(self, estimate: Decimal) -> None:
        """Hold at least `estimate` in every cap before a failover candidate with that worst case is tried,
        or raise BudgetBusy/BudgetExceeded (what was held stays held until `settle`)."""
        if self.windows is not None:
            self.windows.raise_to(estimate)
        if self.reservation is not None:
            self.reservation.raise_to(estimate)

    def settle(self, record: usage.CallRecord, prices: usage.Prices) -> None:
        """Settle the budget to what the call cost and the token window to what it used; remember how far a
        served candidate's cost passed its estimate (`budget.learn`)."""
        self.settle_cost(usage.total_cost(record, prices))
        for attempt in record.attempts:
            held = self.estimates.get((attempt.provider, attempt.model))
            if attempt.result is not None and held is not None:
                cost, source = usage.cost_of(prices, attempt.result, record.size)
                if source != "reported":  # only a vendor's own figure can pass the price tables' worst case
                    cost = Decimal(0)
                estimate, scaled = held
                budget.learn(self.site_id, attempt.provider, attempt.model, estimate, cost or Decimal(0), scaled=scaled)
        used = sum(a.result.total_tokens for a in record.attempts if a.result is not None)
        for ticket in (self.ticket, self.key_ticket, self.editor_ticket):
            if ticket is not None:
                ticket.settle(used)

    def settle_cost(self, cost: Decimal) -> None:
        """Settle the monthly cap and the budget windows to `cost`, in one round trip with Redis (the windows'
        counters move with the cap's); the month's alerts read the cap's counter."""
        moves = self.windows.moves(cost) if self.windows is not None else None
        applied: dict[str, int | None] = {}
        month = self.reservation.settle(cost, moves, applied) if self.reservation is not None else None
        if self.windows is not None:
            self.windows.settle(cost, month, applied)


def refuse(
    site_id: int | None, service: str, requested_model: str, provider: str, error: AIProviderError
) -> AIProviderError:
    """Record a refusal in the ledger (status `refused`, no upstream request) and return the error to raise."""
    record = usage.CallRecord(site_id, service, requested_model or "", refusal=(provider, error))
    usage.write_ledger(record, {})
    return error


def admit(
    service: Any,
    snapshot: Any,
    provider: Any,
    requested_model: str | None,
    resolved: str,
    messages: list[dict[str, str]],
    system_prompt: str | None,
    max_tokens: int,
    *,
    check_budget: bool = True,
) -> Admission:
    """Rate limits, then the budget; a refusal is recorded and raised, and nothing stays taken."""
    site_id = service.site_id
    policy = snapshot.policy
    key = callers.current()
    admission = Admission(site_id=site_id)
    try:
        estimated = ratelimit.estimate_tokens(messages, system_prompt, max_tokens)
        admission.ticket = ratelimit.admit(site_id, policy.requests_per_minute, policy.tokens_per_minute, estimated)
        if key is not None:
            admission.key_ticket = ratelimit.admit(
                key.rate_scope, key.requests_per_minute, key.tokens_per_minute, estimated, owner="API key"
            )
        editor, limits = editor_limits(snapshot)
        if editor is not None and limits is not None and limits.requests_per_minute:
            admission.editor_ticket = ratelimit.admit(
                limits.rate_scope(site_id, editor.user_id),
                limits.requests_per_minute,
                None,
                estimated,
                owner=f"editor {editor.label} ({limits.source})",
            )
        if check_budget and site_id and (has_caps(snapshot) or own_windows(snapshot)):
            _unpriced_refusal(snapshot, provider, resolved)
            price = service.price_for(snapshot, provider, resolved)
            estimate = budget.estimate_cost(price, messages, system_prompt, max_tokens)
            if snapshot.monthly_budget is not None:
                per_mille, reserved = _reserve_reading(admission, service, snapshot, provider, resolved, estimate)
            else:
                ratio_key = budget.overshoot_key(site_id, provider.name, resolved)
                # read with the primary's health, which the chain reads next: one round trip for both
                read = pauses.read_with_health(site_id, provider.name, ratio_key).get(ratio_key)
                per_mille = int(read) if isinstance(read, int) else None
                reserved = budget.scaled(site_id, provider.name, resolved, estimate, per_mille)
                _reserve_spend(admission, site_id, snapshot, service.service, reserved)
            admission.ratios[provider.name, resolved] = per_mille
            admission.estimates[provider.name, resolved] = (estimate, reserved != estimate)
    except REFUSALS as exc:
        for ticket in (admission.ticket, admission.key_ticket, admission.editor_ticket):
            if ticket is not None:
                ticket.settle(0)
        raise refuse(site_id, service.service, requested_model or resolved, provider.name, exc) from None
    return admission


def _reserve_reading(
    admission: Admission, service: Any, snapshot: Any, provider: Any, resolved: str, estimate: Decimal
) -> tuple[int | None, Decimal]:
    """Reserve a capped call's worst case in the round trip that also reads the primary's health (which the
    chain reads next) and the model's overshoot ratio: one round trip with Redis where a read, then a
    reservation made two. The reservation is made at the ratio this process last saw (`budget.known_ratio`)
    and raised at once if the ratio read is larger (another process saw a dearer call since), so it is never
    less than the read ratio's; one that fell since leaves this one call holding the larger amount until it
    settles (conservative). Returns (that ratio, what is held)."""
    site_id = admission.site_id
    assert site_id is not None
    ratio_key = budget.overshoot_key(site_id, provider.name, resolved)
    reads: dict[str, object] = {}
    known = budget.known_ratio(site_id, provider.name, resolved)
    reserved = budget.scaled(site_id, provider.name, resolved, estimate, known)
    _reserve_spend(
        admission,
        site_id,
        snapshot,
        service.service,
        reserved,
        read=[*pauses.health_keys(site_id, provider.name), ratio_key],
        reads=reads,
    )
    if admission.reservation is not None and not admission.reservation.in_db:
        pauses.note_health(site_id, provider.name, reads)
        read = reads.get(ratio_key)
    else:  # held in the database (Redis unreachable): nothing was read with it
        read = pauses.read_with_health(site_id, provider.name, ratio_key).get(ratio_key)
    per_mille = int(read) if isinstance(read, int) else None
    budget.note_ratio(site_id, provider.name, resolved, per_mille)
    fresh = budget.scaled(site_id, provider.name, resolved, estimate, per_mille)
    if fresh > reserved:
        try:
            admission.cover(fresh)
        except REFUSALS:  # the caps cannot hold what the vendor now charges: give back what was held
            admission.settle_cost(Decimal(0))
            admission.reservation = admission.windows = None
            raise
        reserved = fresh
    return per_mille, reserved


def worst_case(snapshot: Any, provider: Any, request: Any) -> Decimal:
    """The most a call of `request` (as fitted to `provider`) can cost there: its input counted as the vendor
    counts it (tools, images), every allowed output token, at the site's price resolution (`pricing`; an
    unpriced model at `AI_UNPRICED_PRICE`). Unscaled: see `reservable`."""
    from integrations.ai.providers import conversation

    model = provider.resolve_model(request.model)
    price = pricing.resolve(snapshot.prices, provider.name, model).price
    messages = conversation.for_estimate(request, provider.kind, model)
    return budget.estimate_cost(price, messages, request.system_prompt, request.max_tokens)


def reservable(site_id: int | None, snapshot: Any, provider: Any, request: Any) -> Decimal:
    """What a failover candidate must have reserved before it runs: its worst case, scaled by the overshoot
    last observed for its model on this site (`budget.scaled`)."""
    estimate = worst_case(snapshot, provider, request)
    return budget.scaled(site_id, provider.name, provider.resolve_model(request.model), estimate)


def cover_candidate(admission: Admission, snapshot: Any, provider: Any, request: Any) -> AIProviderError | None:
    """Raise the call's reservation to what `provider` may cost before it is tried; the refusal when the caps
    cannot hold it (the candidate is then skipped), None when covered or nothing is capped."""
    if not admission.holds_spend:
        return None
    try:
        model = provider.resolve_model(request.model)
        _unpriced_refusal(snapshot, provider, model)
        estimate = worst_case(snapshot, provider, request)
        per_mille = admission.ratios.get((provider.name, model), -1)  # the primary's was read at admission
        reserved = budget.scaled(admission.site_id, provider.name, model, estimate, per_mille)
        admission.estimates[provider.name, model] = (estimate, reserved != estimate)
        admission.cover(reserved)
    except (BudgetExceeded, PolicyViolation) as exc:
        return exc
    return None


def editor_limits(snapshot: Any) -> tuple[callers.Editor | None, callers.EditorLimits | None]:
    """The calling editor and their quota on the snapshot's site (None, None without an editor)."""
    editor = callers.current_editor()
    if editor is None:
        return None, None
    return editor, snapshot.editor_quotas.get(editor.user_id)


def own_windows(snapshot: Any) -> list[budget_windows.Window]:
    """The budget windows of who is calling: the virtual key's monthly budget, the editor's monthly cap."""
    windows = [budget_windows.key_window(callers.current()), budget_windows.editor_window(*editor_limits(snapshot))]
    return [w for w in windows if w is not None]


def has_caps(snapshot: Any) -> bool:
    """Whether any spend cap (monthly, daily, weekly, per service) applies to the site."""
    policy = snapshot.policy
    return (
        snapshot.monthly_budget is not None
        or policy.daily_budget is not None
        or policy.weekly_budget is not None
        or bool(policy.service_budgets)
    )


def _reserve_spend(
    admission: Admission,
    site_id: int,
    snapshot: Any,
    service_name: str,
    estimate: Decimal,
    read: list[str] | None = None,
    reads: dict[str, object] | None = None,
) -> None:
    """Reserve `estimate` against the monthly cap and in every budget window, in one round trip with Redis (the
    windows' holds move with the cap's, reading `read` into `reads` in it: `budget.reserve`); on a refusal give
    all back. A window's refusal comes first, as when the windows were reserved before the cap."""
    windows = budget_windows.windows_for(snapshot.policy, snapshot.monthly_budget, service_name)
    if own := own_windows(snapshot):
        windows = [*windows, *own]
    holds = budget_windows.holds(site_id, windows, estimate)
    applied: dict[str, int | None] = {}
    try:
        admission.reservation = budget.reserve(
            site_id, snapshot.monthly_budget, estimate, read, reads, holds or None, applied
        )
    except BudgetExceeded:
        if holds:  # a full window's own refusal is raised instead (its holds moved with the cap's, or move now,
            # in the database path); else they go back
            held = budget_windows.reserve(site_id, windows, snapshot.policy, estimate, applied)
            if held is not None:
                held.settle(Decimal(0))
        raise
    try:
        admission.windows = budget_windows.reserve(site_id, windows, snapshot.policy, estimate, applied)
    except BudgetExceeded:
        if admission.reservation is not None:
            admission.reservation.settle(Decimal(0))
            admission.reservation = None
        raise


def reserve_spend(
    site_id: int | None, service_name: str, requested_model: str, provider: str, snapshot: Any, estimate: Decimal
) -> Admission:
    """Reserve a batch's worst-case cost in every cap at once (settle it with `settle_cost`).

    A refusal is recorded in the ledger and raised, as for a single call.
    """
    admission = Admission()
    if site_id and (has_caps(snapshot) or own_windows(snapshot)):
        try:
            _reserve_spend(admission, site_id, snapshot, service_name, estimate)
        except BudgetExceeded as exc:
            raise refuse(site_id, service_name, requested_model, provider, exc) from None
    return admission


def _unpriced_refusal(snapshot: Any, provider: Any, model: str) -> None:
    """With `AI_UNPRICED=refuse`, a capped site's call of a model no source prices is refused up front."""
    if conf.unpriced_mode() != "refuse" or pricing.resolve(snapshot.prices, provider.name, model).priced:
        return
    raise UnpricedModel(
        f"Calls to {provider.name}:{model} have no price and this site has a spend cap (AI_UNPRICED=refuse): "
        "add a model price for it in the admin (Model prices), or choose a priced model.",
        rule="AI_UNPRICED",
    )


def check_priced(
    site_id: int | None, service_name: str, requested_model: str, provider: Any, snapshot: Any, model: str
) -> None:
    """A batch's up-front check of `_unpriced_refusal` (recorded in the ledger and raised, as for one call)."""
    if site_id and has_caps(snapshot):
        try:
            _unpriced_refusal(snapshot, provider, model)
        except UnpricedModel as exc:
            raise refuse(site_id, service_name, requested_model, provider.name, exc) from None


def candidate_refusal(snapshot: Any, provider: Any, model: str | None) -> PolicyViolation | None:
    """Why the site's policy (or the calling virtual key's allowed models) refuses this candidate, or None."""
    refusal = snapshot.policy.refusal(provider, model)
    if refusal is None and (key := callers.current()) is not None:
        refusal = key.refusal(provider, model)
    return refusal


def options_for(snapshot: Any, provider: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The call's options with the site's OpenRouter data policy applied (other providers unchanged)."""
    if provider.name != "openrouter":
        return options
    return snapshot.policy.openrouter_options(options)
