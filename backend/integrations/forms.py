"""Admin forms: write-only API keys, the live test form."""

from __future__ import annotations

from typing import Any

from django import forms

from .models import PROVIDER_CHOICES, PROVIDERS, AIProviderSettings

KEY_FIELDS = {provider: f"{provider}_api_key" for provider in PROVIDERS}
PROVIDER_LABELS = dict(PROVIDER_CHOICES)
SECRET_FORM_FIELDS = (*(f"new_{p}_api_key" for p in PROVIDERS), "new_alert_webhook_secret")


def _new_key_field(label: str) -> forms.CharField:
    return forms.CharField(
        label=f"New {label} API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )


class AIProviderSettingsForm(forms.ModelForm):
    """Keys can be set, replaced or cleared, never read back: the stored value is not in the form."""

    new_openrouter_api_key = _new_key_field("OpenRouter")
    clear_openrouter_api_key = forms.BooleanField(label="Remove the OpenRouter key", required=False)
    new_openai_api_key = _new_key_field("OpenAI")
    clear_openai_api_key = forms.BooleanField(label="Remove the OpenAI key", required=False)
    new_anthropic_api_key = _new_key_field("Anthropic")
    clear_anthropic_api_key = forms.BooleanField(label="Remove the Anthropic key", required=False)

    class Meta:
        model = AIProviderSettings
        # Listed, not excluded: a key field added later must never appear in the form by default.
        fields = (
            "site", "provider_type", "enabled", "is_demo_upstream",
            "openrouter_default_model", "openrouter_base_url", "openrouter_http_referer", "openrouter_app_name",
            "openrouter_fallback_models", "openrouter_routing",
            "openai_default_model", "openai_base_url", "anthropic_default_model", "anthropic_base_url",
            "fallback_chain", "monthly_budget",
            "allowed_providers", "allowed_models", "openrouter_deny_data_collection", "openrouter_zero_retention",
            "requests_per_minute", "tokens_per_minute",
            "daily_budget", "weekly_budget", "service_budgets", "alert_thresholds", "alert_webhook_url",
        )
        # Vendor names as the vendors write them ("OpenRouter", not the derived "Openrouter").
        labels = {
            "openrouter_default_model": "OpenRouter default model", "openrouter_base_url": "OpenRouter base URL",
            "openrouter_http_referer": "OpenRouter HTTP-Referer", "openrouter_app_name": "OpenRouter app name",
            "openrouter_fallback_models": "OpenRouter fallback models", "openrouter_routing": "OpenRouter routing",
            "openai_default_model": "OpenAI default model", "openai_base_url": "OpenAI base URL",
            "anthropic_default_model": "Anthropic default model", "anthropic_base_url": "Anthropic base URL",
        }

    new_alert_webhook_secret = forms.CharField(
        label="New webhook signing secret", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Signs each alert (HMAC-SHA256 of the body). Write-only; leave empty to keep the current one.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for provider in PROVIDERS:
            masked = self.instance.masked_key(provider) if self.instance.pk else ""
            status = f"A key is set, ending {masked}." if masked else "No key is set."
            if f"new_{provider}_api_key" in self.fields:
                self.fields[f"new_{provider}_api_key"].help_text = f"{status} Leave empty to keep the current key."

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for provider in PROVIDERS:
            new = data.get(f"new_{provider}_api_key") or ""
            if new and data.get(f"clear_{provider}_api_key"):
                self.add_error(f"clear_{provider}_api_key", "Either enter a new key or remove the key, not both.")
            if new and (any(c.isspace() for c in new) or len(new) < 8):
                self.add_error(f"new_{provider}_api_key", "That does not look like an API key (spaces or too short).")
        return data

    def save(self, commit: bool = True) -> AIProviderSettings:
        record = super().save(commit=False)
        for provider, field in KEY_FIELDS.items():
            new = self.cleaned_data.get(f"new_{provider}_api_key")
            if new:
                setattr(record, field, new)
            elif self.cleaned_data.get(f"clear_{provider}_api_key"):
                setattr(record, field, "")
        if self.cleaned_data.get("new_alert_webhook_secret"):
            record.alert_webhook_secret = self.cleaned_data["new_alert_webhook_secret"]
        if commit:
            record.save()
            self.save_m2m()
        return record


class ProviderTestForm(forms.Form):
    """What to send from the admin's live test screen."""

    provider = forms.ChoiceField(required=False)
    model = forms.ChoiceField(required=False, help_text="Empty uses the provider's default model.")
    prompt = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), strip=True)
    max_tokens = forms.IntegerField(min_value=1, max_value=128_000, initial=200)
    temperature = forms.FloatField(min_value=0.0, max_value=2.0, initial=0.7)

    def __init__(self, *args: Any, providers: list[tuple[str, str]], models: list[tuple[str, str]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = providers
        self.fields["model"].choices = [("", "— provider default —"), *models]
