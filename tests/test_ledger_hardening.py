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
def test_a_call_pushed_to_redis_and_also_written_directly_is_billed_once(upstream, settings):
    settings.AI_LEDGER_QUEUE = "redis"
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


def test_the_ledger_queue_setting_is_checked(settings):
    from django.core.exceptions import ImproperlyConfigured

    from integrations.ai.runtime import conf

    settings.AI_LEDGER_QUEUE = "kafka"
    with pytest.raises(ImproperlyConfigured, match="AI_LEDGER_QUEUE must be one of local, redis"):
        conf.ledger_queue()
    settings.AI_LEDGER_QUEUE = "redis"
    settings.REDIS_URL = ""
    with pytest.raises(ImproperlyConfigured, match="needs REDIS_URL"):
        conf.ledger_queue()
    settings.AI_LEDGER_QUEUE = " Local "
    assert conf.ledger_queue() == "local"


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_calls_an_earlier_deployment_left_in_redis_are_written_once_at_start(upstream, settings):
    """A deployment that queued through Redis (`AI_LEDGER_QUEUE=redis`), then switched back to the default,
    still has calls in the shared list and in a stopped process's processing list: the next process to
    start writes them, once each, and leaves both lists empty."""
    from urllib.parse import urlsplit, urlunsplit

    import redis

    from integrations.ai.ledger import journal as ledger_journal

    # a database of this Redis no drainer of an earlier test watches
    parts = urlsplit(os.environ["REDIS_URL"])
    settings.REDIS_URL = urlunsplit(parts._replace(path="/7"))
    settings.AI_LEDGER_QUEUE = "redis"
    record = openai_site(upstream)
    ledger = ledger_writer._RedisLedger(settings.REDIS_URL)
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()  # this test's own database: nothing an earlier run left
    dead = f"{ledger.key}:processing:{ledger.host}:999999999:gone"
    payloads = [
        ledger_journal.encode(
            ledger_journal.keyed(ledger_writer._fields_of((served(record.site_id, f"left-{n}"), {}, None)))
        )
        for n in range(3)
    ]
    client.rpush(ledger.key, payloads[0], payloads[1])
    client.rpush(dead, payloads[2])

    settings.AI_LEDGER_QUEUE = "local"
    assert ledger_writer.drain_redis_leftovers() == 3
    assert sorted(AIUsage.objects.filter(site=record.site).values_list("service", flat=True)) == [
        "left-0",
        "left-1",
        "left-2",
    ]
    assert client.llen(ledger.key) == 0 and not client.exists(dead)
    assert ledger_writer.drain_redis_leftovers() == 0  # nothing twice
    assert AIUsage.objects.filter(site=record.site).count() == 3


@pytest.mark.parametrize(
    "env, message",
    [
        ({"AI_LEDGER_QUEUE": "kafka"}, "must be one of"),
        ({"AI_LEDGER_QUEUE": "redis", "REDIS_URL": ""}, "needs REDIS_URL"),
    ],
)
def test_a_process_with_a_bad_ledger_queue_does_not_start(env, message):
    """Checked when Django loads the app: met first by a call's ledger hand-off, the error would be logged and
    that call's rows lost (`ledger_writer.submit` never raises)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = "import sys; sys.path.insert(0, 'backend'); import django; django.setup()"
    child = {**os.environ, "DJANGO_SETTINGS_MODULE": "panel.settings_test", **env}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=child, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and message in done.stderr, done.stderr[-2000:]
