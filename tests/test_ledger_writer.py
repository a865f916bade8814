"""The usage ledger off the caller's thread, with no row lost, and the budget counters (issue 12).

The subprocess tests run a real second Python process against the test database and the loopback
emulator, stop it (SIGTERM, or SIGKILL on the Redis path) and count rows against the requests the
emulator recorded. Redis tests (`AI_LEDGER_QUEUE=redis`) run only when REDIS_URL is set (CI's second pass).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers import errors
from integrations.models import AIUsage, BudgetPeriod, ModelPrice

from .factories import AIProviderSettingsFactory
from .test_scaleout import child_env

ROOT = Path(__file__).resolve().parent.parent
OAI_KEY = "sk-proj-" + "6a" * 24
needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (REDIS_URL)")


@pytest.fixture
def priced(db):
    return ModelPrice.objects.create(
        provider="openai", model_id="gpt-4o", prompt_per_million=Decimal("2.5"), completion_per_million=Decimal("10")
    )


def openai_site(upstream, cap: str | None = None):
    return AIProviderSettingsFactory(
        provider_type="openai",
        openai_api_key=OAI_KEY,
        openai_base_url=upstream.openai_base_url,
        monthly_budget=Decimal(cap) if cap is not None else None,
    )


@pytest.mark.django_db(transaction=True)
def test_a_warm_budgeted_call_makes_no_query_on_the_calling_thread(upstream, priced, settings):
    settings.AI_RETRY_BACKOFF = 0.01
    record = openai_site(upstream, cap="100")
    AIService(site=record.site).generate_content("warm up", model="gpt-4o", max_tokens=20)
    assert usage.flush()
    upstream.script(flavor="openai", status=500, times=1)  # one failed attempt, then the retry serves
    with CaptureQueriesContext(connection) as queries:
        result = AIService(site=record.site).generate_content("The measured call", model="gpt-4o", max_tokens=20)
    assert [q["sql"] for q in queries.captured_queries] == []
    assert result.attempts == 2
    assert usage.flush()
    rows = list(AIUsage.objects.filter(site=record.site).order_by("id"))
    assert len(rows) == len(upstream.requests) == 3
    assert [r.status for r in rows] == ["ok", "error", "ok"]
    # the writer added the written costs to the month's budget period
    period = BudgetPeriod.objects.get(site=record.site)
    assert period.spent == sum((r.cost or Decimal(0) for r in rows), Decimal(0)) > 0


@pytest.mark.django_db(transaction=True)
def test_rows_carry_the_time_the_call_ended_not_the_time_they_were_written(upstream, priced):
    """The writer batches rows for a while: a row keeps its call's time, so one queued across midnight keeps
    its day in the ledger and in the daily roll-ups."""
    import datetime

    from django.utils import timezone

    from integrations.models import UsageDaily

    record = openai_site(upstream)
    AIService(site=record.site).generate_content("a call", model="gpt-4o", max_tokens=20)
    ended = timezone.now()
    assert usage.flush()
    assert AIUsage.objects.get(site=record.site).created_at <= ended

    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    late = usage.CallRecord(
        record.site_id,
        "late",
        "gpt-4o",
        refusal=("openai", errors.BudgetExceeded("capped")),
        ended_at=midnight.timestamp() - 0.5,
    )
    usage.write_ledger(late, {})
    assert usage.flush()
    row = AIUsage.objects.get(site=record.site, service="late")
    assert row.created_at == midnight - datetime.timedelta(seconds=0.5)
    yesterday = (midnight - datetime.timedelta(days=1)).date()
    assert UsageDaily.objects.get(site=record.site, service="late").day == yesterday


@pytest.mark.django_db(transaction=True)
def test_rows_drained_twice_are_written_and_billed_once(upstream, priced):
    """A drainer that died between its commit and its acknowledgement leaves its batch to be drained again:
    rows that travelled through Redis carry a ledger_key, and a second write of them is skipped."""
    from integrations.ai.ledger.writer import write_rows
    from integrations.models import UsageDaily

    record = openai_site(upstream, cap="100")
    AIService(site=record.site).generate_content("seed the period", model="gpt-4o", max_tokens=20)
    assert usage.flush()
    spent_before = BudgetPeriod.objects.get(site=record.site).spent
    batch = [
        {
            "site_id": record.site_id,
            "service": "redis",
            "provider": "openai",
            "served_model": "gpt-4o",
            "status": "ok",
            "cost": Decimal("0.25"),
            "total_tokens": 10,
            "ledger_key": f"call-{n}:0",
        }
        for n in range(3)
    ]
    write_rows(batch)
    write_rows([*batch[1:], {**batch[0], "ledger_key": "call-3:0"}])  # drained again, with one new call
    assert AIUsage.objects.filter(site=record.site, service="redis").count() == 4
    assert UsageDaily.objects.get(site=record.site, service="redis").requests == 4
    assert BudgetPeriod.objects.get(site=record.site).spent == spent_before + Decimal("1.00")


CHILD = """
import json, os, signal, sys, threading
sys.path.insert(0, "backend")
site_id, mode, workers = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
stop = threading.Event()
if mode == "graceful":  # a server's own stop handler, installed before Django (the ledger's handler chains to it)
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
import django
django.setup()
from integrations.ai.providers.errors import AIProviderError
from integrations.ai.gateway.service import AIService
lock = threading.Lock()
counts = {"calls": 0, "hits": 0}
limit = int(os.environ.get("CHILD_CALLS", "0"))

