"""Shared setup of the beyond-text tests (tools, structured output, images, embeddings): one site per
provider kind pointed at the emulator, with a monthly budget and prices, and the checks that every
call is priced in the ledger and counted in the budget."""

from __future__ import annotations

import io
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.sites.models import Site
from django.core.cache import cache

from integrations.ai.governance import budget
from integrations.ai.ledger import usage
from integrations.ai.testing.upstream import OPENROUTER_MODELS
from integrations.models import AIUsage, BudgetPeriod, ModelPrice

from .conftest import EMULATED_KEYS
from .factories import AIProviderSettingsFactory, ProviderCredentialFactory

MILLION = Decimal(1_000_000)
PRICES = {  # (provider, served model id) -> USD per million (prompt, completion)
    ("openai", "gpt-4o"): ("2.5", "10"),
    ("anthropic", "claude-3-5-sonnet-20241022"): ("3", "15"),
    ("ollama", "llama3.1"): ("0.1", "0.2"),
    ("ollama", "llava"): ("0.1", "0.2"),
    ("openai", "text-embedding-3-small"): ("0.02", "0"),
    ("openai", "text-embedding-3-large"): ("0.13", "0"),
    ("ollama", "nomic-embed-text"): ("0.01", "0"),
}


@dataclass
class Gateway:
    site: Site
    provider: str  # the name callers pass
    flavor: str  # the emulator flavor it reaches
    model: str  # a model that takes tools, schemas and images there

    def call(self) -> dict:
        return {"provider": self.provider, "model": self.model}


MODELS = {"openai": "gpt-4o", "anthropic": "claude-3-5-sonnet", "openrouter": "openai/gpt-4o", "ollama": "llama3.1"}
FLAVORS = {"openai": "openai", "anthropic": "anthropic", "openrouter": "openrouter", "ollama": "compatible"}
KINDS = tuple(MODELS)


def make_gateway(kind: str, upstream, also_key: str | None = None, **fields) -> Gateway:
    """A site whose provider is `kind` on the emulator; `also_key` adds a second provider as its fallback."""
    if also_key:
        fields[f"{also_key}_api_key"] = EMULATED_KEYS[also_key]
        fields[f"{also_key}_base_url"] = getattr(upstream, f"{also_key}_base_url")
        fields.setdefault("fallback_chain", [{"provider": also_key, "model": MODELS[also_key]}])
    for (provider, model), (prompt, completion) in PRICES.items():
        ModelPrice.objects.get_or_create(
            provider=provider,
            model_id=model,
            defaults={"prompt_per_million": Decimal(prompt), "completion_per_million": Decimal(completion)},
        )
    fields.setdefault("monthly_budget", Decimal("50"))
    if kind == "ollama":
        record = AIProviderSettingsFactory(
            provider_type="openai",
            openai_api_key=EMULATED_KEYS["openai"],
            openai_base_url=upstream.openai_base_url,
            **fields,
        )
        ProviderCredentialFactory(
            settings=record, provider="openai_compatible", name="ollama", base_url=upstream.compatible_base_url
        )
    else:
        fields.setdefault(f"{kind}_api_key", EMULATED_KEYS[kind])
        fields.setdefault(f"{kind}_base_url", getattr(upstream, f"{kind}_base_url"))
        record = AIProviderSettingsFactory(provider_type=kind, **fields)
    return Gateway(record.site, kind, FLAVORS[kind], MODELS[kind])


def ledger(site) -> list[AIUsage]:
    usage.flush()
    return list(AIUsage.objects.filter(site=site).order_by("id"))


def expected_cost(row: AIUsage) -> Decimal:
    """What the row must cost: OpenRouter's reported price (its catalogue), else the price table."""
    if row.provider == "openrouter":
        prompt, completion, _ = OPENROUTER_MODELS.get(row.served_model, ("0.00000002", "0", 0))
        return Decimal(prompt) * row.prompt_tokens + Decimal(completion) * row.completion_tokens
    prompt, completion = PRICES[(row.provider, row.served_model)]
    return (Decimal(prompt) * row.prompt_tokens + Decimal(completion) * row.completion_tokens) / MILLION


def assert_priced_and_budgeted(site, calls: int, counters: bool = True) -> list[AIUsage]:
    """Every upstream row has its exact cost (never empty, never zero), the month's budget row holds their sum
    and (`counters`) each call settled its reservation to its cost in the shared spend counter."""
    rows = [r for r in ledger(site) if r.status in ("ok", "error")]
    ok = [r for r in rows if r.status == "ok"]
    assert len(ok) == calls, [(r.provider, r.status, r.error_message) for r in rows]
    for row in ok:
        assert row.cost is not None and row.cost > 0, row
        assert abs(row.cost - expected_cost(row)) < Decimal("0.0000001"), (row.cost, expected_cost(row))
    period = BudgetPeriod.objects.get(site=site)
    assert period.spent == sum(r.cost for r in ok)
    if counters:
        _, spent_key = budget.counter_keys(site.id)
        assert cache.get(spent_key) == sum(budget.micro(r.cost) for r in ok)
    return rows


def png(width: int = 64, height: int = 48) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, format="PNG")
    return buffer.getvalue()
