"""Settings that can never apply, found when a site's AI settings are saved.

The record's own validation refuses what is malformed; this finds what is well-formed but dead: a
fallback to a provider that has no key (neither the site's nor the deployment's) or that the site's
own policy blocks (allowed providers / models). The gateway would skip such a step on every call;
the admin says so on save (a warning per step), instead of leaving a failover that never happens.
"""

from __future__ import annotations

from typing import Any

from integrations.ai.gateway.factory import ProviderFactory
from integrations.ai.providers import registry
from integrations.ai.providers.errors import AIProviderError
from integrations.ai.sites.site_config import get_snapshot


def _label(name: str, instances: dict[str, str]) -> str:
    return name if name in instances else registry.label(name)


def never_apply(site_id: int) -> list[str]:
    """One sentence per fallback step of the site's saved settings that can never be used, in chain order."""
    snapshot = get_snapshot(site_id)
    usable = snapshot.usable()
    warnings = []
    for position, (name, model) in enumerate(snapshot.fallback_chain, start=1):
        label = _label(name, snapshot.instances)
        step = f"Fallback {position} ({label}{', ' + model if model else ''})"
        if name not in usable:
            warnings.append(
                f"{step} can never apply: {label} has no API key, neither the site's nor the deployment's. "
                "Add a key for it or remove it from the failover chain."
            )
            continue
        try:
            provider: Any = ProviderFactory.create_provider(name, site_id)
        except AIProviderError as exc:
            warnings.append(f"{step} can never apply: {exc.message}")
            continue
        refusal = snapshot.policy.refusal(provider, model or None)
        if refusal is not None:
            warnings.append(
                f"{step} can never apply: the site's policy blocks it ({refusal.message}). "
                "Allow it in the policy or remove it from the failover chain."
            )
    return warnings
