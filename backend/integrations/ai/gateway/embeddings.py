"""`AIService.embed(texts, model=...)`: vectors through the same governed gateway as text.

The site's provider (or the one named) and the mapped model id, the site's model policy, rate limits
and budget reservation (`governance.admit`, per upstream request), the provider's retries, the
site's PII masking (each text masked before it is cached or sent, as a prompt is), and the ledger (one
row per request attempt: service, tokens, cost from the provider or the price table, what the masking
did). The prompt-injection check does not apply: an embedding follows no instructions, and a page about
prompt injection must stay indexable.
Texts are batched to the vendor's limits (`providers/embeddings.LIMITS`: inputs and estimated tokens
per request) and cached per site by (provider, model, dimensions, text hash), so a text embedded once is
free the next time. There is no failover to another provider: another provider's model makes vectors of
another space, which must never be mixed into one index.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from integrations.ai.governance import admission as governance
from integrations.ai.guardrails import registry as guardrails
from integrations.ai.guardrails.settings import GuardrailSettings
from integrations.ai.ledger import usage
from integrations.ai.providers import capabilities
from integrations.ai.providers.base import check_text
from integrations.ai.providers.embeddings import DEFAULT_MODELS, LIMITS
from integrations.ai.providers.errors import InvalidRequest
from integrations.ai.providers.types import AIRequest, GenerationResult
from integrations.ai.runtime import conf
from integrations.ai.runtime.shared_cache import cache
from integrations.ai.sites.site_config import get_snapshot

if TYPE_CHECKING:
    from integrations.ai.gateway.service import AIService

CHARS_PER_TOKEN = 3  # the estimators' conservative rule: batches never pass a vendor's token cap
MAX_DIMENSIONS = 65_536  # a sanity bound; each model's own maximum is the vendor's to enforce


@dataclass
class EmbeddingResult:
    """One vector per input text, in order, with what producing them took."""

    vectors: list[list[float]]
    model: str
    provider: str
    prompt_tokens: int = 0
    cost: Decimal | None = None
    requests: int = 0  # upstream requests made (cache hits need none)
    cached: int = 0  # texts answered from the cache

    def __len__(self) -> int:
        return len(self.vectors)

    def __getitem__(self, index: int) -> list[float]:
        return self.vectors[index]


def batches(texts: list[tuple[int, str]], max_inputs: int, max_tokens: int) -> list[list[tuple[int, str]]]:
    """Consecutive groups of at most `max_inputs` texts and `max_tokens` estimated tokens."""
    groups: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    tokens = 0
    for item in texts:
        cost = len(item[1]) // CHARS_PER_TOKEN + 1
        if cost > max_tokens:
            raise InvalidRequest(
                f"texts[{item[0]}] is too long to embed (about {cost:,} tokens; the limit per "
                f"request is {max_tokens:,}). Split it."
            )
        if current and (len(current) >= max_inputs or tokens + cost > max_tokens):
            groups.append(current)
            current, tokens = [], 0
        current.append(item)
        tokens += cost
    if current:
        groups.append(current)
    return groups


def _key(site_id: int | None, provider: str, model: str, dimensions: int | None, text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()
    shape = "" if dimensions is None else f"@{dimensions}"  # a shortened vector is another vector
    return f"integrations.ai:embedding:{site_id}:{provider}:{model}{shape}:{digest}"


def _dimensions(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DIMENSIONS:
        raise InvalidRequest(
            f"dimensions must be a whole number from 1 to {MAX_DIMENSIONS:,} (or left out for the model's own "
            f"length); got {value!r}."
        )
    return value


def masked(settings: GuardrailSettings, texts: list[str]) -> tuple[list[str], list[dict[str, str]]]:
    """The texts with the site's PII masking applied (the same guardrail as a prompt's), and its ledger
    entries (none when it is off or found nothing)."""
    if not settings.mask_pii:
        return texts, []
    request = AIRequest(messages=tuple({"role": "user", "content": text} for text in texts))
    request, actions = guardrails.mask_pii(settings, request, conf.pii_phone_region())
    return [message["content"] for message in request.messages], [action.as_dict() for action in actions]


def embed(
    service: AIService,
    texts: list[str],
    model: str | None = None,
    provider: str | None = None,
    dimensions: int | None = None,
) -> EmbeddingResult:
    if isinstance(texts, str) or not isinstance(texts, list | tuple) or not texts:
        raise InvalidRequest("texts must be a non-empty list of strings.")
    for index, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise InvalidRequest(f"texts[{index}] is empty: give the text to embed.")
        check_text(text, f"texts[{index}]")
    dimensions = _dimensions(dimensions)
    site_id = service.site_id
    snapshot = get_snapshot(site_id)
    chosen = service.provider_for(provider, model)
    model = model or DEFAULT_MODELS.get(chosen.kind) or chosen.config.default_model
    resolved = chosen.resolve_model(model)
    options = {} if dimensions is None else {"dimensions": dimensions}
    request = AIRequest(
        messages=(), model=model, max_tokens=1, temperature=0.0, options=options, embed_input=tuple(texts)
    )
    capabilities.require(chosen, request, resolved)
    if (refusal := governance.candidate_refusal(snapshot, chosen, model)) is not None:
        raise governance.refuse(site_id, service.service, model, chosen.name, refusal)

    texts, actions = masked(snapshot.guardrails, list(texts))  # before the cache key: no PII in it either
    keys = [_key(site_id, chosen.name, resolved, dimensions, text) for text in texts]
    found = cache.get_many(list(set(keys)))
    vectors: list[list[float] | None] = [found.get(key) for key in keys]
    result = EmbeddingResult([], resolved, chosen.name, cost=Decimal(0))
    result.cached = sum(v is not None for v in vectors)
    if result.cached:  # one ledger row for the texts the cache answered, at no cost
        hit = GenerationResult(content="", model=resolved, provider=chosen.name, requested_model=model, cached=True)
        record = usage.CallRecord(site_id, service.service, model, guardrails=list(actions))
        usage.write_ledger(record, snapshot.prices, cached=hit)
    missing = [(i, texts[i]) for i, v in enumerate(vectors) if v is None]
    max_inputs, max_tokens = LIMITS.get(chosen.kind, LIMITS["openai_compatible"])
    for group in batches(missing, max_inputs, max_tokens):
        batch = request.with_changes(embed_input=tuple(text for _, text in group))
        estimate = [{"role": "user", "content": text} for _, text in group]
        admission = governance.admit(service, snapshot, chosen, model, resolved, estimate, None, 0)
        with usage.collecting(site_id, service.service, model) as record:
            record.guardrails = list(actions)
            try:
                answer = chosen.execute(batch)
            finally:
                record.budget_settled = admission.settles_in_db
                usage.write_ledger(record, snapshot.prices)
                admission.settle(record, snapshot.prices)
        cost, _ = usage.cost_of(snapshot.prices, answer)
        result.cost = None if cost is None or result.cost is None else result.cost + cost
        result.prompt_tokens += answer.prompt_tokens
        result.requests += 1
        result.model = answer.model
        fresh = {}
        for (index, _), vector in zip(group, answer.embeddings or [], strict=True):
            vectors[index] = vector
            fresh[keys[index]] = vector
        cache.set_many(fresh, timeout=conf.cache_ttl())
    result.vectors = [v for v in vectors if v is not None]
    return result