def work(n):
    i = 0
    while not stop.is_set() and (not limit or i < limit):
        prompt = f"shared prompt {i % 2}" if i % 3 == 0 else f"worker {n} call {i}"
        try:
            result = AIService(site=site_id).generate_content(prompt, temperature=0 if i % 3 == 0 else 0.7,
                                                              max_tokens=20)
            with lock:
                counts["calls"] += 1
                counts["hits"] += result.cached
        except AIProviderError:
            pass
        i += 1
        if i == 8 and n == 0:  # past a repeat of its first shared prompt: a cache hit
            print("loaded", flush=True)

threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(counts), flush=True)
if mode == "linger":  # everything handed over; now wait to be stopped
    print("pushed", flush=True)
    threading.Event().wait(120)
elif mode == "celery":  # a Celery worker stopping: its shutdown signal, then an exit that runs no atexit hook
    import panel.celery
    from celery import signals
    signals.worker_shutdown.send(sender=None)
    os._exit(0)
"""


# The child's writer holds its rows in memory until the process stops (no interval write, no full batch).
HELD_IN_MEMORY = {"AI_LEDGER_FLUSH_INTERVAL": "600", "AI_LEDGER_BATCH_SIZE": "100000", "REDIS_URL": ""}


@contextlib.contextmanager
def running_child(site_id: int, mode: str, workers: int, **env_extra: str) -> Iterator[subprocess.Popen]:
    """The CHILD script in its own process; killed on the way out if a failed test left it running."""
    env = child_env(**env_extra)
    if "REDIS_URL" in env_extra and not env_extra["REDIS_URL"]:
        env.pop("REDIS_URL")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(site_id), mode, str(workers)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()


def wait_for_line(child: subprocess.Popen, expected: str) -> list[str]:
    lines = []
    for line in child.stdout:
        lines.append(line.strip())
        if line.strip() == expected:
            return lines
    raise AssertionError(f"child ended before {expected!r}: {child.stderr.read()[-2000:]}")


def assert_one_row_per_request(site, upstream, hits: int | None = None) -> None:
    rows = AIUsage.objects.filter(site=site)
    assert rows.exclude(status="cached").count() == len(upstream.requests) > 0
    if hits is not None:
        assert rows.filter(status="cached").count() == hits


@pytest.mark.django_db(transaction=True)
def test_sigterm_mid_load_loses_no_row(upstream, settings):
    record = openai_site(upstream)
    upstream.script(flavor="openai", status=500, times=4)  # some calls take two attempts
    upstream.script(flavor="openai", delay=0.02, times=10_000)
    # rows stay in the child's memory until it flushes (no interval write), so only the stop path saves them
    with running_child(record.site_id, "graceful", 6, **HELD_IN_MEMORY) as child:
        wait_for_line(child, "loaded")
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err[-2000:]
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts["calls"] > 6 and counts["hits"] > 0
    assert_one_row_per_request(record.site, upstream, hits=counts["hits"])
    assert AIUsage.objects.filter(site=record.site, status="error").count() == 4


@pytest.mark.django_db(transaction=True)
def test_sigterm_with_the_default_handler_writes_queued_rows_then_exits(upstream):
    record = openai_site(upstream)
    with running_child(record.site_id, "linger", 4, CHILD_CALLS="5", **HELD_IN_MEMORY) as child:
        lines = wait_for_line(child, "pushed")
        assert AIUsage.objects.filter(site=record.site).count() == 0  # still queued in the child
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGTERM  # it still dies of SIGTERM, as before
    counts = json.loads(lines[-2])
    assert counts["calls"] == 20
    assert_one_row_per_request(record.site, upstream, hits=counts["hits"])


@pytest.mark.django_db(transaction=True)
def test_a_full_queue_makes_callers_write_their_own_rows(upstream):
    record = openai_site(upstream)
    # The writer holds two calls and waits ten minutes for more: every call after those two finds the
    # queue full and writes its own rows (back-pressure), none is dropped.
    with running_child(
        record.site_id, "linger", 1, CHILD_CALLS="6", AI_LEDGER_QUEUE_SIZE="2", **HELD_IN_MEMORY
    ) as child:
        lines = wait_for_line(child, "pushed")
        assert AIUsage.objects.filter(site=record.site).count() == 6 - 2
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
    counts = json.loads(lines[-2])
    assert counts["calls"] == 6
    assert_one_row_per_request(record.site, upstream, hits=counts["hits"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["exit", "celery"])
def test_rows_queued_at_a_normal_exit_or_a_celery_worker_shutdown_are_written(upstream, mode):
    record = openai_site(upstream)
    with running_child(record.site_id, mode, 2, CHILD_CALLS="4", **HELD_IN_MEMORY) as child:
        out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err[-2000:]
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts["calls"] == 8
    assert_one_row_per_request(record.site, upstream, hits=counts["hits"])


@contextlib.contextmanager
def ledger_table_locked():
    """Hold a write lock on the ledger table from this process, so another process's writer must wait."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DELETE FROM integrations_aiusage WHERE id = -1")
        else:
            cursor.execute("LOCK TABLE integrations_aiusage IN SHARE ROW EXCLUSIVE MODE")
        yield


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_killed_process_loses_no_row_pushed_to_redis(upstream, settings):
    settings.AI_LEDGER_QUEUE = "redis"  # this process drains the list too
    record = openai_site(upstream)
    upstream.script(flavor="openai", status=500, times=3)
    # Rows the Redis path did not take would sit in the child's memory and die with it. While the ledger
    # table is locked, the child's drainer takes rows but cannot write them.
    with (
        running_child(
            record.site_id,
            "linger",
            6,
            CHILD_CALLS="6",
            AI_LEDGER_FLUSH_INTERVAL="600",
            AI_LEDGER_BATCH_SIZE="5",
            AI_LEDGER_QUEUE="redis",
        ) as child,
        ledger_table_locked(),
    ):
        lines = wait_for_line(child, "pushed")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        # Read under the lock: once it is released, this process's own drainer (started by an earlier
        # test) may write what it took from the list at once.
        assert AIUsage.objects.filter(site=record.site).count() == 0
    assert child.returncode == -signal.SIGKILL
    counts = json.loads(lines[-2])
    assert usage.flush(timeout=60)  # this process drains the list and re-queues the dead one's batch
    assert_one_row_per_request(record.site, upstream, hits=counts["hits"])
    assert AIUsage.objects.filter(site=record.site, status="error").count() == 3


