"""The `integrations` app's tables. One module per concern: `config` (a site's settings, credentials, mappings,
prices), `ledger` (usage rows, roll-ups, budget periods and alerts, dead letters), `jobs` (batch jobs),
`tokens` (API tokens and /v1 virtual keys); every model is re-exported here so Django (app label
`integrations`, tables and migrations unchanged) and `from integrations.models import X` find them.

May import: Django, `tenancy`, and the gateway's Django-free parts (`integrations.ai.providers`,
`integrations.ai.runtime.conf`) for validation. Nothing here imports views, admin or the gateway's pipeline.
"""

from integrations.models.config import (
    PROVIDERS,
    AIProviderSettings,
    ModelMapping,
    ModelPrice,
    ProviderCredential,
    provider_choices,
    provider_type_choices,
)
from integrations.models.editors import EditorQuota, UsageUserDaily
from integrations.models.jobs import BatchJob
from integrations.models.ledger import AIUsage, BudgetAlert, BudgetPeriod, LedgerDeadLetter, UsageDaily, UsageKeyDaily
from integrations.models.tokens import APIToken, VirtualKey, VirtualKeyManager

__all__ = [
    "PROVIDERS",
    "AIProviderSettings",
    "AIUsage",
    "APIToken",
    "BatchJob",
    "BudgetAlert",
    "BudgetPeriod",
    "EditorQuota",
    "LedgerDeadLetter",
    "ModelMapping",
    "ModelPrice",
    "ProviderCredential",
    "UsageDaily",
    "UsageKeyDaily",
    "UsageUserDaily",
    "VirtualKey",
    "VirtualKeyManager",
    "provider_choices",
    "provider_type_choices",
]
