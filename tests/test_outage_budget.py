"""Issue 25, outages: the monthly cap stays hard while Redis is unreachable, and Redis coming back counts once.

While the shared cache is degraded (`panel.cache.ResilientRedisCache`), a capped call reserves in the site's
`BudgetPeriod` row (one conditional UPDATE) instead of this process's memory, so processes degraded together share
one cap; the database's changes are carried into the Redis counters once when Redis answers (by the period's
version), and a reseed after a restart re-holds the reservations still in flight. Real `redis-server`s (skipped
without the binary), real child processes, real SDK calls to the loopback emulator; no sleeps.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from decimal import Decimal

import pytest

from integrations.ai.gateway.service import AIService
from integrations.ai.governance import budget
from integrations.ai.governance.money import micro
from integrations.ai.ledger import usage
from integrations.models import AIUsage, BudgetPeriod

from .test_outages import RedisServer, _free_port, _site, needs_redis_server, priced  # noqa: F401 (fixture)
from .test_scaleout import ROOT, child_env

CHILD = """
import sys
sys.path.insert(0, "backend")
import django
django.setup()
from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers.errors import BudgetExceeded
site_id = int(sys.argv[1])
for line in sys.stdin:
    if line.strip() == "quit":
        break
    try:
        AIService(site=site_id).generate_content(line.strip(), model="gpt-4o", max_tokens=20)
        print("ok", flush=True)
    except BudgetExceeded as exc:
        print("refused " + type(exc).__name__, flush=True)
print("flushed" if usage.flush() else "not flushed", flush=True)
"""


class Child:
    """A process of its own whose Redis is unreachable (a closed port): it answers from its own memory."""

    def __init__(self, site_id: int, redis_url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(site_id)],
            cwd=ROOT,
            env=child_env(REDIS_URL=redis_url),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ask(self, line: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        if not answer:
            raise AssertionError(self.process.stderr.read()[-3000:] if self.process.stderr else "no answer")
        return answer

    def spend_until_refused(self, name: str, most: int = 60) -> int:
        for n in range(most):
            if self.ask(f"{name} call {n}") != "ok":
                return n
        raise AssertionError(f"{name}: {most} calls and no refusal")

    def finish(self) -> None:
        assert self.ask("quit") == "flushed"
        self.process.wait(timeout=60)


def _ledger_spend(site_id: int) -> Decimal:
    return sum((r.cost or Decimal(0) for r in AIUsage.objects.filter(site_id=site_id)), Decimal(0))


@pytest.mark.django_db(transaction=True)
def test_two_processes_without_redis_cannot_pass_the_cap_together(upstream, priced):  # noqa: F811
    """Both processes are degraded at once: the second has seeded its view of the month before the first spends
    the whole cap. Counting in their own memory, each would then spend up to the cap (twice it in all); reserving
    in the budget period, the second is refused what the first spent."""
    cap = Decimal("0.0008")  # room for a few calls' worst cases (~$0.0002 each)
    record = _site(upstream, monthly_budget=cap)
    dead = f"redis://127.0.0.1:{_free_port()}/0"
    first, second = Child(record.site_id, dead), Child(record.site_id, dead)
    try:
        assert second.ask("second call 0") == "ok"  # its month seeded, one call settled
        spent_by_first = first.spend_until_refused("first")
        spent_by_second = second.spend_until_refused("second")
    finally:
        for child in (first, second):
            if child.process.poll() is None:
                child.finish()
    assert spent_by_first >= 1
    ledger = _ledger_spend(record.site_id)
    assert ledger <= cap, (ledger, cap, spent_by_first, spent_by_second)
    period = BudgetPeriod.objects.get(site_id=record.site_id)
    assert period.spent == ledger  # each settled call counted once in the period (not again by the writer)
    assert period.reserved == 0


class PersistentRedis(RedisServer):
    """A redis-server that keeps its data across a kill (AOF, fsync on every write), as bin/services runs it."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="panel-redis-")

    def start(self) -> None:
        import time

        import redis

        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", self.dir),
                *("--appendonly", "yes", "--appendfsync", "always"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:  # until it accepts commands and has loaded its data (a readiness poll)
            try:
                if client.info("persistence").get("loading") == 0:
                    return
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.02)


