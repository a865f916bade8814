"""Checks shown next to generated text at review time: the site's banned terms and style guide.

Warnings only: a person reviewing a proposal sees which of the site's rules it breaks (set in the
site's AI settings, `guard_banned_terms`) and decides; nothing is blocked. The rules come from the
site's settings snapshot, the same one the gateway runs on.
"""

from __future__ import annotations

from typing import Any

from integrations.ai.guardrails import banned_terms
from integrations.ai.sites.site_config import get_snapshot


def texts_in(value: Any) -> list[str]:
    """Every string in a proposal (a meta field, or a block's content JSON), in order."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for item in value.values() for t in texts_in(item)]
    if isinstance(value, list | tuple):
        return [t for item in value for t in texts_in(item)]
    return []


def style_warnings(site_id: int | None, *proposals: Any) -> list[str]:
    """The site's banned-terms warnings for the generated text of `proposals` (empty: none apply)."""
    rules = get_snapshot(site_id).guardrails.banned_terms
    if not rules:
        return []
    text = "\n".join(t for proposal in proposals for t in texts_in(proposal))
    return [str(w) for w in banned_terms.check(text, rules)]