@pytest.mark.django_db(transaction=True)
def test_cap_holds_after_a_restart(upstream, priced):
    record = openai_site(upstream, cap="0.0006")
    service = AIService(site=record.site)
    served = 0
    with pytest.raises(errors.BudgetExceeded):
        for n in range(50):
            service.generate_content(f"Spend {n}", model="gpt-4o", max_tokens=20)
            served += 1
    assert usage.flush()
    cache.clear()  # a restart with a local-memory cache: cold counters, seeded from the database
    upstream.reset()
    with pytest.raises(errors.BudgetExceeded):
        service.generate_content("After the restart", model="gpt-4o", max_tokens=20)
    assert upstream.requests == []
    spent = sum((r.cost for r in AIUsage.objects.filter(site=record.site)), Decimal(0))
    assert 0 < spent <= Decimal("0.0006") and served > 0
    assert BudgetPeriod.objects.get(site=record.site).spent == spent


@pytest.mark.django_db(transaction=True)
def test_concurrent_threads_never_pass_the_cap_and_the_period_matches_the_ledger(upstream, priced):
    cap = Decimal("0.002")
    record = openai_site(upstream, cap=str(cap))
    upstream.script(flavor="openai", delay=0.05, times=100)
    outcomes: list[str] = []
    start = threading.Barrier(24)

    def spend(n: int) -> None:
        start.wait()
        try:
            AIService(site=record.site).generate_content(f"Spend {n}", model="gpt-4o", max_tokens=20)
            outcomes.append("ok")
        except errors.BudgetExceeded:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert usage.flush()
    spent = sum((r.cost for r in AIUsage.objects.filter(site=record.site)), Decimal(0))
    assert outcomes.count("ok") > 0 and outcomes.count("refused") > 0
    assert spent <= cap
    assert len(upstream.requests) == outcomes.count("ok")
    assert BudgetPeriod.objects.get(site=record.site).spent == spent


SPENDER = """
import json, sys, threading
sys.path.insert(0, "backend")
import django
django.setup()
from integrations.ai.providers.errors import BudgetExceeded
from integrations.ai.gateway.service import AIService
site_id, tag = int(sys.argv[1]), sys.argv[2]
out = []
def spend(n):
    try:
        AIService(site=site_id).generate_content(f"{tag} spends {n}", model="gpt-4o", max_tokens=20)
        out.append("ok")
    except BudgetExceeded:
        out.append("refused")
threads = [threading.Thread(target=spend, args=(n,)) for n in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(out))
"""


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_processes_sharing_redis_never_pass_the_cap(upstream, priced):
    cap = Decimal("0.002")
    record = openai_site(upstream, cap=str(cap))
    upstream.script(flavor="openai", delay=0.1, times=100)
    env = child_env()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", SPENDER, str(record.site_id), f"p{n}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    outcomes: list[str] = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err[-2000:]
        outcomes += json.loads(out.strip().splitlines()[-1])
    assert usage.flush()
    spent = sum((r.cost for r in AIUsage.objects.filter(site=record.site)), Decimal(0))
    assert outcomes.count("ok") > 0 and outcomes.count("refused") > 0
    assert spent <= cap
    assert len(upstream.requests) == outcomes.count("ok")
    assert BudgetPeriod.objects.get(site=record.site).spent == spent
