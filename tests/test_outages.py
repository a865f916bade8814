"""Issue 25, outages: AI calls go on while Redis or the database is away, and no answered call is lost or billed twice.

Redis is a real `redis-server` each test starts on a free loopback port (skipped when the binary is missing), stopped
and started again by the test; the database is taken away by pointing the connection settings at a place no database
is (a directory that does not exist for SQLite, a closed port for PostgreSQL) and closing the open connections, then
put back. The calls are real: `AIService` over the real SDK to the loopback emulator, `POST /api/ai/generate/` through
Django's test client, `/v1` through the real `openai` SDK against the live server. No sleeps: every step follows the
previous one's outcome.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal

import openai
import pytest
import redis
from django.db import connection, connections

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.ledger import writer as ledger_writer
from integrations.models import AIUsage, APIToken, ModelPrice

from .api.calls import HOST, OAI_KEY, post
from .factories import AIProviderSettingsFactory, SiteFactory, SiteMembershipFactory, UserFactory, may_use_ai

needs_redis_server = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A throwaway redis-server without persistence on a free port (as bin/services starts one for tests)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:  # until it accepts commands (a readiness poll, not a wait for our code)
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


@pytest.fixture
def redis_server(settings) -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    settings.REDIS_URL = server.url
    settings.CACHES = {
        "default": {
            "BACKEND": "panel.cache.ResilientRedisCache",
            "LOCATION": server.url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
        }
    }
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def priced(db):
    return ModelPrice.objects.create(
        provider="openai", model_id="gpt-4o", prompt_per_million=Decimal("2.5"), completion_per_million=Decimal("10")
    )


def _site(upstream, **fields):
    return AIProviderSettingsFactory(
        provider_type="openai", openai_api_key=OAI_KEY, openai_base_url=upstream.openai_base_url, **fields
    )


def _ledger_of(site_id: int) -> list[AIUsage]:
    return list(AIUsage.objects.filter(site_id=site_id).order_by("id"))


def _assert_each_call_once(rows: list[AIUsage], answered: list[str]) -> None:
    keys = [r.ledger_key for r in rows]
    assert len(keys) == len(set(keys)), "a ledger row was written twice"
    ids = [r.request_id for r in rows if r.status == "ok"]
    assert sorted(ids) == sorted(answered), "an answered call is missing from the ledger, or is there twice"


@needs_redis_server
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("queue, warnings", [("local", 1), ("redis", 2)])
def test_calls_go_on_through_a_redis_outage_and_each_lands_in_the_ledger_once(
    upstream, priced, redis_server, caplog, settings, queue, warnings
):
    """Rate limits, budget counters, settings versions (and with `AI_LEDGER_QUEUE=redis` the ledger) live in
    Redis: stopping it mid-run must cost no call (limits and counters go per process, pushed rows take the
    in-process path), warn once per user of Redis, and after Redis comes back (empty: no persistence) every
    answered call is in the ledger exactly once."""
    settings.AI_LEDGER_QUEUE = queue
    record = _site(upstream, monthly_budget=Decimal("100"), requests_per_minute=1000, tokens_per_minute=1_000_000)
    answered: list[str] = []

    def call(n: int) -> None:
        result = AIService(site=record.site).generate_content(f"call {n}", model="gpt-4o", max_tokens=20)
        answered.append(result.request_id)

    for n in range(3):
        call(n)
    redis_server.stop()
    with caplog.at_level(logging.WARNING):
        for n in range(3, 9):
            call(n)
    outage_warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
    # the cache's, and the ledger's when it queues through Redis
    assert len(outage_warnings) == warnings, [r.getMessage() for r in outage_warnings]
    redis_server.start()
    for n in range(9, 12):
        call(n)
    assert usage.flush()
    rows = _ledger_of(record.site_id)
    assert len(rows) == len(answered) == 12
    _assert_each_call_once(rows, answered)


@needs_redis_server
@pytest.mark.django_db(transaction=True)
def test_the_api_answers_json_through_a_redis_outage(upstream, redis_server, settings):
    """The JSON API's own per-user rate limit is counted in the cache too: with Redis stopped the call is served."""
    from django.test import Client

    settings.ALLOWED_HOSTS = ["*"]
    settings.AI_API_RATE_LIMIT = "100/m"
    site = SiteFactory(domain=HOST)
    _site(upstream, site=site)
    user = may_use_ai(UserFactory(username="editor"))
    SiteMembershipFactory(user=user, site=site)
    token = APIToken.issue(user, "storefront")[1]
    client = Client()
    assert post(client, {"prompt": "before"}, token).status_code == 200
    redis_server.stop()
    response = post(client, {"prompt": "during"}, token)
    assert response.status_code == 200, response.content[:300]
    assert response.json()["content"]
    assert usage.flush()
    assert AIUsage.objects.filter(site=site, status="ok").count() == 2


