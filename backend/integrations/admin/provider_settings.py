"""Admin for per-site AI settings and model mappings (the ledger and prices: admin_usage)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import path
from django.utils.html import format_html, format_html_join
from import_export.admin import ImportExportModelAdmin

from integrations.admin import views as admin_views
from integrations.admin.forms import (
    AIProviderSettingsForm,
    ProviderCredentialForm,
    ProviderCredentialFormSet,
    secret_post_names,
)
from integrations.admin.import_storage import SessionBoundImportMixin
from integrations.admin.resources import ModelMappingResource
from integrations.ai.governance.budget import month_to_date_spend, usd
from integrations.ai.providers import registry
from integrations.fields import mask_secret
from integrations.models import AIProviderSettings, ModelMapping, ProviderCredential
from tenancy.access import SiteScopedAdminMixin


class ProviderCredentialInline(admin.StackedInline):
    """A site's own keys, one row per provider or named endpoint: the same fields for every provider
    the registry knows, so a provider added there appears here with no code."""

    model = ProviderCredential
    form = ProviderCredentialForm
    formset = ProviderCredentialFormSet
    extra = 0
    verbose_name = "provider credential"
    verbose_name_plural = "Provider keys and endpoints"
    fields = ("provider", "name", "new_api_key", "clear_api_key", "base_url", "default_model", "enabled")

    # Keys are part of a site's settings: whoever may change the settings (their own site's, under
    # the parent admin's site scoping) may change its credentials; no separate permission to grant.
    def _parent(self):
        return self.admin_site._registry[AIProviderSettings]

    def _may_change(self, request, obj) -> bool:
        parent = self._parent()
        return parent.has_change_permission(request, obj) if obj is not None else parent.has_add_permission(request)

    def get_fields(self, request, obj=None):
        if self._may_change(request, obj):
            return self.fields
        return tuple(f for f in self.fields if f not in ("new_api_key", "clear_api_key"))  # view-only: no inputs

    def has_view_permission(self, request, obj=None):
        return self._parent().has_view_permission(request, obj)

    def has_add_permission(self, request, obj=None):
        return self._may_change(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._may_change(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._may_change(request, obj)


@admin.register(AIProviderSettings)
class AIProviderSettingsAdmin(SiteScopedAdminMixin, admin.ModelAdmin):
    form = AIProviderSettingsForm
    inlines = (ProviderCredentialInline,)
    change_form_template = "admin/integrations/aiprovidersettings/change_form.html"
    list_display = ("site", "provider_type", "enabled", "keys", "budget", "is_demo_upstream", "updated_at")
    list_filter = ("provider_type", "enabled", "is_demo_upstream")
    search_fields = ("site__domain", "site__name")
    list_select_related = ("site",)
    # The JSON columns as a person reads them, for whoever may only view the settings (see get_fieldsets).
    READABLE = {
        "fallback_chain": "failover_chain",
        "openrouter_fallback_models": "openrouter_fallbacks",
        "openrouter_routing": "routing",
        "allowed_providers": "providers_allowed",
        "allowed_models": "models_allowed",
        "service_budgets": "budgets_per_service",
        "monthly_budget": "monthly_cap",
        "daily_budget": "daily_cap",
        "weekly_budget": "weekly_cap",
        "alert_thresholds": "thresholds",
        "openrouter_deny_data_collection": "deny_data_collection",
        "openrouter_zero_retention": "zero_retention",
    }
    readonly_fields = ("month_to_date", *READABLE.values())
    # Collapsible sections (the first, the site and its provider, stays open; the keys inline follows it:
    # change_form.html); a section holding an error opens itself (Django's Fieldset.is_collapsible).
    fieldsets = (
        (None, {"fields": ("site", "provider_type", "enabled", "is_demo_upstream")}),
        (
            "OpenRouter",
            {
                "classes": ("collapse",),
                "fields": (
                    "openrouter_http_referer",
                    "openrouter_app_name",
                    "openrouter_fallback_models",
                    "openrouter_routing",
                ),
            },
        ),
        (
            "Failover and budget",
            {"classes": ("collapse",), "fields": ("fallback_chain", "monthly_budget", "month_to_date")},
        ),
        (
            "Policy and rate limits",
            {
                "classes": ("collapse",),
                "fields": (
                    "allowed_providers",
                    "allowed_models",
                    "openrouter_deny_data_collection",
                    "openrouter_zero_retention",
                    "requests_per_minute",
                    "tokens_per_minute",
                ),
            },
        ),
        (
            "Budget windows and alerts",
            {
                "classes": ("collapse",),
                "fields": (
                    "daily_budget",
                    "weekly_budget",
                    "service_budgets",
                    "alert_thresholds",
                    "alert_webhook_url",
                    "new_alert_webhook_secret",
                ),
            },
        ),
        (
            "Guardrails",
            {
                "fields": (
                    "guard_mask_pii",
                    "guard_prompt_injection",
                    "guard_moderate_output",
                    "guard_banned_terms",
                ),
                "description": "Run before and after each AI call of this site; what they do is recorded in the "
                "usage ledger. Banned terms are shown as warnings when generated text is reviewed.",
            },
        ),
    )

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets
        return [
            (title, {**options, "fields": tuple(self.READABLE.get(f, f) for f in options["fields"])})
            for title, options in fieldsets
        ]

    @admin.display(description="Failover chain")
    def failover_chain(self, obj: AIProviderSettings) -> str:
        entries = [e for e in obj.fallback_chain or [] if isinstance(e, dict)]
        if not entries:
            return "none"
        return format_html(
            "<ol>{}</ol>",
            format_html_join(
                "",
                "<li>{} — {}</li>",
                ((registry.label(str(e.get("provider"))), e.get("model") or "provider default") for e in entries),
            ),
        )

    @admin.display(description="OpenRouter fallback models")
    def openrouter_fallbacks(self, obj: AIProviderSettings) -> str:
        return ", ".join(map(str, obj.openrouter_fallback_models or [])) or "none"

    @admin.display(description="OpenRouter routing")
    def routing(self, obj: AIProviderSettings) -> str:
        routing = obj.openrouter_routing if isinstance(obj.openrouter_routing, dict) else {}
        names = {
            "order": "Provider order",
            "allow_fallbacks": "Allow fallbacks",
            "sort": "Sort",
            "data_collection": "Data collection",
            "only": "Only",
            "ignore": "Never",
            "require_parameters": "Require parameters",
        }
        rows = [
            (
                names.get(k, k),
                ", ".join(map(str, v)) if isinstance(v, list) else ("yes" if v is True else "no" if v is False else v),
            )
            for k, v in routing.items()
        ]
        if not rows:
            return "OpenRouter's defaults"
        return format_html(
            '<table class="kv-table">{}</table>', format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows)
        )

    @admin.display(description="OpenRouter: deny data collection", boolean=True)
    def deny_data_collection(self, obj: AIProviderSettings) -> bool:
        return obj.openrouter_deny_data_collection

    @admin.display(description="OpenRouter: zero data retention only", boolean=True)
    def zero_retention(self, obj: AIProviderSettings) -> bool:
        return obj.openrouter_zero_retention

    @admin.display(description="Allowed providers")
    def providers_allowed(self, obj: AIProviderSettings) -> str:
        return ", ".join(registry.label(str(p)) for p in obj.allowed_providers or []) or "all"

    @admin.display(description="Allowed models")
    def models_allowed(self, obj: AIProviderSettings) -> str:
        return ", ".join(map(str, obj.allowed_models or [])) or "all"

    @admin.display(description="Service budgets")
    def budgets_per_service(self, obj: AIProviderSettings) -> str:
        budgets = obj.service_budgets if isinstance(obj.service_budgets, dict) else {}
        if not budgets:
            return "none"
        return format_html(
            '<table class="kv-table">{}</table>',
            format_html_join(
                "", "<tr><th>{}</th><td>{} a month</td></tr>", ((k, usd(v) or v) for k, v in budgets.items())
            ),
        )

    @admin.display(description="Monthly budget")
    def monthly_cap(self, obj: AIProviderSettings) -> str:
        return usd(obj.monthly_budget) or "no cap"

    @admin.display(description="Daily budget")
    def daily_cap(self, obj: AIProviderSettings) -> str:
        return usd(obj.daily_budget) or "no cap"

    @admin.display(description="Weekly budget")
    def weekly_cap(self, obj: AIProviderSettings) -> str:
        return usd(obj.weekly_budget) or "no cap"

    @admin.display(description="Alert thresholds")
    def thresholds(self, obj: AIProviderSettings) -> str:
        return ", ".join(f"{t}%" for t in obj.alert_thresholds or []) or "50%, 80%, 100% (default)"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("credentials")  # the Keys column: no query per row

    @admin.display(description="Keys")
    def keys(self, obj: AIProviderSettings) -> str:
        parts = [f"{c.label_name}: {mask_secret(c.api_key)}" for c in obj.credentials.all() if c.api_key]
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

    def save_related(self, request, form, formsets, change):
        """After the record and its keys are saved: warn about fallback steps that can never apply."""
        super().save_related(request, form, formsets, change)
        from integrations.admin.settings_warnings import never_apply

        for warning in never_apply(form.instance.site_id):
            messages.warning(request, warning)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Error reports (the debug page, admin e-mails) must not show a key that was being typed in.
        # What `sensitive_post_parameters` does, with names taken from the POST: the inline's key
        # fields are numbered (credentials-0-new_api_key, credentials-1-…).
        request.sensitive_post_parameters = secret_post_names(request.POST if request.method == "POST" else ())
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/test/",
                wrap(lambda request, pk: admin_views.test_provider_view(self, request, pk)),
                name="integrations_aiprovidersettings_test",
            ),
            path(
                "<int:pk>/test/stream/",
                wrap(lambda request, pk: admin_views.stream_test_view(self, request, pk)),
                name="integrations_aiprovidersettings_test_stream",
            ),
            path(
                "<int:pk>/check-key/<str:provider>/",
                wrap(lambda request, pk, provider: admin_views.check_key_view(self, request, pk, provider)),
                name="integrations_aiprovidersettings_check_key",
            ),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # Check-key buttons only for the site's own keys: checking the deployment's is for superusers.
        context["providers_with_keys"] = admin_views.own_keys(obj) if obj is not None else []
        if obj is not None and request.method == "GET":  # "calls to X have no price: add one"
            from integrations.admin import prices as admin_prices
            from integrations.admin.budget_alerts import nobody_warned

            admin_prices.warn_unpriced(request, obj.site_id)
            if (warning := nobody_warned(obj)) is not None:
                messages.warning(request, warning)
        return super().render_change_form(request, context, add, change, form_url, obj)


@admin.register(ModelMapping)
class ModelMappingAdmin(SiteScopedAdminMixin, SessionBoundImportMixin, ImportExportModelAdmin):
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
