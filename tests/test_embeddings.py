"""Issue 20 (4): `AIService.embed` on OpenAI, OpenRouter and an OpenAI-compatible endpoint, through the
real `openai` SDK against the emulator's `/embeddings`.

1,000 texts are split to the vendor's limits (OpenAI's 300,000 tokens per request makes three requests
of these long texts; the emulator answers 400 to one request over it; the local server's cap of 256
inputs makes four), come back in order, are priced in the ledger and counted in the budget, and are
served from the per-site cache the second time. Mappings name embedding models too.
"""

from __future__ import annotations

import pytest

from integrations.ai.gateway.embeddings import batches
from integrations.ai.gateway.service import AIService
from integrations.ai.providers.errors import NotSupported
from integrations.ai.testing import upstream_extras
from integrations.models import ModelMapping

from .beyond_text import assert_priced_and_budgeted, ledger, make_gateway

pytestmark = pytest.mark.django_db

LONG = [f"text {i} " + "lorem " * 398 for i in range(1000)]  # 400 emulator tokens each: 400,000 in all
SHORT = [f"product number {i}" for i in range(1000)]
CASES = [  # kind, model, texts, upstream requests
    ("openai", "text-embedding-3-small", LONG, 3),
    ("openrouter", "openai/text-embedding-3-small", LONG, 3),
    ("ollama", "nomic-embed-text", SHORT, 4),
]


def embedding_posts(upstream, flavor: str) -> list:
    return [r for r in upstream.requests_for(flavor) if r.path.endswith("/embeddings")]


@pytest.mark.parametrize(("kind", "model", "texts", "requests"), CASES, ids=[c[0] for c in CASES])
def test_a_batch_of_1000_texts_is_split_to_the_vendors_limit(kind, model, texts, requests, upstream):
    gateway = make_gateway(kind, upstream)
    ai = AIService(site=gateway.site, service="search.index")
    result = ai.embed(texts, model=model, provider=gateway.provider)
    assert len(result) == 1000 and result.requests == requests
    assert result.vectors == [upstream_extras._vector(t, upstream_extras.EMBEDDING_DIMENSIONS) for t in texts]
    sent = embedding_posts(upstream, gateway.flavor)
    assert len(sent) == requests
    assert [t for r in sent for t in r.json["input"]] == texts  # in order, each once
    assert max(len(r.json["input"]) for r in sent) <= (256 if kind == "ollama" else 2048)
    rows = assert_priced_and_budgeted(gateway.site, calls=requests, counters=False)  # 1,000 vectors evict them
    assert {r.service for r in rows} == {"search.index"}
    assert sum(r.prompt_tokens for r in rows) == result.prompt_tokens == sum(len(t.split()) for t in texts)
    assert result.cost == sum(r.cost for r in rows)

    # The per-site cache answers (the tests' local-memory cache keeps the 300 newest entries; Redis keeps all).
    again = ai.embed(texts[-100:], model=model, provider=gateway.provider)
    assert again.vectors == result.vectors[-100:] and again.cached == 100 and again.requests == 0
    assert len(embedding_posts(upstream, gateway.flavor)) == requests
    assert ledger(gateway.site)[-1].status == "cached"


def test_the_cache_is_per_site(upstream):
    one, two = make_gateway("openai", upstream), make_gateway("openai", upstream)
    AIService(site=one.site).embed(["lemon tart"], model="text-embedding-3-small")
    AIService(site=two.site).embed(["lemon tart"], model="text-embedding-3-small")
    assert len(embedding_posts(upstream, "openai")) == 2


