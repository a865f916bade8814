"""The /v1 endpoints served by the production server (`bin/serve`, gunicorn), the openai SDK as the client."""

from __future__ import annotations

import openai
import pytest

from integrations.ai.ledger import usage
from integrations.models import AIUsage

from ..test_server_config import Server

pytestmark = pytest.mark.django_db(transaction=True)


def test_bin_serve_answers_the_openai_sdk_plain_and_streamed(emulated_site, make_key):
    site = emulated_site("anthropic")
    raw = make_key(site, "server")
    server = Server()
    try:
        client = openai.OpenAI(api_key=raw, base_url=f"http://127.0.0.1:{server.port}/v1", max_retries=5)
        reply = client.chat.completions.create(model="claude-3-5-haiku", messages=[{"role": "user", "content": "Hi"}])
        assert reply.choices[0].message.content.startswith("Emulated anthropic reply")
        streamed = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(
                model="claude-3-5-haiku", messages=[{"role": "user", "content": "Hi"}], stream=True
            )
            if c.choices
        )
        assert streamed == reply.choices[0].message.content
        assert {m.id for m in client.models.list()} >= {"claude-3-5-haiku", "claude-sonnet-4"}
    finally:
        assert server.stop() == 0
    usage.flush()
    assert set(AIUsage.objects.values_list("site_id", "service", "status")) == {(site.pk, "v1.chat", "ok")}
    assert set(AIUsage.objects.values_list("api_key__name", flat=True)) == {"server"}
