"""Per-site AI configuration: which provider, whose keys, and what model ids mean on each provider."""

from __future__ import annotations

from collections.abc import Iterator

from django.contrib.sites.models import Site
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models
from django.db.models import Q

from integrations.ai.providers import registry
from integrations.fields import SecretKeyField, mask_secret


def provider_choices() -> list[tuple[str, str]]:
    """The directly configured providers, from the registry (a callable: a new provider needs no migration)."""
    return [(spec.name, spec.label) for spec in registry.specs() if not spec.named_instances]


def provider_type_choices() -> list[tuple[str, str]]:
    return [("auto", "Auto-detect (prefer OpenRouter)"), *provider_choices()]


class _ProviderNames:
    """The registry's direct provider names, read when used (so one added by AI_PROVIDER_SPECS is in)."""

    def __iter__(self) -> Iterator[str]:
        return iter(registry.direct_names())

    def __contains__(self, name: object) -> bool:
        return name in registry.direct_names()

    def __len__(self) -> int:
        return len(registry.direct_names())


PROVIDERS = _ProviderNames()

_url = URLValidator(schemes=["http", "https"])


def _non_negative(value: object) -> bool:
    from decimal import Decimal, InvalidOperation

    try:
        return not isinstance(value, bool) and Decimal(str(value)) >= 0
    except InvalidOperation:
        return False


