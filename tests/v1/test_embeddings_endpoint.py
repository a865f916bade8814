"""`POST /v1/embeddings` with the real `openai` SDK as the client: OpenAI's Embeddings format onto
`AIService.embed`, so the key's site, its policy, budget, PII masking, cache and ledger govern it.

Panel runs as a real HTTP server (live_server; one test on `bin/serve`'s ASGI shape) and the emulator
is the vendor behind it.
"""

from __future__ import annotations

import array

import openai
import pytest

from integrations.ai.testing import upstream_extras

from ..beyond_text import assert_priced_and_budgeted, ledger, make_gateway
from ..test_server_config import Server

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "text-embedding-3-small"
TEXTS = ["a bakery in Lyon", "fresh bread every morning"]


def vector(text: str, dims: int = upstream_extras.EMBEDDING_DIMENSIONS) -> list[float]:
    return upstream_extras._vector(text, dims)


def float32(values: list[float]) -> list[float]:
    return array.array("f", values).tolist()


def posts(upstream, flavor: str = "openai") -> list:
    return [r for r in upstream.requests_for(flavor) if r.path.endswith("/embeddings")]


@pytest.fixture
def site(upstream):
    return make_gateway("openai", upstream).site


def test_the_sdks_default_base64_vectors_decode_to_the_vendors_in_order_priced_and_ledgered(
    site, make_key, oai, upstream
):
    """The SDK asks for base64 when its caller names no format, and decodes it: the caller gets floats."""
    reply = oai(make_key(site, "indexer")).embeddings.create(model=MODEL, input=TEXTS)

    assert [d.index for d in reply.data] == [0, 1]
    assert [d.embedding for d in reply.data] == [float32(vector(t)) for t in TEXTS]
    assert posts(upstream)[-1].json["input"] == TEXTS  # the texts reached the vendor, in one request
    assert reply.model == MODEL and reply.usage.prompt_tokens == reply.usage.total_tokens > 0
    (row,) = assert_priced_and_budgeted(site, calls=1)
    assert (row.service, row.prompt_tokens, row.api_key.name) == ("v1.embeddings", reply.usage.prompt_tokens, "indexer")


def test_float_vectors_a_single_string_and_the_sites_cache(site, make_key, oai, upstream):
    client = oai(make_key(site))
    first = client.embeddings.create(model=MODEL, input=TEXTS[0], encoding_format="float")
    assert [d.embedding for d in first.data] == [vector(TEXTS[0])]  # JSON floats: exact

    again = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
    assert [d.embedding for d in again.data] == [vector(t) for t in TEXTS]
    assert [r.json["input"] for r in posts(upstream)] == [[TEXTS[0]], [TEXTS[1]]]  # the cached text was not sent
    assert [r.status for r in ledger(site)] == ["ok", "cached", "ok"]


def test_dimensions_reach_the_vendor_and_shortened_vectors_are_cached_apart(site, make_key, oai, upstream):
    client = oai(make_key(site))
    short = client.embeddings.create(model=MODEL, input=TEXTS[0], dimensions=8, encoding_format="float")
    assert short.data[0].embedding == vector(TEXTS[0], 8)
    assert posts(upstream)[-1].json["dimensions"] == 8

    full = client.embeddings.create(model=MODEL, input=TEXTS[0], encoding_format="float")
    assert full.data[0].embedding == vector(TEXTS[0])  # not the cached 8-long vector
    assert "dimensions" not in posts(upstream)[-1].json and len(posts(upstream)) == 2


@pytest.mark.parametrize(
    ("body", "param", "code", "says"),
    [
        ({"input": "hi"}, "model", None, "model is required"),
        ({"model": MODEL, "input": ""}, "input", None, "input must be a non-empty string"),
        ({"model": MODEL, "input": ["ok", " "]}, "input[1]", None, "input[1] must be a non-empty string"),
        ({"model": MODEL, "input": []}, "input", None, "non-empty list"),
        ({"model": MODEL, "input": [1, 2, 3]}, "input", "unsupported_parameter", "token ids"),
        ({"model": MODEL, "input": [[1, 2]]}, "input", "unsupported_parameter", "token ids"),
        ({"model": MODEL, "input": ["x"] * 2049}, "input", None, "at most 2,048"),
        ({"model": MODEL, "input": "hi", "encoding_format": "int8"}, "encoding_format", None, "float or base64"),
        ({"model": MODEL, "input": "hi", "dimensions": "8"}, "dimensions", None, "must be an integer"),
        ({"model": MODEL, "input": "hi", "dimensions": 0}, None, None, "dimensions must be a whole number"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_nothing_is_sent_or_ledgered(
    site, make_key, oai, upstream, body, param, code, says
):
    client = oai(make_key(site))
    with pytest.raises(openai.BadRequestError) as refused:
        client.post("/embeddings", body=body, cast_to=object)
    error = refused.value.body
    assert says in error["message"] and error["param"] == param
    assert code is None or error["code"] == code
    assert posts(upstream) == [] and ledger(site) == []


def test_a_key_limited_to_other_models_is_refused_and_a_chat_only_site_says_what_is_missing(
    site, make_key, oai, emulated_site, upstream
):
    with pytest.raises(openai.PermissionDeniedError) as refused:
        oai(make_key(site, allowed_models="gpt-4o-mini")).embeddings.create(model=MODEL, input="hi")
    assert refused.value.body["code"] == "model_not_allowed" and MODEL in refused.value.body["message"]

    chat_only = emulated_site("anthropic")
    with pytest.raises(openai.NotFoundError) as missing:
        oai(make_key(chat_only)).embeddings.create(model=MODEL, input="hi")
    assert missing.value.body["code"] == "model_not_found"
    assert posts(upstream) == []


def test_a_bad_key_is_a_401_and_the_site_comes_from_the_key(site, make_key, oai, upstream):
    with pytest.raises(openai.AuthenticationError):
        oai("pk-not-a-key").embeddings.create(model=MODEL, input="hi")
    other = make_gateway("openai", upstream).site
    oai(make_key(other)).embeddings.create(model=MODEL, input="hi")
    assert ledger(site) == [] and [r.service for r in ledger(other)] == ["v1.embeddings"]


def test_the_sites_pii_masking_applies_to_what_a_client_embeds(make_key, oai, upstream):
    site = make_gateway("openai", upstream, guard_mask_pii=True).site
    oai(make_key(site)).embeddings.create(model=MODEL, input="write to ana@example.com")
    assert posts(upstream)[-1].json["input"] == ["write to <EMAIL_ADDRESS>"]


def test_embeddings_on_the_production_servers_async_shape(site, make_key, upstream):
    """`bin/serve` (gunicorn with uvicorn workers): the async view, one hop off the loop."""
    raw = make_key(site, "asgi")
    server = Server()
    try:
        client = openai.OpenAI(api_key=raw, base_url=f"http://127.0.0.1:{server.port}/v1", max_retries=5)
        reply = client.embeddings.create(model=MODEL, input=TEXTS)
        assert [d.embedding for d in reply.data] == [float32(vector(t)) for t in TEXTS]
        with pytest.raises(openai.BadRequestError):
            client.embeddings.create(model=MODEL, input=[7])
    finally:
        assert server.stop() == 0  # the worker's exit writes the ledger
    (row,) = ledger(site)
    assert (row.service, row.status, row.api_key.name) == ("v1.embeddings", "ok", "asgi")
