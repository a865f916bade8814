"""A site's guardrail settings as its snapshot carries them (frozen, no Django: `from_record` reads
the settings row's fields by name, so the gateway never imports the model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from integrations.ai.guardrails.banned_terms import BannedTerm, RuleError, parse

INJECTION_MODES = ("off", "flag", "refuse")


@dataclass(frozen=True)
class GuardrailSettings:
    mask_pii: bool = False
    injection: str = "off"  # off | flag (recorded) | refuse (PromptInjectionRefused)
    moderate_output: bool = False
    banned_terms: tuple[BannedTerm, ...] = ()

    @classmethod
    def from_record(cls, record: Any) -> GuardrailSettings:
        """The settings of an `AIProviderSettings` row (None: every guardrail off)."""
        if record is None:
            return cls()
        try:
            terms = parse(record.guard_banned_terms or "")
        except RuleError:  # the admin form refuses it; a row written otherwise checks nothing rather than fail
            terms = ()
        mode = record.guard_prompt_injection if record.guard_prompt_injection in INJECTION_MODES else "off"
        return cls(
            mask_pii=bool(record.guard_mask_pii),
            injection=mode,
            moderate_output=bool(record.guard_moderate_output),
            banned_terms=terms,
        )

    @property
    def before_call(self) -> bool:
        return self.mask_pii or self.injection != "off"