class AIProviderSettings(models.Model):
    """One site's AI provider choice and credentials. Keys are encrypted at rest and write-only in the admin."""

    site = models.OneToOneField(Site, on_delete=models.CASCADE, related_name="ai_settings")
    provider_type = models.CharField(max_length=20, choices=provider_type_choices, default="auto")
    enabled = models.BooleanField(
        default=True, help_text="When off, this site uses the deployment-wide settings from the environment."
    )

    # Keys, base URLs and default models are rows of ProviderCredential (`credentials`), one per provider
    # or named endpoint; the OpenRouter headers below are site-wide and stay here.
    openrouter_http_referer = models.CharField(max_length=300, blank=True, default="", validators=[_url])
    openrouter_app_name = models.CharField(max_length=100, blank=True, default="")

    fallback_chain = models.JSONField(
        default=list,
        blank=True,
        help_text='Tried in order when the primary provider fails: [{"provider": "anthropic", "model": '
        '"claude-3-5-haiku"}, ...]. The model may be empty for the provider\'s default.',
    )
    openrouter_fallback_models = models.JSONField(
        default=list,
        blank=True,
        help_text='OpenRouter\'s own `models` fallback list, e.g. ["anthropic/claude-3.5-haiku"].',
    )
    openrouter_routing = models.JSONField(
        default=dict,
        blank=True,
        help_text='OpenRouter provider routing: {"order": [...], "allow_fallbacks": true, "sort": "price", '
        '"data_collection": "deny"}.',
    )
    monthly_budget = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Monthly spend cap in USD; requests are refused once month-to-date spend reaches it.",
    )
    # Governance (policy.py, ratelimit.py): who may be called, what may leave, how fast.
    allowed_providers = models.JSONField(
        default=list,
        blank=True,
        help_text='Providers this site may call, e.g. ["openrouter", "anthropic"]; empty allows all.',
    )
    allowed_models = models.JSONField(
        default=list,
        blank=True,
        help_text="Models this site may call: logical names or patterns matched against the name asked for and "
        'the provider\'s id, e.g. ["gpt-4o-mini", "claude-3-5-haiku*", "*/llama-*"]; empty allows all.',
    )
    openrouter_deny_data_collection = models.BooleanField(
        default=False,
        help_text="Send data_collection: deny on every OpenRouter call: only upstreams that do not store or train "
        "on prompts serve this site.",
    )
    openrouter_zero_retention = models.BooleanField(
        default=False,
        help_text="Send zdr: true on every OpenRouter call: only zero-data-retention endpoints serve this site.",
    )
    requests_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Calls per minute for this site across all processes; empty: unlimited.",
    )
    tokens_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Tokens (prompt estimate + max_tokens) per minute for this site; empty: unlimited.",
    )
    # Budget windows and alerts (budget_windows.py); the monthly cap above stays the hard monthly limit.
    daily_budget = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Spend cap in USD per calendar day.",
    )
    weekly_budget = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Spend cap in USD per calendar week (Monday to Sunday).",
    )
    service_budgets = models.JSONField(
        default=dict,
        blank=True,
        help_text='Monthly caps in USD per calling service, e.g. {"pages.meta": "5.00", "blocks": "20"}.',
    )
    alert_thresholds = models.JSONField(
        default=list,
        blank=True,
        help_text="Percentages of each cap at which the site's admins are e-mailed once per period; "
        "empty means [50, 80, 100].",
    )
    alert_webhook_url = models.CharField(
        max_length=300,
        blank=True,
        default="",
        validators=[_url],
        help_text="Optional URL that also receives each alert as JSON, signed with HMAC-SHA256 of the body "
        "(header X-Panel-Signature: sha256=<hex>).",
    )
    alert_webhook_secret = SecretKeyField(max_length=500, blank=True, default="")
    # Guardrails (integrations/ai/guardrails/): run by the gateway before and after each call of the site.
    guard_mask_pii = models.BooleanField(
        "Mask PII in prompts",
        default=False,
        help_text="Replace e-mail addresses, phone numbers and IBANs in prompts with placeholders before they "
        "are sent (Presidio where installed, built-in patterns otherwise).",
    )
    INJECTION_CHOICES = [("off", "Off"), ("flag", "Flag in the ledger"), ("refuse", "Refuse the call")]
    guard_prompt_injection = models.CharField(
        "Prompt-injection check",
        max_length=10,
        choices=INJECTION_CHOICES,
        default="off",
        help_text="Check content pulled into prompts for attempts to override the instructions "
        "(“ignore previous instructions”, role markers).",
    )
    guard_moderate_output = models.BooleanField(
        "Moderate generated output",
        default=False,
        help_text="Send each answer to the serving provider's moderation endpoint and withhold a flagged one. "
        "Only OpenAI has one: answers from other providers are not moderated (the ledger says so).",
    )
    guard_banned_terms = models.TextField(
        "Banned terms and style guide",
        blank=True,
        default="",
        help_text='One term per line, optionally with advice: cheap => say "affordable". A trailing * matches any '
        "ending. Shown as warnings when generated text is reviewed; never blocks.",
    )
    is_demo_upstream = models.BooleanField(
        default=False,
        help_text="Base URLs point at the local upstream emulator (demo data); answers are not from a real model.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "AI provider settings"
        verbose_name_plural = "AI provider settings"
        # Checked by the JSON API for every call (api_views); granted to staff who had access before it
        # existed by migration 0016, and to the demo's groups in fixtures/demo.json.
        permissions = [("use_ai", "May use AI generation through the API")]

    def __str__(self) -> str:
        from tenancy.access import site_label

        return f"AI settings for {site_label(self.site)}"  # by name: what people call their site

    def __repr__(self) -> str:
        keys = ",".join(c.label_name for c in self._credentials() if c.api_key) or "none"
        return f"<AIProviderSettings site={self.site_id} provider={self.provider_type} keys_set={keys}>"

    def _credentials(self) -> list[ProviderCredential]:
        """The credential rows, through `.all()` so a `prefetch_related("credentials")` serves them."""
        if self.pk is None:
            return []
        return list(self.credentials.all())

    def credential(self, name: str) -> ProviderCredential | None:
        """The row for a direct provider (`openai`) or a named endpoint (`ollama`), if the site has one."""
        return next((c for c in self._credentials() if c.label_name == name), None)

    def api_key(self, provider: str) -> str:
        """The site's own key for a provider or endpoint (decrypted), "" when it has none."""
        row = self.credential(provider)
        return (row.api_key or "") if row is not None else ""

    def masked_key(self, provider: str) -> str:
        return mask_secret(self.api_key(provider))

    def endpoint_names(self) -> list[str]:
        """Names of the site's own OpenAI-compatible endpoints (credential rows of a named-instance kind)."""
        return [c.name for c in self._credentials() if c.is_endpoint]

    def clean(self) -> None:
        if self.provider_type not in {"auto", *PROVIDERS}:
            raise ValidationError({"provider_type": f"Unknown provider {self.provider_type!r}."})
        errors = {}
        if not isinstance(self.fallback_chain, list):
            errors["fallback_chain"] = "A list of {provider, model} entries."
        else:
            known = self.chain_names()
            for index, entry in enumerate(self.fallback_chain, start=1):
                if not isinstance(entry, dict) or entry.get("provider") not in known:
                    errors["fallback_chain"] = f"Entry {index} needs a provider, one of {', '.join(known)}: {entry!r}."
                    break
                if set(entry) - {"provider", "model"}:
                    errors["fallback_chain"] = f"Entry {index} may only have provider and model."
                    break
        if not isinstance(self.openrouter_fallback_models, list) or not all(
            isinstance(m, str) and "/" in m for m in self.openrouter_fallback_models
        ):
            errors["openrouter_fallback_models"] = "A list of OpenRouter vendor/model ids."
        routing = self.openrouter_routing
        allowed = {"order", "allow_fallbacks", "sort", "data_collection", "only", "ignore", "require_parameters"}
        if not isinstance(routing, dict) or set(routing) - allowed:
            errors["openrouter_routing"] = f"An object with keys among: {', '.join(sorted(allowed))}."
        elif routing.get("sort") not in (None, "price", "throughput", "latency"):
            errors["openrouter_routing"] = "sort must be price, throughput or latency."
        elif routing.get("data_collection") not in (None, "allow", "deny"):
            errors["openrouter_routing"] = "data_collection must be allow or deny."
        errors.update(self._policy_errors())
        if self.monthly_budget is not None and self.monthly_budget < 0:
            errors["monthly_budget"] = "The budget cannot be negative."
        for name in ("openrouter_http_referer", "openrouter_app_name"):
            value = getattr(self, name) or ""
            if not all(" " <= c <= "~" for c in value):
                errors[name] = (
                    "Sent as an HTTP header, so plain ASCII letters, digits and punctuation only "
                    "(no accents, emoji or line breaks), e.g. “Cafe Panel”."
                )
        if errors:
            raise ValidationError(errors)

    def chain_names(self) -> list[str]:
        """What a fallback chain entry may name: every registered direct provider, the deployment's
        named endpoints, and this site's own endpoints (rows being added in the same form count:
        the admin sets `_pending_endpoint_names`)."""
        from integrations.ai.runtime.conf import deployment_endpoints

        pending = getattr(self, "_pending_endpoint_names", None)
        own = list(pending) if pending is not None else self.endpoint_names()
        names = [*registry.direct_names(), *deployment_endpoints(), *own]
        return list(dict.fromkeys(names))

    def _policy_errors(self) -> dict[str, str]:
        errors = {}
        allowed = self.allowed_providers
        known = self.chain_names()
        if not isinstance(allowed, list) or not all(p in known for p in allowed):
            errors["allowed_providers"] = f"A list of providers among: {', '.join(known)}."
        budgets = self.service_budgets
        if not isinstance(budgets, dict) or not all(
            isinstance(k, str) and k and _non_negative(v) for k, v in budgets.items()
        ):
            errors["service_budgets"] = 'An object of service name to USD cap, e.g. {"pages.meta": "5.00"}.'
        thresholds = self.alert_thresholds
        if not isinstance(thresholds, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) and 0 < t <= 1000 for t in thresholds
        ):
            errors["alert_thresholds"] = "A list of whole percentages between 1 and 1000, e.g. [50, 80, 100]."
        for name in ("daily_budget", "weekly_budget"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                errors[name] = "The budget cannot be negative."
        if self.alert_webhook_url:
            from integrations.ai.providers.outbound import OutboundRefused
            from integrations.ai.runtime.conf import outbound_policy

            try:
                outbound_policy().check_url(self.alert_webhook_url, field="alert webhook URL")
            except OutboundRefused as exc:
                errors["alert_webhook_url"] = str(exc)
        from integrations.ai.guardrails.banned_terms import RuleError, parse

        try:
            parse(self.guard_banned_terms or "")
        except RuleError as exc:
            errors["guard_banned_terms"] = str(exc)
        models_ = self.allowed_models
        if not isinstance(models_, list) or not all(isinstance(m, str) and m.strip() for m in models_):
            errors["allowed_models"] = 'A list of model names or patterns, e.g. ["gpt-4o-mini", "claude-*"].'
        return errors


class ProviderCredential(models.Model):
    """A site's own key, base URL and default model for one provider, or for a named endpoint.

    One row per direct provider (`openai`; its name is the provider's) or per named OpenAI-compatible
    endpoint (`ollama`, with its own base URL and an optional key). Rows rather than columns, so a
    provider added to the registry needs no migration: `provider` takes its choices from the registry
    at run time. The key is encrypted at rest and never shown back (the admin writes it, shows its
    last four); a base URL chosen here is used only with this row's key, never the deployment's.
    """

    settings = models.ForeignKey(AIProviderSettings, on_delete=models.CASCADE, related_name="credentials")
    provider = models.CharField(max_length=20, choices=registry.choices)
    name = models.CharField(
        max_length=20,
        blank=True,
        default="",
        help_text="For an OpenAI-compatible endpoint, the name callers use, e.g. ollama. "
        "Leave empty for a direct provider (its name is the provider's).",
    )
    api_key = SecretKeyField(max_length=500, blank=True, default="")
    base_url = models.CharField(max_length=300, blank=True, default="", validators=[_url])
    default_model = models.CharField(max_length=200, blank=True, default="")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["settings", "provider", "name"]
        constraints = [
            models.UniqueConstraint(fields=["settings", "name"], name="unique_credential_name_per_settings"),
        ]

    def __str__(self) -> str:
        return self.label_name

    def __repr__(self) -> str:
        return (
            f"<ProviderCredential settings={self.settings_id} provider={self.provider} name={self.name!r} "
            f"key={'set' if self.api_key else 'none'} enabled={self.enabled}>"
        )

    def save(self, *args, **kwargs) -> None:
        if not self.name and not self.is_endpoint:
            self.name = self.provider  # unique per site, like an endpoint's name
        super().save(*args, **kwargs)

    @property
    def is_endpoint(self) -> bool:
        spec = registry.find(self.provider)
        return spec is not None and spec.named_instances

    @property
    def label_name(self) -> str:
        """The name callers, the failover chain and the ledger use: the endpoint's, else the provider's."""
        return self.name or self.provider

    def clean(self) -> None:
        from integrations.ai.providers.outbound import OutboundPolicy, OutboundRefused
        from integrations.ai.runtime.conf import (
            deployment_endpoints,
            endpoint_config,
            outbound_allowlist,
            settings_config,
        )

        spec = registry.find(self.provider)
        if spec is None:
            raise ValidationError(
                {"provider": f"Unknown provider {self.provider!r}; choose one of {', '.join(registry.names())}."}
            )
        errors: dict[str, str] = {}
        name = (self.name or "").strip()
        if spec.named_instances:
            if not name:
                errors["name"] = f"A {spec.label} needs a name callers use, e.g. ollama."
            elif not registry.NAME_PATTERN.fullmatch(name):
                errors["name"] = "1-20 lowercase letters, digits, _ or -, starting with a letter (e.g. ollama)."
            elif registry.find(name) is not None:
                errors["name"] = f"{name!r} is a provider's own name; choose another, e.g. {name}-local."
            elif not self.base_url:
                errors["base_url"] = f"A {spec.label} needs its base URL, e.g. http://127.0.0.1:11434/v1."
        elif name and name != self.provider:
            errors["name"] = f"Leave empty for {spec.label}: only OpenAI-compatible endpoints take a name."
        self.name = name
        if self.base_url:
            if spec.named_instances:
                deployment = endpoint_config(name).base_url if name in deployment_endpoints() else ""
            else:
                deployment = settings_config(self.provider).base_url
            if self.base_url != deployment:
                try:
                    OutboundPolicy(outbound_allowlist()).check_url(self.base_url)
                except OutboundRefused as exc:
                    errors["base_url"] = str(exc)
        if self.provider == "openrouter" and self.default_model and "/" not in self.default_model:
            errors["default_model"] = "OpenRouter model ids are vendor/model, e.g. openai/gpt-4o-mini."
        if errors:
            raise ValidationError(errors)


class ModelMapping(models.Model):
    """A logical model name's id on one provider; a row with a site overrides the global row."""

    site = models.ForeignKey(
        Site,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="ai_model_mappings",
        help_text="Empty for a mapping every site uses.",
    )
    logical_name = models.CharField(max_length=100, help_text="What callers ask for, e.g. gpt-4o.")
    provider = models.CharField(max_length=20, choices=provider_choices)
    provider_model_id = models.CharField(max_length=200, help_text="The id this provider knows it by.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["logical_name", "provider"]
        constraints = [
            models.UniqueConstraint(
                fields=["logical_name", "provider"], condition=Q(site__isnull=True), name="unique_global_mapping"
            ),
            models.UniqueConstraint(
                fields=["site", "logical_name", "provider"],
                condition=Q(site__isnull=False),
                name="unique_site_mapping",
            ),
        ]

    def __str__(self) -> str:
        scope = self.site.domain if self.site_id else "global"
        return f"{self.logical_name} → {self.provider}:{self.provider_model_id} ({scope})"

    def clean(self) -> None:
        errors = {}
        if self.provider not in PROVIDERS:
            errors["provider"] = f"Unknown provider {self.provider!r}; choose one of {', '.join(PROVIDERS)}."
        if self.provider == "openrouter" and self.provider_model_id and "/" not in self.provider_model_id:
            errors["provider_model_id"] = "OpenRouter ids are vendor/model, e.g. anthropic/claude-3.5-sonnet."
        if self.provider in {"openai", "anthropic"} and "/" in (self.provider_model_id or ""):
            errors["provider_model_id"] = f"{self.provider} ids have no vendor prefix (e.g. gpt-4o)."
        if errors:
            raise ValidationError(errors)
        duplicate = ModelMapping.objects.filter(
            site=self.site, logical_name=self.logical_name, provider=self.provider
        ).exclude(pk=self.pk)
        if self.logical_name and self.provider and duplicate.exists():
            raise ValidationError(
                f"{self.logical_name} already has a {self.provider} mapping "
                f"{'for this site' if self.site_id else 'globally'}."
            )


class ModelPrice(models.Model):
    """USD per million tokens for a provider's model, used when the provider reports no cost itself."""

    provider = models.CharField(max_length=20, choices=provider_choices)
    model_id = models.CharField(max_length=200, help_text="The provider's id, e.g. claude-3-5-sonnet-20241022.")
    prompt_per_million = models.DecimalField(max_digits=12, decimal_places=6)
    completion_per_million = models.DecimalField(max_digits=12, decimal_places=6)
    cache_read_per_million = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Prompt tokens read from the vendor's prompt cache; empty = the prompt price.",
    )
    cache_write_per_million = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Prompt tokens written to the vendor's prompt cache; empty = the prompt price.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider", "model_id"]
        constraints = [models.UniqueConstraint(fields=["provider", "model_id"], name="unique_model_price")]

    def __str__(self) -> str:
        return f"{self.provider}:{self.model_id} ${self.prompt_per_million}/${self.completion_per_million} per M"

    def clean(self) -> None:
        if self.provider not in PROVIDERS:
            raise ValidationError({"provider": f"Unknown provider {self.provider!r}."})
        if self.prompt_per_million is not None and self.prompt_per_million < 0:
            raise ValidationError({"prompt_per_million": "Prices cannot be negative."})
        if self.completion_per_million is not None and self.completion_per_million < 0:
            raise ValidationError({"completion_per_million": "Prices cannot be negative."})
        for name in ("cache_read_per_million", "cache_write_per_million"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValidationError({name: "Prices cannot be negative."})
