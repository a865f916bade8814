"""Budget alerts in the admin: the alerts that were sent (per site, window, threshold and time), read-only.

`integrations.ai.governance.budget_windows.send_alert` writes one `BudgetAlert` row per window period
and threshold crossed and e-mails the site's members who have an e-mail address. This module lists
those rows (a site admin sees only their sites' alerts; nobody adds, edits or deletes them) and
names who would receive the next alert (`alert_recipients`), so the budget screen can warn when
nobody would.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.http import HttpRequest

from integrations.ai.governance.money import usd
from integrations.models import AIProviderSettings, BudgetAlert
from tenancy.access import SiteScopedAdminMixin, site_label

WINDOW_LABELS = {"day": "Daily budget", "week": "Weekly budget", "month": "Monthly budget"}


def alert_recipients(site_id: int) -> list[str]:
    """The e-mail addresses a budget alert of the site goes to: its active members with an address
    (the same people `budget_windows.send_alert` e-mails)."""
    return list(
        get_user_model()
        .objects.filter(site_memberships__site_id=site_id, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
        .distinct()
    )


def has_caps(record: AIProviderSettings) -> bool:
    """Whether any budget window of the site is capped, so that alerts can fire at all."""
    return any(
        (
            record.monthly_budget is not None,
            record.daily_budget is not None,
            record.weekly_budget is not None,
            bool(record.service_budgets),
        )
    )


def nobody_warned(record: AIProviderSettings) -> str | None:
    """The budget screen's warning when the site's budget alerts would reach no one, else None."""
    if not record.pk or not has_caps(record) or alert_recipients(record.site_id):
        return None
    return (
        f"Budget alerts of {site_label(record.site)} reach nobody: no member of the site has an e-mail "
        "address. Add one to a site admin's account (Users), or set an alert webhook URL."
    )


@admin.register(BudgetAlert)
class BudgetAlertAdmin(SiteScopedAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "site", "window_name", "threshold_percent", "spent_of_cap", "period_start")
    list_filter = ("site", "window", "threshold")
    list_select_related = ("site",)
    date_hierarchy = "created_at"
    fields = ("site", "window_name", "period_start", "threshold_percent", "spent_of_cap", "created_at")
    readonly_fields = fields

    @admin.display(description="Budget", ordering="window")
    def window_name(self, obj: BudgetAlert) -> str:
        if obj.window.startswith("service:"):
            return f"Budget of the service {obj.window.removeprefix('service:')}"
        return WINDOW_LABELS.get(obj.window, obj.window)

    @admin.display(description="Threshold", ordering="threshold")
    def threshold_percent(self, obj: BudgetAlert) -> str:
        return f"{obj.threshold}%"

    @admin.display(description="Spent of cap")
    def spent_of_cap(self, obj: BudgetAlert) -> str:
        return f"{usd(obj.spent)} of {usd(obj.cap)}"

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Who may view the usage ledger may view the alerts it raised (within their sites)."""
        user = request.user
        return (
            user.has_perm("integrations.view_budgetalert")
            or user.has_perm("integrations.view_aiusage")
            or user.has_perm("integrations.view_aiprovidersettings")
        )

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
