"""What a guardrail did to one call, as the ledger records it (`AIUsage.guardrails`, one entry each)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Action:
    """One guardrail acting: which (`pii_masking`), how (`masked`, `flagged`, `refused`, ...), and a detail
    that never quotes the text it acted on (counts, pattern and category names only)."""

    guardrail: str
    outcome: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"guardrail": self.guardrail, "outcome": self.outcome, "detail": self.detail}