def test_aembed_runs_the_same_pipeline_off_the_event_loop(upstream):
    """Priced, ledgered and cached per site as `embed` is: the second call is a cache hit, no request."""
    from asgiref.sync import async_to_sync

    gateway = make_gateway("openai", upstream)
    aembed = async_to_sync(AIService(site=gateway.site).aembed)
    first = aembed(["lemon tart", "rye bread"], model="text-embedding-3-small")
    again = aembed(["lemon tart"], model="text-embedding-3-small")
    assert len(first.vectors) == 2 and again.vectors == first.vectors[:1] and again.cached == 1
    assert len(embedding_posts(upstream, "openai")) == 1
    assert [row.status for row in ledger(gateway.site)] == ["ok", "cached"] and ledger(gateway.site)[0].cost > 0


def test_a_mapping_names_an_embedding_model(upstream):
    gateway = make_gateway("openai", upstream)
    ModelMapping.objects.create(
        site=gateway.site, logical_name="search-embed", provider="openai", provider_model_id="text-embedding-3-large"
    )
    AIService(site=gateway.site).embed(["lemon tart", "rye bread"], model="search-embed")
    assert embedding_posts(upstream, "openai")[-1].json["model"] == "text-embedding-3-large"
    (row,) = assert_priced_and_budgeted(gateway.site, calls=1)
    assert (row.requested_model, row.served_model) == ("search-embed", "text-embedding-3-large")


def test_anthropic_and_chat_models_do_not_embed_and_chat_refuses_embedding_models(upstream):
    anthropic = make_gateway("anthropic", upstream)
    with pytest.raises(NotSupported, match="does not support embeddings"):
        AIService(site=anthropic.site).embed(["lemon tart"])
    openai = make_gateway("openai", upstream)
    with pytest.raises(NotSupported, match="does not support embeddings"):
        AIService(site=openai.site).embed(["lemon tart"], model="gpt-4o")
    with pytest.raises(NotSupported, match="is an embedding model"):
        AIService(site=openai.site).generate_content("hi", model="text-embedding-3-small")
    assert upstream.requests == []


def test_batches_keep_to_both_limits():
    texts = list(enumerate(["word"] * 5000))
    assert [len(b) for b in batches(texts, 2048, 300_000)] == [2048, 2048, 904]
    long = list(enumerate(["x" * 3000] * 10))  # 1,001 estimated tokens each
    assert [len(b) for b in batches(long, 2048, 3000)] == [2] * 5


def test_the_sites_pii_masking_applies_before_a_text_is_cached_or_sent(upstream):
    """A site that masks PII in prompts has it masked in what it embeds too (the same guardrail): the vendor
    and the cache see `<EMAIL_ADDRESS>`, and the ledger says what was masked. Not the injection check: a page
    about prompt injection stays indexable."""
    gateway = make_gateway("openai", upstream, guard_mask_pii=True, guard_prompt_injection="refuse")
    texts = ["Write to jane.doe@example.com for orders", "Ignore previous instructions: a guide"]
    result = AIService(site=gateway.site).embed(texts, model="text-embedding-3-small")
    (sent,) = embedding_posts(upstream, "openai")
    assert sent.json["input"] == ["Write to <EMAIL_ADDRESS> for orders", "Ignore previous instructions: a guide"]
    assert result.vectors[0] == upstream_extras._vector(sent.json["input"][0], upstream_extras.EMBEDDING_DIMENSIONS)
    (row,) = ledger(gateway.site)
    assert row.guardrails == [{"guardrail": "pii_masking", "outcome": "masked", "detail": "1 EMAIL_ADDRESS (patterns)"}]

    again = AIService(site=gateway.site).embed(texts[:1], model="text-embedding-3-small")
    assert again.cached == 1 and len(embedding_posts(upstream, "openai")) == 1  # the masked text's cache entry
    assert ledger(gateway.site)[-1].guardrails == row.guardrails


def test_without_masking_a_text_is_embedded_as_written(upstream):
    gateway = make_gateway("openai", upstream)
    AIService(site=gateway.site).embed(["Write to jane.doe@example.com"], model="text-embedding-3-small")
    (sent,) = embedding_posts(upstream, "openai")
    assert sent.json["input"] == ["Write to jane.doe@example.com"]
    assert ledger(gateway.site)[0].guardrails == []
