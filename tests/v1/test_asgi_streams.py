"""/v1 streams on the production server's default shape (`bin/serve`: gunicorn with uvicorn workers, ASGI),
the real SDKs as clients (issue 22): a client that disconnects mid-stream cancels the upstream request at
once and its call is ledgered `cancelled`; past `AI_MAX_STREAMS` a stream is a 503 with Retry-After in
the client's dialect."""

from __future__ import annotations

import anthropic
import openai
import pytest

from integrations.ai.ledger import usage
from integrations.models import AIUsage

from ..test_server_config import Server

pytestmark = pytest.mark.django_db(transaction=True)

LONG = " ".join(f"w{n}" for n in range(200))
HI = [{"role": "user", "content": "Hi"}]


def test_a_client_that_disconnects_mid_stream_cancels_the_upstream_request(emulated_site, make_key, upstream):
    site = emulated_site("openai")
    raw = make_key(site, "streamer")
    upstream.script(flavor="openai", content=LONG, token_rate=10)  # 20 s to stream it all
    server = Server()
    try:
        client = openai.OpenAI(api_key=raw, base_url=f"http://127.0.0.1:{server.port}/v1", max_retries=5)
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
        texts = []
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                texts.append(chunk.choices[0].delta.content)
            if len(texts) == 3:
                break
        stream.close()  # the client goes away
        assert upstream.stream_aborted.wait(8), "the upstream stream outlived its client"
    finally:
        assert server.stop() == 0  # the worker's exit writes the ledger
    usage.flush()
    (row,) = AIUsage.objects.filter(site=site)
    assert (row.service, row.status, row.error_class) == ("v1.chat", "cancelled", "StreamCancelled")
    assert row.completion_tokens > 0 and row.cost > 0 and row.api_key.name == "streamer"


def test_past_the_stream_cap_a_stream_is_a_503_with_retry_after_in_each_dialect(emulated_site, make_key, upstream):
    site = emulated_site("openai")
    raw = make_key(site, "busy")
    upstream.script(flavor="openai", content=LONG, token_rate=20)
    server = Server(AI_MAX_STREAMS="1", GUNICORN_WORKERS="1")
    try:
        base = f"http://127.0.0.1:{server.port}"
        client = openai.OpenAI(api_key=raw, base_url=f"{base}/v1", max_retries=0)
        holding = client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
        assert next(iter(holding))  # one stream open: the worker holds its cap
        with pytest.raises(openai.APIStatusError) as refused:
            client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
        assert refused.value.status_code == 503 and refused.value.response.headers["retry-after"] == "1"
        assert refused.value.body["code"] == "overloaded"
        ant = anthropic.Anthropic(api_key=raw, base_url=base, max_retries=0)
        with pytest.raises(anthropic.APIStatusError) as refused_too:
            ant.messages.create(model="gpt-4o-mini", max_tokens=50, messages=HI, stream=True)
        assert refused_too.value.status_code == 503 and refused_too.value.body["error"]["type"] == "overloaded_error"
        holding.close()
    finally:
        assert server.stop() == 0
    usage.flush()
    statuses = sorted(AIUsage.objects.filter(site=site).values_list("status", "error_class"))
    assert statuses == [("cancelled", "StreamCancelled"), ("refused", "Overloaded"), ("refused", "Overloaded")]


def test_an_unpaced_stream_arrives_whole_and_in_order_in_each_dialect(emulated_site, make_key, upstream):
    """The production server writes the events a step had ready at once in one write (`panel.coalesce`): an
    upstream that sends its whole answer at once is where that happens, and nothing is lost, repeated or
    reordered on the way, in either dialect."""
    site = emulated_site("openai")
    raw = make_key(site, "unpaced")
    server = Server(GUNICORN_WORKERS="1")
    try:
        base = f"http://127.0.0.1:{server.port}"
        upstream.script(flavor="openai", content=LONG)  # no token rate: every chunk at once
        client = openai.OpenAI(api_key=raw, base_url=f"{base}/v1", max_retries=0)
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=HI, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == LONG
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
        upstream.script(flavor="openai", content=LONG)
        ant = anthropic.Anthropic(api_key=raw, base_url=base, max_retries=0)
        with ant.messages.stream(model="gpt-4o-mini", max_tokens=500, messages=HI) as events:
            assert "".join(events.text_stream) == LONG
            assert events.get_final_message().stop_reason == "end_turn"
    finally:
        assert server.stop() == 0
    usage.flush()
    assert sorted(AIUsage.objects.filter(site=site).values_list("status", flat=True)) == ["ok", "ok"]
