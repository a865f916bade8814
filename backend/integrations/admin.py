"""Admin for per-site AI settings and model mappings (the ledger and prices: admin_usage)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters
from import_export.admin import ImportExportModelAdmin

from tenancy.access import SiteScopedAdminMixin

from . import admin_views
from .ai.budget import month_to_date_spend, usd
from .forms import PROVIDER_LABELS, SECRET_FORM_FIELDS, AIProviderSettingsForm
from .models import PROVIDERS, AIProviderSettings, ModelMapping
from .resources import ModelMappingResource


@admin.register(AIProviderSettings)
class AIProviderSettingsAdmin(SiteScopedAdminMixin, admin.ModelAdmin):
    form = AIProviderSettingsForm
    change_form_template = "admin/integrations/aiprovidersettings/change_form.html"
    list_display = ("site", "provider_type", "enabled", "keys", "budget", "is_demo_upstream", "updated_at")
    list_filter = ("provider_type", "enabled", "is_demo_upstream")
    search_fields = ("site__domain", "site__name")
    list_select_related = ("site",)
    readonly_fields = ("month_to_date",)
    fieldsets = (
        (None, {"fields": ("site", "provider_type", "enabled", "is_demo_upstream")}),
        ("OpenRouter", {"fields": (
            "new_openrouter_api_key", "clear_openrouter_api_key", "openrouter_default_model", "openrouter_base_url",
            "openrouter_http_referer", "openrouter_app_name", "openrouter_fallback_models", "openrouter_routing",
        )}),
        ("OpenAI", {"fields": (
            "new_openai_api_key", "clear_openai_api_key", "openai_default_model", "openai_base_url",
        )}),
        ("Anthropic", {"fields": (
            "new_anthropic_api_key", "clear_anthropic_api_key", "anthropic_default_model", "anthropic_base_url",
        )}),
        ("Failover and budget", {"fields": ("fallback_chain", "monthly_budget", "month_to_date")}),
        ("Policy and rate limits", {"fields": (
            "allowed_providers", "allowed_models", "openrouter_deny_data_collection", "openrouter_zero_retention",
            "requests_per_minute", "tokens_per_minute",
        )}),
        ("Budget windows and alerts", {"fields": (
            "daily_budget", "weekly_budget", "service_budgets", "alert_thresholds", "alert_webhook_url",
            "new_alert_webhook_secret",
        )}),
    )

    @admin.display(description="Keys")
    def keys(self, obj: AIProviderSettings) -> str:
        parts = [f"{p}: {obj.masked_key(p)}" for p in PROVIDERS if obj.api_key(p)]
        return ", ".join(parts) or "none (uses deployment settings)"

    @admin.display(description="Budget")
    def budget(self, obj: AIProviderSettings) -> str:
        if obj.monthly_budget is None:
            return "no cap"
        return f"{usd(month_to_date_spend(obj.site_id))} of {usd(obj.monthly_budget)}"

    @admin.display(description="Spent this month")
    def month_to_date(self, obj: AIProviderSettings) -> str:
        if obj is None or not obj.pk:
            return "—"
        spent = month_to_date_spend(obj.site_id)
        if obj.monthly_budget is None:
            return f"{usd(spent)} (no cap)"
        percent = int(spent * 100 / obj.monthly_budget) if obj.monthly_budget else 100
        return format_html("{} of {} ({}%)", usd(spent), usd(obj.monthly_budget), percent)

    @method_decorator(sensitive_post_parameters(*SECRET_FORM_FIELDS))
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Error reports (the debug page, admin e-mails) must not show a key that was being typed in.
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/test/", wrap(lambda request, pk: admin_views.test_provider_view(self, request, pk)),
                 name="integrations_aiprovidersettings_test"),
            path("<int:pk>/test/stream/",
                 wrap(lambda request, pk: admin_views.stream_test_view(self, request, pk)),
                 name="integrations_aiprovidersettings_test_stream"),
            path("<int:pk>/check-key/<str:provider>/",
                 wrap(lambda request, pk, provider: admin_views.check_key_view(self, request, pk, provider)),
                 name="integrations_aiprovidersettings_check_key"),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # Check-key buttons only for the site's own keys: checking the deployment's is for superusers.
        context["providers_with_keys"] = [
            (p, PROVIDER_LABELS[p]) for p in PROVIDERS if obj is not None and admin_views.has_own_key(obj, p)
        ]
        return super().render_change_form(request, context, add, change, form_url, obj)


@admin.register(ModelMapping)
class ModelMappingAdmin(SiteScopedAdminMixin, ImportExportModelAdmin):
    """Global rows are shared by every site: site admins see them, superusers edit them."""

    resource_classes = [ModelMappingResource]
    global_rows = True
    import_template_name = "admin/integrations/modelmapping/import.html"  # row errors inline, not on hover
    list_display = ("logical_name", "provider", "provider_model_id", "site", "is_active", "updated_at")
    list_filter = ("provider", "is_active", "site")
    search_fields = ("logical_name", "provider_model_id")
    list_select_related = ("site",)

    def get_import_resource_kwargs(self, request, **kwargs):
        return {**super().get_import_resource_kwargs(request, **kwargs), "user": request.user}

    def get_export_resource_kwargs(self, request, **kwargs):
        return {**super().get_export_resource_kwargs(request, **kwargs), "user": request.user}