@needs_redis_server
@pytest.mark.django_db(transaction=True)
def test_rows_a_redis_restart_lost_still_reach_the_database(upstream, priced, redis_server, settings):
    """Rows pushed to Redis wait there until a drainer takes them. Here no drainer may take them (an ACL denies
    the list moves), Redis then loses them all (FLUSHALL, as a restart without persistence does): the pushing
    process still has them in its journal, and they reach the database once the drainer runs again."""
    settings.AI_LEDGER_QUEUE = "redis"
    record = _site(upstream)
    AIService(site=record.site).generate_content("warm up", model="gpt-4o", max_tokens=20)
    assert usage.flush()
    admin = redis_server.client()
    admin.execute_command("ACL", "SETUSER", "default", "-lmove", "-blmove")  # drainers cannot take rows
    admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")  # nor finish a BLMOVE already waiting
    answered = [
        AIService(site=record.site).generate_content(f"call {n}", model="gpt-4o", max_tokens=20).request_id
        for n in range(5)
    ]
    ledger = ledger_writer._redis_ledger()
    assert ledger is not None and admin.llen(ledger.key) == 5  # pushed, and only there
    admin.flushall()  # the restart without persistence
    admin.execute_command("ACL", "SETUSER", "default", "+lmove", "+blmove")
    assert usage.flush()
    rows = [r for r in _ledger_of(record.site_id) if r.request_id in answered]
    _assert_each_call_once(rows, answered)


@contextlib.contextmanager
def database_down() -> Iterator[None]:
    """Every new connection fails (a missing directory for SQLite, a closed port for PostgreSQL) until the end."""
    settings_dict = connection.settings_dict  # the one dict every thread's connection is made from
    saved = dict(settings_dict)
    if connection.vendor == "sqlite":
        settings_dict["NAME"] = "/nonexistent-panel-outage/db.sqlite3"
    else:
        settings_dict.update(HOST="127.0.0.1", PORT=str(_free_port()))
    connections.close_all()
    try:
        yield
    finally:
        settings_dict.clear()
        settings_dict.update(saved)
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_warm_sites_and_tokens_are_served_while_the_database_is_down(upstream, settings):
    """Token, site and settings lookups are remembered: during an outage a token and site this process has seen
    are served, a token it never saw gets a JSON 503 (not Django's HTML page), and the rows of the calls served
    wait in the journal until the database is back."""
    from django.test import Client

    settings.ALLOWED_HOSTS = ["*"]
    settings.AI_API_RATE_LIMIT = "off"
    settings.AI_SETTINGS_CHECK_INTERVAL = 0  # every call re-reads the settings version (and may rebuild)
    site = SiteFactory(domain=HOST)
    _site(upstream, site=site, monthly_budget=Decimal("100"))
    user = may_use_ai(UserFactory(username="editor"))
    SiteMembershipFactory(user=user, site=site)
    warm, cold = APIToken.issue(user, "warm")[1], APIToken.issue(user, "cold")[1]
    client = Client()
    first = post(client, {"prompt": "before"}, warm)
    assert first.status_code == 200
    answered = [first.json()["request_id"]]
    assert usage.flush()
    from django.core.cache import cache

    from integrations.ai.sites import site_config
    from panel import sites

    with database_down():
        cache.set(site_config._site_version_key(site.pk), 999, None)  # settings saved elsewhere: rebuild, cannot
        for host, (known, _) in list(sites._site_by_host.items()):  # the host's site is due for a lookup too
            sites._site_by_host[host] = (known, 0.0)
        for n in range(3):
            response = post(client, {"prompt": f"during {n}"}, warm)
            assert response.status_code == 200, response.content[:300]
            answered.append(response.json()["request_id"])
        refused = post(Client(raise_request_exception=False), {"prompt": "unknown token"}, cold)
        assert refused.status_code == 503
        assert refused["Content-Type"] == "application/json"
        assert refused.json()["error"]["code"] == "service_unavailable"
        assert not usage.flush(timeout=0.5)  # the rows wait: the database is away
    assert usage.flush()
    _assert_each_call_once(_ledger_of(site.pk), answered)


@pytest.mark.django_db(transaction=True)
def test_a_warm_virtual_key_is_served_while_the_database_is_down(upstream, live_server, settings, monkeypatch):
    """The live server's thread opens a connection per request (no kept connection to outlive the outage)."""
    from integrations.api.v1 import keys

    settings.AI_SETTINGS_CHECK_INTERVAL = 0
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    record = _site(upstream)
    raw = keys.issue(record.site, UserFactory(username="key-owner"), "ci")[1]
    client = openai.OpenAI(api_key=raw, base_url=f"{live_server.url}/v1", max_retries=0)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
    answered = [client.chat.completions.create(**body).id]
    assert usage.flush()
    from django.core.cache import cache

    with database_down():
        cache.set(keys.VERSION_KEY, 999, None)  # a token was saved elsewhere: re-read the key, and cannot
        answered.append(client.chat.completions.create(**body).id)
    assert usage.flush()
    rows = _ledger_of(record.site_id)
    assert len(rows) == 2 and len({r.ledger_key for r in rows}) == 2
