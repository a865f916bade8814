"""Monthly spend caps per site, checked before any upstream call.

Only sites with a cap pay for the check (one aggregate query over the ledger's site+date
index); the rest keep a query-free hot path.
"""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Sum
from django.utils import timezone

from .providers.errors import BudgetExceeded


def month_start():
    now = timezone.now()
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_to_date_spend(site_id: int) -> Decimal:
    from integrations.models import AIUsage

    total = AIUsage.objects.filter(site_id=site_id, created_at__gte=month_start()).aggregate(total=Sum("cost"))
    return total["total"] or Decimal(0)


def check_budget(site_id: int | None, cap: Decimal | None) -> None:
    """Raise BudgetExceeded when the site's month-to-date spend has reached its cap."""
    if site_id is None or cap is None:
        return
    spent = month_to_date_spend(site_id)
    if spent >= cap:
        raise BudgetExceeded(
            f"This site's monthly AI budget of ${cap:.2f} is used up (${spent:.4f} spent this month). "
            "Raise the cap in the site's AI provider settings or wait for next month."
        )