def _use(server: RedisServer, settings, monkeypatch) -> None:
    from panel.cache import ResilientRedisCache

    settings.REDIS_URL = server.url
    settings.CACHES = {
        "default": {
            "BACKEND": "panel.cache.ResilientRedisCache",
            "LOCATION": server.url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
        }
    }
    monkeypatch.setattr(ResilientRedisCache, "RETRY_AFTER", 0.0)  # every operation tries Redis again


def _counters(server: RedisServer, site_id: int) -> tuple[int | None, int | None]:
    client = server.client()
    used_key, spent_key = budget.counter_keys(site_id)
    values = []
    for key in (used_key, spent_key):
        found = client.keys(f"*{key}")
        values.append(int(client.get(found[0])) if found else None)
    return values[0], values[1]


@needs_redis_server
@pytest.mark.parametrize("persistent", [True, False], ids=["redis-kept-its-data", "redis-restarted-empty"])
@pytest.mark.django_db(transaction=True)
def test_what_was_settled_in_the_database_is_counted_once_when_redis_answers(
    upstream,
    priced,  # noqa: F811
    settings,
    monkeypatch,
    persistent,
):
    """Calls settled in the budget period while Redis was down reach the Redis counters once: added to counters
    Redis kept (their seed predates them), not added to counters another process seeded after them (a restart
    without data)."""
    server = PersistentRedis() if persistent else RedisServer()
    server.start()
    try:
        _use(server, settings, monkeypatch)
        record = _site(upstream, monthly_budget=Decimal("1"))
        service = AIService(site=record.site)
        for n in range(3):
            service.generate_content(f"before {n}", model="gpt-4o", max_tokens=20)
        assert usage.flush()
        server.stop()
        for n in range(4):
            service.generate_content(f"during {n}", model="gpt-4o", max_tokens=20)
        period = BudgetPeriod.objects.get(site_id=record.site_id)
        assert period.reserved == 0 and period.version == 8  # four reserved and settled there
        server.start()
        kept = _counters(server, record.site_id)
        assert (kept != (None, None)) is persistent
        if not persistent:  # another process seeds the counters from the database before this one is back
            other = Child(record.site_id, server.url)
            assert other.ask("another process") == "ok"
            other.finish()
        for n in range(2):
            service.generate_content(f"after {n}", model="gpt-4o", max_tokens=20)
        assert usage.flush()
        used, spent = _counters(server, record.site_id)
        ledger = _ledger_spend(record.site_id)
        period.refresh_from_db()
        assert period.spent == ledger  # the database counted each call once too
        assert used == spent  # nothing in flight
        assert spent is not None and micro(ledger) <= spent <= micro(ledger) + 10, (spent, micro(ledger))  # ceil
    finally:
        server.stop()


@needs_redis_server
@pytest.mark.django_db(transaction=True)
def test_a_reseed_after_a_redis_restart_keeps_the_reservations_in_flight(priced, settings, monkeypatch):  # noqa: F811
    """Redis restarts empty while this process holds reservations: the next reservation seeds the counters from
    the database (which never saw them) and adds them back, so the cap still counts them."""
    from .factories import SiteFactory

    server = RedisServer()
    server.start()
    try:
        _use(server, settings, monkeypatch)
        site = SiteFactory()
        cap = Decimal("0.01")
        held = [budget.reserve(site.pk, cap, Decimal("0.002")) for _ in range(2)]
        server.client().flushall()  # a restart without persistence
        third = budget.reserve(site.pk, cap, Decimal("0.003"))
        assert _counters(server, site.pk) == (micro(Decimal("0.007")), 0)
        for reservation in (*held, third):
            assert reservation is not None
            reservation.settle(Decimal("0.001"))
        assert _counters(server, site.pk) == (micro(Decimal("0.003")), micro(Decimal("0.003")))
    finally:
        server.stop()
