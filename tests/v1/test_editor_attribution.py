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
    # this site's rows: a row another test's call wrote after its site was deleted is kept with no site (store)
    rows = AIUsage.objects.filter(site=site).order_by("id")
    assert [(r.user_id, r.status) for r in rows] == [(owner.pk, "ok"), (owner.pk, "ok")]
