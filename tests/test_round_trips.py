"""Round trips the production shape (PostgreSQL + Redis) makes per call (issue 22).

Under load every round trip from a request thread gives up the interpreter lock and waits for it and for
the other process to be scheduled; the production shape served a third of SQLite's requests per second
while it made eight Redis commands and two queries per warm call. These tests pin what a warm call costs
there: the Redis commands its thread sends (counted by the Redis server itself, with MONITOR), and that the
kept database connection's health check makes no query yet still replaces a connection the server ended.
They run in the PostgreSQL + Redis pass and are skipped on SQLite + local memory.
"""

from __future__ import annotations

import hashlib
import os
import select
from decimal import Decimal

import pytest
from django.db import close_old_connections, connection

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.models import AIUsage, ModelPrice

from .factories import AIProviderSettingsFactory

OAI_KEY = "sk-proj-" + "7c" * 24
MARKER = "round-trips-test-marker"
needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (REDIS_URL)")


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _commands_during(call) -> list[str]:
    """Every command the Redis server received while `call` ran, as MONITOR shows them, except those of
    Lua scripts (they run inside the server: no round trip) and of the ledger drainer thread (its own
    processing and heartbeat keys), up to a marker sent after the call returned."""
    import redis

    client, marker = redis.Redis.from_url(os.environ["REDIS_URL"]), redis.Redis.from_url(os.environ["REDIS_URL"])
    marker.ping()  # connected before: its handshake is not in the count
    with client.monitor() as monitor:
        call()
        marker.echo(MARKER)
        seen = []
        while True:
            line = monitor.next_command()
            if MARKER in line["command"]:
                break
            if line["client_type"] == "lua" or ":processing:" in line["command"] or ":alive:" in line["command"]:
                continue
            seen.append(line["command"])
    return seen


def _warm_capped_service(upstream, settings, queue: str = "local", **caps) -> tuple[AIService, object]:
    """A site on the upstream with a priced gpt-4o and the given caps (`monthly_budget` 100 unless given), its
    service warmed by one call whose ledger row is written: what a counted call then sends is its own. The site's
    settings version is read once per `AI_SETTINGS_CHECK_INTERVAL`, not per call: out of the count."""
    settings.AI_SETTINGS_CHECK_INTERVAL = 3600
    settings.AI_LEDGER_QUEUE = queue
    _price_gpt_4o()
    record = AIProviderSettingsFactory(
        provider_type="openai",
        openai_api_key=OAI_KEY,
        openai_base_url=upstream.openai_base_url,
        **{"monthly_budget": Decimal("100"), **caps},
    )
    service = AIService(site=record.site)
    service.generate_content("warm up", model="gpt-4o", max_tokens=20)
    assert usage.flush()
    return service, record


def _price_gpt_4o() -> None:
    ModelPrice.objects.create(
        provider="openai", model_id="gpt-4o", prompt_per_million=Decimal("2.5"), completion_per_million=Decimal("10")
    )


@needs_redis
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "queue, expected",
    [("local", ["EVALSHA", "EVALSHA"]), ("redis", ["EVALSHA", "RPUSH", "EVALSHA"])],
)
def test_a_warm_budgeted_call_sends_two_redis_commands(upstream, settings, queue, expected):
    """Reserve the worst case while reading the provider's health and the model's overshoot ratio, then settle:
    one command each (Django's `incr` alone made two, an EXISTS and an INCRBY, so this call made eight; the ratio
    read on its own, and once more for the primary as a failover candidate, made six; the read and the
    reservation apart, three). The ledger rows stay in the process (journaled, written in batches) unless
    `AI_LEDGER_QUEUE=redis` pushes them: one command more."""
    service, record = _warm_capped_service(upstream, settings, queue)

    commands = _commands_during(lambda: service.generate_content("The counted call", model="gpt-4o", max_tokens=20))

    names = [command.split()[0].upper() for command in commands]
    assert names == expected, commands
    # the reservation, with the health and the ratio read in it
    assert ":used" in commands[0] and ":cooldown:" in commands[0] and ":ai:budget:overshoot:" in commands[0]
    assert ":used" in commands[-1] and ":spent" in commands[-1]  # the settlement: both counters at once
    assert usage.flush()
    assert AIUsage.objects.filter(site=record.site, status="ok").count() == 2


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_budget_windows_move_in_the_monthly_caps_commands(upstream, settings):
    """A daily and a weekly cap on top of the monthly one: the windows' holds move in the monthly cap's own
    reservation command, and their settlements in its settlement (each window used to cost a command to reserve
    and two to settle: eight commands for this call, then four with the windows batched, now two)."""
    service, record = _warm_capped_service(upstream, settings, daily_budget=Decimal("10"), weekly_budget=Decimal("50"))

    commands = _commands_during(lambda: service.generate_content("The counted call", model="gpt-4o", max_tokens=20))

    assert [command.split()[0].upper() for command in commands] == ["EVALSHA"] * 2, commands
    reservation, settlement = commands
    assert ":ai:budget:" in reservation and ":cooldown:" in reservation  # the month's hold, the health read
    assert all(":ai:window:" in c and ":day:" in c and ":week:" in c for c in commands)  # with both windows'
    assert ":spent" in settlement
    assert usage.flush()
    assert AIUsage.objects.filter(site=record.site, status="ok").count() == 2


