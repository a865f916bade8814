"""Pre-flight estimate of a batch: items, tokens and worst-case cost against the site's budget.

Shown before a person starts a batch from the admin. It prices the calls the way the budget gate
will (`budget.estimate_cost`: ~1 token per 3 characters of input, every allowed output token, at the
price `AIService.price_for` resolves: an override, the genai-prices catalogue, else the unpriced
estimate the call will be charged), so "fits the budget" here means the batch's reservations will fit
too. Nothing is sent to a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.sites.models import Site

from integrations.admin.forms import PROVIDER_LABELS
from integrations.ai import AIService
from integrations.ai.governance import budget
from integrations.ai.providers.errors import AIProviderError


@dataclass(frozen=True)
class Call:
    """One planned call: its messages, system prompt and output allowance."""

    messages: list[dict[str, str]]
    system_prompt: str | None
    max_tokens: int


@dataclass
class Estimate:
    site: Site
    items: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal | None = None
    unpriced: bool = False  # no source prices the model: the cost is the estimate it will be charged
    provider: str = ""
    model: str = ""
    cap: Decimal | None = None
    spent: Decimal = Decimal(0)
    problems: list[str] = field(default_factory=list)  # any of these: the batch cannot start

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def remaining(self) -> Decimal | None:
        return None if self.cap is None else max(Decimal(0), self.cap - self.spent)

    @property
    def over_budget(self) -> bool:
        """The worst case does not fit what is left: later items may fail with budget_exceeded."""
        return self.remaining is not None and self.cost is not None and self.cost > self.remaining

    @property
    def blocked(self) -> bool:
        return bool(self.problems)

    @property
    def provider_label(self) -> str:
        return PROVIDER_LABELS.get(self.provider, self.provider)

    def money(self, amount: Decimal | None) -> str:
        return "not known" if amount is None else budget.usd(amount)

    @property
    def cost_text(self) -> str:
        if self.cost is None:
            return "not known"
        if self.unpriced:
            return (
                f"up to {budget.usd(self.cost)}, charged in full: calls to {self.model or 'this model'} have no "
                "price (add one under Model prices)"
            )
        return budget.usd(self.cost)

    @property
    def budget_text(self) -> str:
        if self.cap is None:
            return f"no monthly cap ({budget.usd(self.spent)} spent this month)"
        left, cap, spent = budget.usd(self.remaining or Decimal(0)), budget.usd(self.cap), budget.usd(self.spent)
        return f"{left} left of {cap} ({spent} spent this month)"


def estimate(site: Site, calls: list[Call], model: str | None = None) -> Estimate:
    """What running `calls` on `site` would take at most; `problems` say why it cannot start."""
    result = Estimate(site=site, items=len(calls))
    if not calls:
        result.problems.append("Nothing to run.")
        return result
    service = AIService(site=site.pk, service="batch.estimate")
    first = calls[0]
    try:
        prep = service.prepare(
            first.messages, model=model, max_tokens=first.max_tokens, system_prompt=first.system_prompt
        )
    except AIProviderError as exc:
        result.problems.append(f"{exc.code}: {exc.message}")
        return result
    result.provider, result.model = prep.primary.name, prep.resolved
    result.cap = prep.snapshot.monthly_budget
    result.spent = budget.month_to_date_spend(site.pk)
    price = AIService.price_for(prep.snapshot, prep.primary, prep.resolved)
    total = Decimal(0)
    for call in calls:
        chars = sum(len(m["content"]) for m in call.messages) + len(call.system_prompt or "")
        result.prompt_tokens += chars // 3 + 16  # the budget gate's rule (budget.estimate_cost)
        result.completion_tokens += call.max_tokens
        total += budget.estimate_cost(price, call.messages, call.system_prompt, call.max_tokens)
    result.cost, result.unpriced = total, price is None
    if result.cap is not None and (result.remaining or 0) <= 0:
        result.problems.append(
            f"The site's monthly AI budget of {budget.usd(result.cap)} is used up ({budget.usd(result.spent)} spent)."
        )
    return result
