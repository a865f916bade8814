"""A site's model and data policy: which providers and models it may call, and what OpenRouter must promise.

Checked per candidate inside the failover loop, before any upstream request: a refused
candidate is skipped (never counted as a provider failure or cooldown), and when every candidate
is refused the call fails with a `PolicyViolation` naming the rule. The OpenRouter data rules
(`data_collection: deny`, `zdr: true`) are forced into the `provider` routing object of every
OpenRouter call of the site, whatever the caller or the site's routing JSON says.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Any

from integrations.ai.providers.errors import ModelNotFound, PolicyViolation


@dataclass(frozen=True)
class SitePolicy:
    """The governance settings of one site, frozen into its settings snapshot."""

    allowed_providers: tuple[str, ...] = ()
    allowed_models: tuple[str, ...] = ()
    deny_data_collection: bool = False
    zero_retention: bool = False
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    daily_budget: Decimal | None = None
    weekly_budget: Decimal | None = None
    service_budgets: tuple[tuple[str, Decimal], ...] = ()
    alert_thresholds: tuple[int, ...] = (50, 80, 100)

    @classmethod
    def from_record(cls, record: Any) -> SitePolicy:
        if record is None:
            return cls()
        return cls(
            allowed_providers=tuple(record.allowed_providers or ()),
            allowed_models=tuple(m.strip() for m in record.allowed_models or () if m.strip()),
            deny_data_collection=record.openrouter_deny_data_collection,
            zero_retention=record.openrouter_zero_retention,
            requests_per_minute=record.requests_per_minute or None,
            tokens_per_minute=record.tokens_per_minute or None,
            daily_budget=record.daily_budget,
            weekly_budget=record.weekly_budget,
            service_budgets=tuple((k, Decimal(str(v))) for k, v in (record.service_budgets or {}).items()),
            alert_thresholds=tuple(sorted(record.alert_thresholds or ())) or (50, 80, 100),
        )

    def model_allowed(self, *names: str | None) -> bool:
        """True when any of the names (logical name asked for, provider id) matches an allowed pattern."""
        return model_allowed(self.allowed_models, *names)

    def refusal(self, provider: Any, model: str | None) -> PolicyViolation | None:
        """Why this provider may not serve `model` for the site, or None when it may."""
        if self.allowed_providers and provider.name not in self.allowed_providers:
            return PolicyViolation(
                f"The site's policy does not allow the provider {provider.name} "
                f"(rule allowed_providers: {', '.join(self.allowed_providers)}).",
                rule="allowed_providers",
                provider=provider.name,
            )
        return model_refusal(
            self.allowed_models,
            provider,
            model,
            who="The site's policy",
            rule="allowed_models",
            listed="rule allowed_models",
        )

    def openrouter_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The options of an OpenRouter call with the site's data rules forced in and disallowed
        `models` fallbacks removed (OpenRouter's own fallback must not reach a model the policy refuses)."""
        options = dict(options)
        if self.deny_data_collection or self.zero_retention:
            routing = dict(options.get("provider") or {})
            if self.deny_data_collection:
                routing["data_collection"] = "deny"
            if self.zero_retention:
                routing["zdr"] = True
            options["provider"] = routing
        if self.allowed_models and options.get("models"):
            kept = [m for m in options["models"] if self.model_allowed(m)]
            if kept:
                options["models"] = kept
            else:
                options.pop("models")
        return options


def model_allowed(patterns: tuple[str, ...], *names: str | None) -> bool:
    """True when there is no pattern, or any of the names (logical name, provider id) matches one
    (shell-style, case-insensitive): the one matching rule of a site's and an API key's allowed models."""
    if not patterns:
        return True
    given = [n.lower() for n in names if n]
    return any(fnmatchcase(n, pattern.lower()) for n in given for pattern in patterns)


def model_refusal(
    patterns: tuple[str, ...], provider: Any, model: str | None, *, who: str, rule: str, listed: str
) -> PolicyViolation | None:
    """Why `patterns` refuse `model` on `provider` (matched as asked and as the provider's id), or None;
    the message names `who` refuses and lists the patterns as `listed`."""
    if not patterns:
        return None
    try:
        resolved = provider.resolve_model(model)
    except ModelNotFound:
        resolved = None
    if model_allowed(patterns, model, resolved):
        return None
    shown = model or resolved or "the default model"
    via = f" (served as {resolved})" if resolved and resolved != shown else ""
    return PolicyViolation(
        f"{who} does not allow the model {shown}{via} on {provider.name} ({listed}: {', '.join(patterns)}).",
        rule=rule,
        provider=provider.name,
    )
