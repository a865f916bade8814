"""Issue 27 (1): a /v1 call's ledger rows name the user who made its virtual key (the real SDK as client)."""

from __future__ import annotations

import pytest

from integrations.ai.ledger import usage
from integrations.models import AIUsage

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_keys_calls_are_its_creators_plain_and_streamed(emulated_site, make_key, oai, owner):
    site = emulated_site("openai")
    client = oai(make_key(site))
    messages = [{"role": "user", "content": "Name a bakery"}]
    client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=20)
    for _ in client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=20, stream=True):
        pass
    usage.flush()
    assert [(r.user_id, r.status) for r in AIUsage.objects.order_by("id")] == [(owner.pk, "ok"), (owner.pk, "ok")]