def _statements(run) -> list[str]:
    """The statements the kept connection sent to the server while `run` ran (psycopg's protocol trace)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as trace:
        pgconn = connection.connection.pgconn
        pgconn.trace(trace.fileno())
        try:
            run()
        finally:
            pgconn.untrace()
        trace.seek(0)
        return [
            line
            for line in trace.read().splitlines()
            if line.split("\t")[1:2] == ["F"] and line.split("\t")[3:4] in (["Query"], ["Parse"])
        ]


@pytest.fixture(params=["pooled", "kept"])
def connection_shape(request):
    """The production shape's connections (handed from request to request, `DATABASE_POOL` on: here at most one
    kept idle, so the one taken again is the one traced) or a kept connection per thread (`DATABASE_POOL=off`)."""
    if not _postgres():
        pytest.skip("PostgreSQL's backend (panel.db.postgresql)")
    from integrations.ai.ledger import writer as ledger_writer
    from panel.db.postgresql.base import close_idle

    # the ledger writer hands its connection to the same pool when it goes idle: idle before the test starts
    assert ledger_writer.quiesce()
    db = connection.settings_dict
    saved = {name: db.get(name) for name in ("CONN_MAX_AGE", "POOL_MAX_IDLE", "POOL_MAX_AGE")}
    connection.close()
    close_idle()
    pooled = request.param == "pooled"
    db.update(CONN_MAX_AGE=0 if pooled else 60, POOL_MAX_IDLE=1 if pooled else 0, POOL_MAX_AGE=60)
    try:
        yield request.param
    finally:
        connection.close()
        close_idle()
        db.update(saved)


def test_production_settings_hand_postgresql_connections_on():
    """Under ASGI each request runs on a fresh thread: a kept per-thread connection was a new one per request."""
    if not _postgres():
        pytest.skip("PostgreSQL's backend (panel.db.postgresql)")
    db = connection.settings_dict
    assert db["POOL_MAX_IDLE"] and db["POOL_MAX_AGE"] and db["CONN_MAX_AGE"] == 0


@pytest.mark.django_db(transaction=True)
def test_connections_are_handed_from_request_to_request_across_threads(connection_shape):
    if connection_shape != "pooled":
        pytest.skip("the production shape")
    import threading
    import time

    reused: list[bool] = []  # per request: was the server connection it used opened before it started?

    def request() -> None:  # as Django under ASGI: a fresh thread per request, its connection closed at the end
        started = time.monotonic()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        reused.append(connection.connection._panel_opened_at < started)
        connection.close()

    for _ in range(3):
        thread = threading.Thread(target=request)
        thread.start()
        thread.join()
    # the second and third took the one handed back before them (another thread of the process, such as the
    # ledger writer, may hand one back meanwhile: whichever it is, none is opened for them)
    assert reused[1:] == [True, True], reused


@pytest.mark.django_db(transaction=True)
def test_the_connection_a_request_uses_is_health_checked_without_a_query(connection_shape):
    assert connection.settings_dict["CONN_HEALTH_CHECKS"]

    def request() -> None:
        close_old_connections()  # what Django does when a request starts: the next use checks the connection
        with connection.cursor() as cursor:
            cursor.execute("SELECT 42")

    connection.ensure_connection()
    traced = connection.connection
    statements = _statements(request)

    assert connection.connection is traced  # the request reused it (no other thread handed one to the pool)

    assert connection_shape == "pooled" or connection.health_check_done
    assert len(statements) == 1 and "SELECT 42" in statements[0], statements


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_ended_is_replaced_before_the_next_request_uses_it(connection_shape):
    import psycopg

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    kept = connection.connection
    if connection_shape == "pooled":
        close_old_connections()  # the request ends: its connection waits idle for the next one
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "localhost",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"],
        dbname=db["NAME"],
        autocommit=True,
    ) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
    readable, _, _ = select.select([kept.fileno()], [], [], 10)  # the server's goodbye has arrived
    assert readable

    close_old_connections()  # the next request starts
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid
    assert connection.connection is not kept


@pytest.mark.django_db
def test_the_ledger_journal_directory_stays_the_one_of_djangos_postgresql_backend(settings, tmp_path):
    """Swapping in panel.db.postgresql must not move the journals: a worker killed before the upgrade left
    its unwritten rows there, and the next start replays that directory."""
    if not _postgres():
        pytest.skip("PostgreSQL's backend (panel.db.postgresql)")
    from integrations.ai.ledger import journal

    settings.AI_LEDGER_JOURNAL_DIR = str(tmp_path)
    db = connection.settings_dict
    assert db["ENGINE"] == "panel.db.postgresql"
    stock = f"django.db.backends.postgresql|{db.get('HOST') or ''}|{db.get('PORT') or ''}|{db['NAME']}"
    assert journal._directory() == tmp_path / hashlib.sha256(stock.encode()).hexdigest()[:16]


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_warm_token_call_makes_no_query_and_only_the_calls_redis_commands(upstream, settings):
    """`POST /api/ai/generate/` with a token this process has resolved: no SQL statement on the request's connection
    (the token's answer is remembered: integrations.api.tokens; the ledger rows go to the process's writer),
    and in Redis the API's rate limit (two commands: django-ratelimit's add, then its count) plus the budgeted
    call's two. The token version, like the
    site's settings version, is read once per `AI_SETTINGS_CHECK_INTERVAL`: out of this count."""
    from django.test import Client

    from integrations.models import APIToken
    from tenancy.models import SiteMembership

    from .api.calls import HOST, post
    from .factories import SiteFactory, UserFactory, may_use_ai

    settings.AI_SETTINGS_CHECK_INTERVAL = 3600
    settings.ALLOWED_HOSTS = ["*"]
    _price_gpt_4o()
    record = AIProviderSettingsFactory(
        site=SiteFactory(domain=HOST),
        provider_type="openai",
        openai_api_key=OAI_KEY,
        openai_base_url=upstream.openai_base_url,
        monthly_budget=Decimal("100"),
    )
    user = may_use_ai(UserFactory(username="editor"))
    SiteMembership.objects.create(user=user, site=record.site)
    token = APIToken.issue(user, "storefront")[1]
    client = Client()
    body = {"prompt": "warm up", "model": "gpt-4o", "max_tokens": 20}
    assert post(client, body, token).status_code == 200  # resolves the token, stamps its last use
    assert usage.flush()
    connection.ensure_connection()

    responses: list = []
    commands: list[str] = []

    def call() -> None:
        commands.extend(_commands_during(lambda: responses.append(post(client, {**body, "prompt": "counted"}, token))))

    statements = _statements(call)

    assert responses[0].status_code == 200, responses[0].content
    assert statements == [], statements
    names = [command.split()[0].upper() for command in commands]
    assert names == ["SET", "EVALSHA", "EVALSHA", "EVALSHA"], commands
    assert ":rl:" in commands[0] and ":rl:" in commands[1]  # the rate limit (django-ratelimit): add, then count
    assert ":cooldown:" in commands[2] and ":spent" in commands[3]  # the reservation, then the settlement
    assert usage.flush()
    assert AIUsage.objects.filter(site=record.site, status="ok").count() == 2
