"""Shared fixtures: one loopback upstream emulator for the session, clean caches per test."""

from __future__ import annotations

import os

import pytest
from django.core.cache import cache

from integrations.ai.governance import budget
from integrations.ai.ledger import writer as ledger_writer
from integrations.ai.providers import base as provider_base
from integrations.ai.providers import openai_compatible_provider, openrouter_provider
from integrations.ai.sites import site_config
from integrations.ai.testing.upstream import Upstream
from integrations.api import tokens as api_tokens


def upstream_host(server: Upstream) -> str:
    from urllib.parse import urlsplit

    return urlsplit(server.url).netloc


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Fail a test whose responses, output or log lines carried an API key (tests/leakcheck.py)."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call":
        return
    from tests import leakcheck

    leakcheck.scan(report.capstdout + report.capstderr + report.caplog, "captured output/logs")
    leaked = leakcheck.take()
    if leaked and report.passed:
        report.outcome = "failed"
        report.longrepr = "An API key escaped: " + "; ".join(leaked)


@pytest.fixture(scope="session")
def _upstream_server():
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture
def upstream(_upstream_server, settings):
    """The emulator, reset: no scripts, no recorded requests, connection count zero.

    Its exact host:port is allowlisted for sites' base URLs, as a deployment allowlists a local
    model server (every other loopback port stays refused).
    """
    settings.AI_OUTBOUND_ALLOWLIST = [upstream_host(_upstream_server)]
    _upstream_server.reset()
    # an earlier test's rows still on their way land now, not among this test's (kept with no site: store)
    ledger_writer.flush(timeout=10, include_held=False)
    yield _upstream_server
    # The ledger rows this test's calls handed to the writer are written before its database is emptied:
    # on PostgreSQL a background write racing the teardown's TRUNCATE can deadlock it (and fail the next
    # test's setup). Rows held by the test's own open transaction roll back with it.
    ledger_writer.flush(timeout=10, include_held=False)
    _upstream_server.reset()


@pytest.fixture(autouse=True)
def _fresh_ai_caches():
    """Every test starts with no cached clients, providers, snapshots or model listings."""
    cache.clear()
    budget.forget_ratios()  # what this process saw of the cache's overshoot ratios
    provider_base.clear_client_cache()
    site_config.clear_snapshots()
    openrouter_provider._models_cache.clear()
    openai_compatible_provider._models_cache.clear()
    api_tokens.forget()
    yield
    cache.clear()
    provider_base.clear_client_cache()
    site_config.clear_snapshots()


@pytest.fixture(autouse=True)
def _no_journal_outlives_its_test():
    """The test database is emptied after each test: a journal a killed child process left (its rows pushed to
    Redis stay in its `*-redis.jsonl` until confirmed) must not replay those rows into the next test."""
    yield
    import fcntl
    from pathlib import Path

    from integrations.ai.runtime import conf

    base = conf.journal_dir()
    if not base or not Path(base).is_dir():
        return
    for path in Path(base).glob("*/*.jsonl"):
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # its process is gone (a living one holds the lock)
        except BlockingIOError:
            continue
        finally:
            os.close(fd)
        path.unlink(missing_ok=True)


@pytest.fixture
def ai_settings(settings, upstream):
    """Deployment settings pointing every provider at the emulator, with no key set yet."""
    settings.OPENROUTER_BASE_URL = upstream.openrouter_base_url
    settings.OPENAI_BASE_URL = upstream.openai_base_url
    settings.ANTHROPIC_BASE_URL = upstream.anthropic_base_url
    settings.AI_PROVIDER = "auto"
    settings.OPENROUTER_API_KEY = ""
    settings.OPENAI_API_KEY = ""
    settings.ANTHROPIC_API_KEY = ""
    return settings


@pytest.fixture
def client(client, db):
    """The test client, with a Site for its host: tenancy resolves the site from the request host."""
    from django.contrib.sites.models import Site

    Site.objects.get_or_create(domain="testserver", defaults={"name": "Test server"})
    return client


EMULATED_KEYS = {
    "openrouter": "sk-or-v1-" + "e0" * 24,
    "openai": "sk-proj-" + "e1" * 24,
    "anthropic": "sk-ant-api03-" + "e2" * 24,
}


@pytest.fixture
def emulated_site(upstream, db):
    """Make a site whose AI settings point at the emulator: `emulated_site("openai", monthly_budget=...)`.

    The named provider gets a realistic-looking key and the emulator's base URL; `also=[...]` adds more
    providers the same way; other keyword arguments go to the settings record.
    """
    from tests.factories import AIProviderSettingsFactory

    def make(provider: str = "openrouter", also: tuple[str, ...] = (), **fields):
        for name in (provider, *also):
            if name in EMULATED_KEYS:
                fields.setdefault(f"{name}_api_key", EMULATED_KEYS[name])
                fields.setdefault(f"{name}_base_url", getattr(upstream, f"{name}_base_url"))
        return AIProviderSettingsFactory(provider_type=provider, **fields).site

    return make


@pytest.fixture(params=["sync", "async"])
def driver(request):
    """The gateway driver a behaviour test runs on (tests/drivers.py): the same test, both drivers."""
    from .drivers import Driver

    return Driver(request.param)


@pytest.fixture(scope="session", autouse=True)
def _end_leftover_database_sessions(django_db_setup, django_db_blocker):
    """On PostgreSQL, end the sessions that threads of the tests left open, before the test database is dropped.

    Threads a test starts (budget races, live servers' request threads, asgiref's executor) each open their own
    connection, and one that is never closed stays idle on the server: `DROP DATABASE` then waited and failed
    ("being accessed by other users"), leaving the database behind for the next run to drop. Runs after the
    last test (a session fixture's teardown, before pytest-django's), so nothing of a test is cut off."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
