"""Stale AI content: fields whose page text or prompt changed since they were generated, and what redoing costs.

A provenance row keeps the hash of the page's title and body it was generated from and the prompt
version. A field is stale when either differs now; a field a person has edited is theirs and never
stale. Regeneration is keyed by (content revision, prompt version): a page whose text and prompt
are unchanged is skipped, whatever the response cache would say.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from integrations.ai import AIService as CoreAIService
from integrations.ai import budget
from integrations.ai.providers.errors import AIProviderError
from prompts.versions import BUILTIN_PROMPTS

from .models import Page
from .provenance import META_FIELDS, current, source_hash


def stale_reasons(page: Page) -> dict[Any, str]:
    """{field name or block id: why it is stale} for the page's AI-written content still as the AI wrote it."""
    digest = source_hash(page)
    reasons: dict[Any, str] = {}
    for key, row in current(page).items():
        if not row.ai_generated:
            continue
        prompt = BUILTIN_PROMPTS.get(row.prompt_name)
        if row.source_hash and row.source_hash != digest:
            reasons[key] = "page text changed"
        elif prompt is not None and row.prompt_version != prompt.version:
            reasons[key] = f"prompt {row.prompt_name} changed ({row.prompt_version} → {prompt.version})"
    return reasons


def meta_is_stale(page: Page) -> bool:
    return any(key in META_FIELDS for key in stale_reasons(page))


@dataclass(frozen=True)
class Estimate:
    """What regenerating would take before anything is sent: calls, worst-case tokens and cost."""

    calls: int
    tokens: int
    cost: Decimal | None  # None: no price known for the model that would serve


def estimate_meta(pages: list[Page], model: str | None = None) -> Estimate:
    """Worst case for one meta call per page (as the budget check reserves it); no request is made."""
    from .services.ai_service import META_PARAMETERS, META_SYSTEM_PROMPT, meta_prompt

    tokens, cost, priced = 0, Decimal(0), True
    for page in pages:
        messages = [{"role": "user", "content": meta_prompt(page.title, page.body)}]
        chars = len(messages[0]["content"]) + len(META_SYSTEM_PROMPT)
        tokens += chars // 3 + 16 + META_PARAMETERS["max_tokens"]
        try:
            prep = CoreAIService(site=page.site_id, service="pages.meta").prepare(
                messages, model=model, system_prompt=META_SYSTEM_PROMPT, **META_PARAMETERS)
        except AIProviderError:
            priced = False
            continue
        price = prep.snapshot.prices.get((prep.primary.name, prep.resolved))
        if price is None:
            priced = False
        cost += budget.estimate_cost(price, messages, META_SYSTEM_PROMPT, META_PARAMETERS["max_tokens"])
    return Estimate(calls=len(pages), tokens=tokens, cost=cost if priced else None)
