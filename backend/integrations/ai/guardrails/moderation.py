"""Output moderation: the answer goes to the serving provider's moderation endpoint before it is returned.

Only a provider whose vendor has one is asked (`providers.moderation`: OpenAI); an answer served by
another is not moderated, and the ledger says so (`unavailable`), rather than asking a second vendor
(which the site's provider policy may not allow) or pretending. A flagged answer is withheld with
`OutputFlagged`; a moderation call that fails withholds it too (the site asked for moderated output).
"""

from __future__ import annotations

from typing import Any

from integrations.ai.guardrails.actions import Action
from integrations.ai.guardrails.errors import OutputFlagged
from integrations.ai.providers import moderation
from integrations.ai.providers.errors import AIProviderError, ProviderUnavailable

NAME = "output_moderation"


def check(provider: Any, text: str) -> tuple[Action, AIProviderError | None]:
    """What moderating `text` on `provider` did, and the error that withholds the answer (None: serve it)."""
    if moderation.moderation_model(provider) is None:
        return Action(NAME, "unavailable", f"{provider.name} has no moderation endpoint"), None
    if not text.strip():
        return Action(NAME, "passed", "empty answer"), None
    try:
        verdict = moderation.moderate(provider, text)
    except AIProviderError as exc:
        unavailable = ProviderUnavailable(
            f"The answer was withheld: the moderation check failed ({exc.code}); try again.",
            provider=provider.name,
        )
        return Action(NAME, "failed", exc.code), unavailable
    if not verdict.flagged:
        return Action(NAME, "passed", verdict.model), None
    categories = ", ".join(verdict.categories) or "unspecified"
    error = OutputFlagged(
        f"The answer was withheld: {provider.name}'s moderation flagged it ({categories}).",
        guardrail=NAME,
        detail=categories,
        provider=provider.name,
        request_id=verdict.request_id or None,
    )
    return Action(NAME, "refused", categories), error
