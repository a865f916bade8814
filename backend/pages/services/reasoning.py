"""The page services' reasoning budget (issue 27): a reasoning model must not think its whole answer away.

Meta titles and descriptions ask for 60-300 tokens. A reasoning model on OpenRouter counts its thinking
inside `max_tokens`, so at its default effort it can spend all of them reasoning and return nothing.
For such a model (OpenRouter's catalogue lists the `reasoning` parameter for it) the services send a
fixed reasoning budget, its text excluded from the answer, and raise `max_tokens` by that budget so the
answer keeps the room it asked for. OpenAI's reasoning models (o-series, GPT-5) think inside
`max_completion_tokens` too but take no budget: they get the same room and a low effort. Any other provider or
model gets the call unchanged.
"""

from __future__ import annotations

from typing import Any

# Anthropic's smallest extended-thinking budget, and ample for a title or a block's outline
REASONING_BUDGET = 1024


def reasoning_budget(ai: Any, model: str | None, max_tokens: int) -> dict[str, Any]:
    """`max_tokens` (raised by the budget) and, for an OpenRouter or OpenAI reasoning model, `reasoning`."""
    provider = ai.provider_for(None, model)
    if provider.kind not in ("openrouter", "openai") or not provider.reasons(provider.resolve_model(model)):
        return {"max_tokens": max_tokens}
    if provider.kind == "openai":
        return {"max_tokens": max_tokens + REASONING_BUDGET, "reasoning": {"effort": "low"}}
    return {
        "max_tokens": max_tokens + REASONING_BUDGET,
        "reasoning": {"max_tokens": REASONING_BUDGET, "exclude": True},
    }
