"""No poisoned ledger, no double billing (issue 25, "Ledger and money"): text no database stores never
reaches a row, a row the database refuses is set aside instead of stopping every later row, and every
row carries its ledger_key before it is first handed over, whichever path writes it."""

from __future__ import annotations

import json
import os
from decimal import Decimal

import pytest

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.ledger import writer as ledger_writer
from integrations.ai.providers import errors
from integrations.ai.providers.types import Attempt, GenerationResult
from integrations.models import AIUsage, LedgerDeadLetter, ModelPrice

from .factories import AIProviderSettingsFactory, SiteMembershipFactory, SuperUserFactory, UserFactory

OAI_KEY = "sk-proj-" + "d7" * 24
needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (REDIS_URL)")


def openai_site(upstream):
    return AIProviderSettingsFactory(
        provider_type="openai", openai_api_key=OAI_KEY, openai_base_url=upstream.openai_base_url
    )


def served(site_id: int, service: str, **fields) -> usage.CallRecord:
    """A call record as the gateway makes it: one attempt that the vendor answered with `fields`."""
    result = GenerationResult(
        **{
            "content": "hi",
            "model": "gpt-4o",
            "provider": "openai",
            "prompt_tokens": 3,
            "completion_tokens": 4,
            "total_tokens": 7,
            "cost": Decimal("0.001"),
            **fields,
        }
    )
    return usage.CallRecord(site_id, service, "gpt-4o", attempts=[Attempt("openai", "gpt-4o", 1, 5.0, result=result)])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("model", ["gpt-4o\x00", "gpt-\ud800-4o"])
def test_a_model_id_no_database_stores_is_refused_before_any_request(upstream, model):
    record = openai_site(upstream)
    with pytest.raises(errors.InvalidRequest, match="model"):
        AIService(site=record.site).generate_content("hello", model=model)
    assert upstream.requests == []
    AIService(site=record.site).generate_content("billing goes on")
    assert usage.flush(timeout=10)
    assert AIUsage.objects.filter(site=record.site, status="ok").count() == 1


@pytest.mark.django_db(transaction=True)
def test_text_a_vendor_sends_back_is_stored_safely(upstream):
    record = openai_site(upstream)
    usage.write_ledger(served(record.site_id, "echo", model="gpt\x00-4o\ud800", request_id="req\x00"), {})
    assert usage.flush(timeout=10)
    row = AIUsage.objects.get(service="echo")
    assert row.served_model == "gpt\ufffd-4o\ufffd" and row.request_id == "req\ufffd"


@pytest.mark.django_db(transaction=True)
def test_a_row_the_database_refuses_is_set_aside_and_every_other_row_is_written(upstream, client, caplog):
    record = openai_site(upstream)
    site_id = record.site_id
    usage.write_ledger(served(site_id, "before"), {})
    usage.write_ledger(served(site_id, "poison", prompt_tokens=2**64, total_tokens=2**64), {})  # no column holds it
    usage.write_ledger(served(site_id, "after"), {})
    AIService(site=record.site, service="call").generate_content("a real call behind it")
    assert usage.flush(timeout=10)  # before: the batch was retried for ever, and nothing behind it was written
    assert set(AIUsage.objects.values_list("service", flat=True)) == {"before", "after", "call"}
    letter = LedgerDeadLetter.objects.get()
    assert letter.site_id == site_id and letter.cost == Decimal("0.001")
    assert json.loads(letter.payload)["service"] == "poison" and letter.ledger_key.endswith(":0")
    assert "set aside" in caplog.text
    assert "OverflowError" in letter.error or "DataError" in letter.error  # SQLite, PostgreSQL

    client.force_login(SuperUserFactory())
    page = client.get("/admin/integrations/aiusage/dashboard/")
    assert page.context["set_aside"] == 1 and 'data-total="set_aside">1<' in page.content.decode()
    other = AIProviderSettingsFactory()  # a site admin of another site sees none of it
    admin = UserFactory()
    SiteMembershipFactory(user=admin, site=other.site)
    from django.contrib.auth.models import Permission

    admin.user_permissions.set(Permission.objects.filter(codename="view_aiusage"))
    client.force_login(admin)
    assert client.get("/admin/integrations/aiusage/dashboard/").context["set_aside"] == 0


@pytest.mark.django_db(transaction=True)
def test_every_row_has_its_ledger_key_before_it_is_handed_over(upstream):
    """A call handed over twice (a Redis push that timed out after arriving, then written directly) is
    written once: its rows' keys come from the call's record, not from the path that writes them."""
    record = openai_site(upstream)
    call = served(record.site_id, "twice")
    keys = [row["ledger_key"] for row in usage.row_fields(call, {})]
    assert keys == [row["ledger_key"] for row in usage.row_fields(call, {})] == [f"{call.key}:0"]
    ledger_writer.submit((call, {}, None))
    ledger_writer.submit((call, {}, None))
    assert usage.flush(timeout=10)
    assert AIUsage.objects.filter(service="twice").count() == 1
    AIService(site=record.site, service="plain").generate_content("in-process path")
    assert usage.flush(timeout=10)
    assert AIUsage.objects.filter(service="plain", ledger_key__isnull=False).count() == 1


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_call_pushed_to_redis_and_also_written_directly_is_billed_once(upstream):
    record = openai_site(upstream)
    ModelPrice.objects.create(
        provider="openai", model_id="gpt-4o", prompt_per_million=Decimal(1), completion_per_million=Decimal(1)
    )
    call = served(record.site_id, "both-paths")
    redis_ledger = ledger_writer._redis_ledger()
    assert redis_ledger is not None and redis_ledger.push((call, {}, None))  # arrived, though the caller timed out
    ledger_writer._local.put((call, {}, None))  # ... and the caller wrote it itself
    assert usage.flush(timeout=30)
    assert AIUsage.objects.filter(service="both-paths").count() == 1
