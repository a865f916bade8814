"""The typed refusals of the guardrails: never a provider failure (no failover, no cooldown)."""

from __future__ import annotations

from typing import Any

from integrations.ai.providers.errors import ContentRefused


class GuardrailRefused(ContentRefused):
    """A site's guardrail refused the call; `guardrail` names which one, so an admin knows what to change."""

    code = "guardrail_refused"

    def __init__(self, message: str, *, guardrail: str, detail: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.guardrail = guardrail
        self.detail = detail  # what it found (pattern or category names), never the text itself


class PromptInjectionRefused(GuardrailRefused):
    """Content pulled into the prompt reads like an attempt to override the instructions."""

    code = "prompt_injection"


class OutputFlagged(GuardrailRefused):
    """The provider's moderation endpoint flagged the generated answer; it is withheld."""

    code = "output_flagged"
