"""Monthly spend caps per site, enforced before any upstream call.

A capped request reserves its worst-case cost (prompt estimate x prompt price + max_tokens x
completion price) with one conditional UPDATE on the site's `BudgetPeriod` row, so two requests
from two processes can never both slip past the cap; afterwards it settles to the real cost.
Sites without a cap skip all of this and keep a query-free hot path.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from decimal import Decimal

from .providers.errors import BudgetExceeded

# django.db and django.utils.timezone are imported inside the functions: only capped sites need it, and importing it
# here would triple the import time of `integrations.ai`.

logger = logging.getLogger("integrations.ai")
MILLION = Decimal(1_000_000)


def usd(amount: Decimal) -> str:
    """$12.50 for money, $0.00042 for the fractions of a cent tokens cost."""
    return f"${amount:,.2f}" if abs(amount) >= Decimal("0.01") or amount == 0 else f"${amount.normalize():f}"


def month_start() -> datetime.datetime:
    from django.utils import timezone

    now = timezone.now()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_to_date_spend(site_id: int) -> Decimal:
    from django.db.models import Sum

    from integrations.models import AIUsage

    total = AIUsage.objects.filter(site_id=site_id, created_at__gte=month_start()).aggregate(total=Sum("cost"))
    return total["total"] or Decimal(0)


def estimate_cost(
    price: tuple[Decimal, Decimal] | None, messages: list[dict[str, str]], system_prompt: str | None, max_tokens: int
) -> Decimal:
    """Worst case for one call: ~1 token per 3 characters of input, and every allowed output token."""
    if price is None:
        return Decimal(0)
    chars = sum(len(m["content"]) for m in messages) + len(system_prompt or "")
    prompt_tokens = chars // 3 + 16
    return (price[0] * prompt_tokens + price[1] * max_tokens) / MILLION


@dataclass
class Reservation:
    site_id: int
    period_id: int
    amount: Decimal

    def settle(self, actual: Decimal) -> None:
        """Turn the reservation into the real spend (zero if the call failed)."""
        from django.db.models import F

        from integrations.models import BudgetPeriod

        BudgetPeriod.objects.filter(pk=self.period_id).update(
            spent=F("spent") + actual, reserved=F("reserved") - self.amount
        )


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


def reserve(site_id: int | None, cap: Decimal | None, estimate: Decimal) -> Reservation | None:
    """Reserve `estimate` against the site's cap, or raise BudgetExceeded. None when there is no cap."""
    if site_id is None or cap is None:
        return None
    from django.db.models import F

    from integrations.models import BudgetPeriod

    period = _period(site_id)
    updated = BudgetPeriod.objects.filter(
        pk=period.pk, spent__lt=cap, spent__lte=cap - F("reserved") - estimate
    ).update(reserved=F("reserved") + estimate)
    if updated:
        return Reservation(site_id=site_id, period_id=period.pk, amount=estimate)
    period.refresh_from_db()
    if period.spent >= cap:
        raise BudgetExceeded(
            f"This site's monthly AI budget of {usd(cap)} is used up ({usd(period.spent)} spent this month). "
            "Raise the cap in the site's AI provider settings or wait for next month."
        )
    raise BudgetExceeded(
        f"This request could cost up to {usd(estimate)}, which would pass the site's monthly AI budget of "
        f"{usd(cap)} ({usd(period.spent)} spent, {usd(period.reserved)} in flight). Lower max_tokens, "
        "raise the cap, or retry when running requests finish."
    )
