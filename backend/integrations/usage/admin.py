"""Admin for the usage ledger and the price table.

The ledger is read-only evidence: nobody edits it in the admin. A site admin sees only their
sites' rows; the changelist shows totals of whatever the filters select, and month-to-date spend
against each visible site's budget.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.db.models import Count, Sum
from django.http import HttpResponseBadRequest
from django.urls import path
from django.utils.dateformat import format as date_format
from django.utils.html import format_html
from django.utils.timezone import localtime
from import_export.admin import ExportMixin, ImportExportModelAdmin

from integrations import labels
from integrations.admin.export_safety import FormulaSafeResource
from integrations.admin.import_storage import SessionBoundImportMixin
from integrations.ai.governance.budget import month_start
from integrations.ai.governance.money import usd
from integrations.models import AIProviderSettings, AIUsage, APIToken, ModelPrice
from integrations.usage import dashboard_view as admin_dashboard
from tenancy.access import SiteScopedAdminMixin, SuperuserEditsMixin, only_site, site_ids_for, site_label


class AIUsageResource(FormulaSafeResource):
    class Meta:
        model = AIUsage
        fields = (
            "id",
            "created_at",
            "site__domain",
            "service",
            "provider",
            "requested_model",
            "served_model",
            "attempt",
            "status",
            "error_class",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "cost",
            "cost_source",
            "latency_ms",
            "cache_hit",
            "request_id",
            "api_key__name",
            "api_key__last4",
        )
        export_order = fields


MAX_ID = 2**63 - 1  # the largest key any supported database stores
DATE_PARTS = {"year": (1, 9999), "month": (1, 12), "day": (1, 31)}


def date_hierarchy_problem(query: Any, field: str) -> str | None:
    """What is wrong with the date drill-down's `<field>__year/month/day` parameters, or None.

    Django's changelist turns them into a datetime and only catches ValueError: a year of 20 digits
    raised OverflowError, a 500.
    """
    for part, (low, high) in DATE_PARTS.items():
        value = query.get(f"{field}__{part}")
        if value is not None and not (
            value.isascii() and value.isdigit() and len(value) <= 4 and low <= int(value) <= high
        ):
            return f"{field}__{part} must be a whole number from {low} to {high}."
    return None


class ContentFilter(admin.SimpleListFilter):
    """Rows for one piece of content (a page, a prompt template), from the rows this user may see."""

    title = "content"
    parameter_name = "content"

    def lookups(self, request, model_admin):
        rows = (
            model_admin.get_queryset(request)
            .filter(content_type__isnull=False)
            .values_list("content_type_id", "object_id", "content_label")
            .distinct()
            .order_by("content_label")
        )
        return [(f"{ct}:{pk}", label or f"#{pk}") for ct, pk, label in rows[:200]]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        try:
            content_type_id, object_id = (int(part) for part in value.split(":", 1))
        except ValueError:
            return queryset.none()
        if not (0 < content_type_id <= MAX_ID and 0 <= object_id <= MAX_ID):  # no database stores it: no row
            return queryset.none()
        return queryset.filter(content_type_id=content_type_id, object_id=object_id)


@admin.register(AIUsage)
class AIUsageAdmin(SiteScopedAdminMixin, ExportMixin, admin.ModelAdmin):
    resource_classes = [AIUsageResource]
    # Seven columns that fit beside the filters at 1366 px: provider and model in one, status and error
    # in one (a cache hit is the status "Cache hit"), tokens and latency in one; the export keeps every column.
    list_display = ("when", "site", "service_name", "call", "outcome", "tokens", "price")
    list_filter = (
        "site",
        "provider",
        ("served_model", admin.AllValuesFieldListFilter),
        "status",
        "cache_hit",
        ("created_at", admin.DateFieldListFilter),
        ContentFilter,
        "api_key",
    )
    search_fields = ("served_model", "requested_model", "request_id", "service", "content_label")
    date_hierarchy = "created_at"
    list_select_related = ("site",)
    change_list_template = "admin/integrations/aiusage/change_list.html"

    def get_list_display(self, request):
        # a user with one site needs no site column (the filter and totals still name it)
        shown = super().get_list_display(request)
        return [c for c in shown if c != self._site_column] if only_site(request.user) else shown

    @admin.display(description="When", ordering="created_at")
    def when(self, obj: AIUsage) -> str:
        return date_format(localtime(obj.created_at), "Y-m-d H:i")

    @admin.display(description="Cost", ordering="cost")
    def price(self, obj: AIUsage) -> str:
        return usd(obj.cost) if obj.cost is not None else "—"

    @admin.display(description="Tokens · time", ordering="total_tokens")
    def tokens(self, obj: AIUsage) -> str:
        return format_html('{}<div class="help usage-latency">{} ms</div>', obj.total_tokens, obj.latency_ms)

    @admin.display(description="Service", ordering="service")
    def service_name(self, obj: AIUsage) -> str:
        return labels.service_label(obj.service)

    @admin.display(description="Provider · model", ordering="provider")
    def call(self, obj: AIUsage) -> str:
        model = obj.served_model or obj.requested_model
        return format_html(
            '{}<div class="help usage-model">{}</div>', labels.provider_label(obj.provider), model or "—"
        )

    @admin.display(description="Outcome", ordering="status")
    def outcome(self, obj: AIUsage) -> str:
        acted = self.guardrails_acted(obj)
        guard = format_html('<div class="help usage-guardrails">Guardrails: {}</div>', acted) if acted else ""
        if not obj.error_class:
            return format_html("{}{}", obj.get_status_display(), guard)
        return format_html(
            '{}<div class="help usage-error">{}</div>{}',
            obj.get_status_display(),
            labels.error_label(obj.error_class),
            guard,
        )

    @staticmethod
    def guardrails_acted(obj: AIUsage) -> str:
        """What the site's guardrails did to the call, e.g. "pii_masking: masked; output_moderation: refused"."""
        entries = [e for e in obj.guardrails or [] if isinstance(e, dict)]
        return "; ".join(f"{e.get('guardrail')}: {e.get('outcome')}" for e in entries)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "dashboard/",
                wrap(lambda request: admin_dashboard.dashboard_view(self, request)),
                name="integrations_aiusage_dashboard",
            ),
            path(
                "dashboard/export.csv",
                wrap(lambda request: admin_dashboard.dashboard_csv_view(self, request)),
                name="integrations_aiusage_dashboard_csv",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        problem = date_hierarchy_problem(request.GET, self.date_hierarchy)
        if problem is not None:
            return HttpResponseBadRequest(problem)
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:
            totals = changelist.queryset.aggregate(
                rows=Count("id"),
                prompt=Sum("prompt_tokens"),
                completion=Sum("completion_tokens"),
                tokens=Sum("total_tokens"),
                cost=Sum("cost"),
            )
            response.context_data["usage_totals"] = totals
            response.context_data["usage_by_content"] = list(
                changelist.queryset.filter(content_type__isnull=False)
                .order_by()
                .values("content_type_id", "object_id", "content_label")
                .annotate(calls=Count("id"), tokens=Sum("total_tokens"), cost=Sum("cost"))
                .order_by("-cost", "content_label")[:50]
            )
            response.context_data["budgets"] = self._budgets(request)
        return response

    def _budgets(self, request) -> list[dict]:
        ids = site_ids_for(request.user)
        records = AIProviderSettings.objects.filter(monthly_budget__isnull=False).select_related("site")
        if ids is not None:
            records = records.filter(site_id__in=ids)
        spend = dict(
            AIUsage.objects.filter(created_at__gte=month_start(), site_id__in=[r.site_id for r in records])
            .values_list("site_id")
            .annotate(total=Sum("cost"))
        )
        return [
            {
                "site": site_label(r.site),
                "spent": spend.get(r.site_id) or Decimal(0),
                "cap": r.monthly_budget,
                "percent": min(100, int((spend.get(r.site_id) or 0) * 100 / r.monthly_budget))
                if r.monthly_budget
                else 100,
            }
            for r in records
        ]


class ModelPriceResource(FormulaSafeResource):
    class Meta:
        model = ModelPrice
        fields = (
            "provider",
            "model_id",
            "prompt_per_million",
            "completion_per_million",
            "cache_read_per_million",
            "cache_write_per_million",
        )
        import_id_fields = ("provider", "model_id")
        skip_unchanged = True
        clean_model_instances = True


@admin.register(ModelPrice)
class ModelPriceAdmin(SuperuserEditsMixin, SessionBoundImportMixin, ImportExportModelAdmin):
    """Prices are deployment-wide: superusers edit them, site admins may look."""

    resource_classes = [ModelPriceResource]
    list_display = (
        "provider",
        "model_id",
        "prompt_per_million",
        "completion_per_million",
        "cache_read_per_million",
        "cache_write_per_million",
        "updated_at",
    )
    list_filter = ("provider",)
    search_fields = ("model_id",)
    change_list_template = "admin/integrations/modelprice/change_list.html"  # links the catalogue

    def has_import_permission(self, request):
        return request.user.is_superuser

    def get_urls(self):
        from integrations.admin import prices as admin_prices

        wrap = self.admin_site.admin_view
        return [
            path(
                "catalogue/",
                wrap(lambda request: admin_prices.catalogue_view(self, request)),
                name="integrations_modelprice_catalogue",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        from integrations.ai.pricing import catalogue_version

        return super().changelist_view(request, {**(extra_context or {}), "catalogue_version": catalogue_version()})


@admin.register(APIToken)
class APITokenAdmin(admin.ModelAdmin):
    """Tokens are issued with `manage.py ai_token`; here they can be seen (prefix only) and revoked."""

    list_display = ("name", "user", "site", "scopes", "expires_at", "prefix", "created_at", "last_used_at")
    fields = ("name", "user", "site", "scopes", "expires_at", "prefix", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    owner_field = "user"  # a token is its user's: a site on it narrows where it works, not who sees it

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        return qs if request.user.is_superuser else qs.filter(**{self.owner_field: request.user})
