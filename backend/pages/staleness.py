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
from integrations.ai.governance import budget
from integrations.ai.providers.errors import AIProviderError
from prompts.versions import BUILTIN_PROMPTS

from .models import Block, ContentProvenance, Page
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
class StaleBlock:
    """A block still as the AI wrote it whose page text or block prompt changed; `row` is how it was made."""

    block: Block
    row: ContentProvenance
    reason: str

    @property
    def instructions(self) -> str:
        return str((self.row.parameters or {}).get("instructions") or "")

    @property
    def model(self) -> str | None:
        return str((self.row.parameters or {}).get("model") or "") or None


def stale_blocks(page: Page) -> list[StaleBlock]:
    """The page's stale AI blocks, in page order; a block a person edited is theirs and never listed."""
    reasons = stale_reasons(page)
    if not any(key not in META_FIELDS for key in reasons):
        return []
    rows = current(page)
    return [StaleBlock(block, rows[block.pk], reasons[block.pk]) for block in page.blocks.all() if block.pk in reasons]


@dataclass(frozen=True)
class Estimate:
    """What regenerating would take before anything is sent: calls, worst-case tokens and cost."""

    calls: int
    tokens: int
    cost: Decimal | None  # None: no price known for the model that would serve


def _estimate(
    calls: list[tuple[int, str, str | None]],
    service: str,
    system_prompt: str,
    parameters: dict[str, Any],
    model: str | None = None,
) -> Estimate:
    """Worst case of `calls` ((site id, prompt, model)), priced as the budget check reserves them; sends nothing."""
    tokens, cost, priced = 0, Decimal(0), True
    for site_id, prompt, call_model in calls:
        messages = [{"role": "user", "content": prompt}]
        tokens += (len(prompt) + len(system_prompt)) // 3 + 16 + parameters["max_tokens"]
        try:
            prep = CoreAIService(site=site_id, service=service).prepare(
                messages, model=call_model or model, system_prompt=system_prompt, **parameters
            )
        except AIProviderError:
            priced = False
            continue
        price = prep.snapshot.prices.get((prep.primary.name, prep.resolved))
        if price is None:
            priced = False
        cost += budget.estimate_cost(price, messages, system_prompt, parameters["max_tokens"])
    return Estimate(calls=len(calls), tokens=tokens, cost=cost if priced else None)


def estimate_meta(pages: list[Page], model: str | None = None) -> Estimate:
    """Worst case for one meta call per page (as the budget check reserves it); no request is made."""
    from .services.ai_service import META_PARAMETERS, META_SYSTEM_PROMPT, meta_prompt

    return _estimate(
        [(page.site_id, meta_prompt(page.title, page.body), None) for page in pages],
        "pages.meta",
        META_SYSTEM_PROMPT,
        META_PARAMETERS,
        model,
    )


def estimate_blocks(items: list[StaleBlock]) -> Estimate:
    """Worst case for one call per stale block (a corrective retry is not counted); no request is made."""
    from .services.advanced_ai_service import BLOCK_PARAMETERS, SYSTEM_PROMPT, block_prompt

    return _estimate(
        [
            (
                item.block.page.site_id,
                block_prompt(item.block.type, item.block.page.title, item.instructions),
                item.model,
            )
            for item in items
        ],
        "pages.blocks",
        SYSTEM_PROMPT,
        BLOCK_PARAMETERS,
    )
