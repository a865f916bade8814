"""The `integrations` app's tables. The models live in `config` for now (one module per concern is
the next step: config, ledger, jobs, tokens); every model is re-exported here so Django (app label
`integrations`, tables and migrations unchanged) and `from integrations.models import X` find them.

May import: Django, `tenancy`, and the gateway's Django-free parts (`integrations.ai.providers`,
`integrations.ai.runtime.conf`) for validation. Nothing here imports views, admin or the gateway's pipeline.
"""

from integrations.models.config import (
    PROVIDERS,
    AIProviderSettings,
    AIUsage,
    APIToken,
    BatchJob,
    BudgetAlert,
    BudgetPeriod,
    LedgerDeadLetter,
    ModelMapping,
    ModelPrice,
    ProviderCredential,
    UsageDaily,
    UsageKeyDaily,
    VirtualKey,
    VirtualKeyManager,
    provider_choices,
    provider_type_choices,
)
from integrations.models.editors import EditorQuota, UsageUserDaily

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
