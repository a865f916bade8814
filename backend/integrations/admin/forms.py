"""Admin forms: the site settings, its write-only credentials (an inline), the live test form."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django import forms

from integrations.admin import try_screen as admin_try
from integrations.admin.settings_fields import (
    FallbackChainField,
    LinesField,
    PercentagesField,
    ProviderChecksField,
    RoutingField,
    ServiceBudgetsField,
)
from integrations.ai.governance import money
from integrations.ai.providers import registry
from integrations.fields import mask_secret
from integrations.models import AIProviderSettings, ProviderCredential, UsageDaily


class _Labels:
    """Provider labels from the registry ("OpenRouter"); an endpoint's name as it is."""

    def __getitem__(self, name: str) -> str:
        return registry.label(name)

    def get(self, name: str, default: str | None = None) -> str:
        return registry.label(name)


PROVIDER_LABELS = _Labels()
SECRET_FORM_FIELDS = ("new_alert_webhook_secret",)
CREDENTIALS_PREFIX = "credentials"  # the inline's formset prefix (the related_name)
_CREDENTIAL_KEY_FIELD = re.compile(rf"^{CREDENTIALS_PREFIX}-(\d+|__prefix__)-new_api_key$")


def secret_post_names(post: Iterable[str]) -> list[str]:
    """POST names holding a secret on the settings page: the webhook secret and every credential's
    `credentials-N-new_api_key` (for `sensitive_post_parameters`, which takes exact names)."""
    return [*SECRET_FORM_FIELDS, *(name for name in post if _CREDENTIAL_KEY_FIELD.match(name))]


class AIProviderSettingsForm(forms.ModelForm):
    """The site-wide settings; keys, base URLs and default models are the credentials inline."""

    class Meta:
        model = AIProviderSettings
        # Listed, not excluded: a key field added later must never appear in the form by default.
        fields = (
            "site",
            "provider_type",
            "enabled",
            "is_demo_upstream",
            "openrouter_http_referer",
            "openrouter_app_name",
            "openrouter_fallback_models",
            "openrouter_routing",
            "fallback_chain",
            "monthly_budget",
            "allowed_providers",
            "allowed_models",
            "openrouter_deny_data_collection",
            "openrouter_zero_retention",
            "requests_per_minute",
            "tokens_per_minute",
            "daily_budget",
            "weekly_budget",
            "service_budgets",
            "alert_thresholds",
            "alert_webhook_url",
            "guard_mask_pii",
            "guard_prompt_injection",
            "guard_moderate_output",
            "guard_banned_terms",
        )
        widgets = {"guard_banned_terms": forms.Textarea(attrs={"rows": 4, "placeholder": 'cheap => say "affordable"'})}
        # Vendor names as the vendors write them ("OpenRouter", not the derived "Openrouter").
        labels = {
            "openrouter_http_referer": "OpenRouter HTTP-Referer",
            "openrouter_app_name": "OpenRouter app name",
            "openrouter_fallback_models": "OpenRouter fallback models",
            "openrouter_routing": "OpenRouter routing",
            "openrouter_deny_data_collection": "OpenRouter: deny data collection",
            "openrouter_zero_retention": "OpenRouter: zero data retention only",
            "is_demo_upstream": "Demo upstream (emulator)",
        }

    # The JSON columns, edited as rows, checkboxes and plain text (settings_fields.py); the record's
    # clean() still checks what they produce.
    fallback_chain = FallbackChainField(
        label="Failover chain",
        required=False,
        help_text="Tried in order, top first, when the primary provider fails. An empty model uses the "
        "provider's default. To remove a row without JavaScript, set its provider to “—” and clear the model.",
    )
    openrouter_fallback_models = LinesField(
        label="OpenRouter fallback models",
        required=False,
        slash_required=True,
        example="anthropic/claude-3.5-haiku\nopenai/gpt-4o-mini",
        help_text="OpenRouter's own fallback list: one vendor/model id per line, tried in order.",
    )
    openrouter_routing = RoutingField(label="OpenRouter routing", required=False)
    allowed_providers = ProviderChecksField(
        label="Allowed providers",
        required=False,
        help_text="Providers and endpoints this site may call; none ticked allows all.",
    )
    allowed_models = LinesField(
        label="Allowed models",
        required=False,
        example="gpt-4o-mini\nclaude-3-5-haiku*\n*/llama-*",
        help_text="One logical name or pattern per line (* matches anything), matched against the name asked "
        "for and the provider's id; empty allows all.",
    )
    service_budgets = ServiceBudgetsField(
        label="Service budgets",
        required=False,
        help_text="Monthly caps in USD per calling service (e.g. pages.meta, pages.blocks, prompts.template).",
    )
    alert_thresholds = PercentagesField(
        label="Alert thresholds (%)",
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "50, 80, 100", "class": "vTextField"}),
        help_text="Percentages of each cap at which the site's admins are e-mailed, once per period, separated "
        "by commas; empty means 50, 80, 100.",
    )

    guard_prompt_injection = forms.ChoiceField(
        label=AIProviderSettings._meta.get_field("guard_prompt_injection").verbose_name.capitalize(),
        choices=AIProviderSettings.INJECTION_CHOICES,
        required=False,  # not posted (an older form, a script): off
        initial="off",
        help_text=AIProviderSettings._meta.get_field("guard_prompt_injection").help_text,
    )

    def clean_guard_prompt_injection(self) -> str:
        return self.cleaned_data.get("guard_prompt_injection") or "off"

    new_alert_webhook_secret = forms.CharField(
        label="New webhook signing secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Signs each alert (HMAC-SHA256 of the body). Write-only; leave empty to keep the current one.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Choices from this site's providers and endpoints, and its mapped model names.
        from integrations.ai.gateway.factory import ProviderFactory

        record = self.instance
        names = record.chain_names()
        stored = [p for p in (record.allowed_providers or []) if isinstance(p, str) and p not in names]
        providers = [(name, registry.label(name)) for name in [*names, *stored]]
        self.fields["fallback_chain"].set_options(
            providers, sorted(ProviderFactory.mapper_for_site(record.site_id).table)
        )
        self.fields["allowed_providers"].choices = providers
        services = (
            set(UsageDaily.objects.filter(site_id=record.site_id).values_list("service", flat=True).distinct())
            if record.site_id
            else set()
        )
        services |= set(record.service_budgets) if isinstance(record.service_budgets, dict) else set()
        self.fields["service_budgets"].set_options(sorted(services))
        for name in ("monthly_budget", "daily_budget", "weekly_budget"):  # 5.00, not 5.000000
            if self.initial.get(name) is not None:
                self.initial[name] = money.editable(self.initial[name])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        # The failover chain and the policy may name endpoints added on this same page: the record's
        # clean() (run next) checks names against the inline's rows as submitted, not as stored.
        pending = self._submitted_endpoint_names()
        if pending is not None:
            self.instance._pending_endpoint_names = pending
        return data

    def _submitted_endpoint_names(self) -> list[str] | None:
        total = self.data.get(f"{CREDENTIALS_PREFIX}-TOTAL_FORMS") if self.is_bound else None
        if total is None or not str(total).isdigit():
            return None
        names = []
        for index in range(min(int(total), 1000)):
            prefix = f"{CREDENTIALS_PREFIX}-{index}-"
            spec = registry.find(str(self.data.get(prefix + "provider") or ""))
            name = str(self.data.get(prefix + "name") or "").strip()
            if spec is not None and spec.named_instances and name and not self.data.get(prefix + "DELETE"):
                names.append(name)
        return names

    def save(self, commit: bool = True) -> AIProviderSettings:
        record = super().save(commit=False)
        if self.cleaned_data.get("new_alert_webhook_secret"):
            record.alert_webhook_secret = self.cleaned_data["new_alert_webhook_secret"]
        if commit:
            record.save()
            self.save_m2m()
        return record


class ProviderCredentialForm(forms.ModelForm):
    """One provider's or endpoint's key, base URL and default model. The key is write-only: the
    stored value is not in the form; its last four characters are shown in the help text."""

    new_api_key = forms.CharField(
        label="New API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    clear_api_key = forms.BooleanField(label="Remove the key", required=False)

    class Meta:
        model = ProviderCredential
        # Listed, not excluded: the stored key (`api_key`) must never be a form field.
        fields = ("provider", "name", "base_url", "default_model", "enabled")
        labels = {"base_url": "Base URL"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        masked = mask_secret(self.instance.api_key) if self.instance.pk else ""
        status = f"A key is set, ending {masked}." if masked else "No key is set."
        self.fields["new_api_key"].help_text = f"{status} Leave empty to keep the current key."

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        new = data.get("new_api_key") or ""
        if new and data.get("clear_api_key"):
            self.add_error("clear_api_key", "Either enter a new key or remove the key, not both.")
        if new and (any(c.isspace() for c in new) or len(new) < 8):
            self.add_error("new_api_key", "That does not look like an API key (spaces or too short).")
        spec = registry.find(str(data.get("provider") or ""))
        if spec is not None and not spec.named_instances and not (data.get("name") or "").strip():
            data["name"] = spec.name  # a direct provider's row is named after it: one per site
        return data

    def save(self, commit: bool = True) -> ProviderCredential:
        credential = super().save(commit=False)
        new = self.cleaned_data.get("new_api_key")
        if new:
            credential.api_key = new
        elif self.cleaned_data.get("clear_api_key"):
            credential.api_key = ""
        if commit:
            credential.save()
        return credential


class ProviderCredentialFormSet(forms.BaseInlineFormSet):
    """The credentials inline: names are unique per site, which the messages say in words."""

    def clean(self) -> None:
        seen: dict[str, int] = {}
        for index, form in enumerate(self.forms, start=1):
            data = getattr(form, "cleaned_data", None) or {}
            if not data or data.get("DELETE"):
                continue
            name = data.get("name") or ""
            if name in seen:
                raise forms.ValidationError(
                    f"Rows {seen[name]} and {index} both configure {name!r}: one row per provider or endpoint name."
                )
            seen[name] = index
        super().clean()


class ProviderTestForm(forms.Form):
    """What to send from the admin's live test screen."""

    provider = forms.ChoiceField(required=False)
    model = forms.ChoiceField(
        required=False,
        help_text="Empty uses the provider's default model. Grouped by vendor; type in the filter box to narrow.",
        widget=forms.Select(attrs={"data-model-filter": "Filter models"}),  # static/integrations/model_filter.js
    )
    prompt = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), strip=True)
    max_tokens = forms.IntegerField(min_value=1, max_value=128_000, initial=200)
    temperature = forms.FloatField(min_value=0.0, max_value=2.0, initial=0.7)
    tool = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), help_text=admin_try.TOOL_HELP
    )
    schema = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        label="JSON schema",
        help_text=admin_try.SCHEMA_HELP,
    )
    image = forms.FileField(required=False, help_text="An image sent with the prompt (PNG, JPEG, GIF or WebP).")
    thinking_budget = forms.IntegerField(
        required=False,
        min_value=1024,
        max_value=127_999,
        label="Thinking budget (tokens)",
        error_messages={"min_value": "A thinking budget is at least 1,024 tokens (the vendor's smallest)."},
        help_text="Extended thinking, on models that think (Claude 3.7 Sonnet and later, on Anthropic or OpenRouter): "
        "the model may think up to this many tokens before it answers, billed as output. At least 1,024 and below "
        "max tokens; temperature must be 1. Empty: no thinking. The Stream button sends the prompt alone.",
    )
    use_chain = forms.BooleanField(
        required=False,
        label="Use the site's fallback chain",
        help_text="Off: only the chosen provider and its key are tried, and a failure or a policy refusal is "
        "shown as it is. On: the call fails over along the site's chain, as pages' calls do.",
    )

    def clean_tool(self) -> Any:
        return admin_try.json_field(self.cleaned_data.get("tool") or "", "tool")

    def clean_schema(self) -> Any:
        return admin_try.json_field(self.cleaned_data.get("schema") or "", "JSON schema")

    def clean_image(self) -> Any:
        return admin_try.image_part(self.cleaned_data.get("image"))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        budget = data.get("thinking_budget")
        if budget:
            if data.get("temperature") not in (None, 1):
                self.add_error("temperature", "Extended thinking takes temperature 1 (the vendor's rule).")
            if data.get("max_tokens") and budget >= data["max_tokens"]:
                self.add_error(
                    "thinking_budget",
                    f"Keep the thinking budget below max tokens ({data['max_tokens']:,}): the thinking counts "
                    "toward them.",
                )
        return data

    def __init__(self, *args: Any, providers: list[tuple[str, str]], models: list[Any], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = providers
        self.fields["model"].choices = [("", "— provider default —"), *models]
