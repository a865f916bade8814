"""Issue 19: no answered call is lost from the ledger when a server worker is killed with SIGKILL.

A real `bin/serve` (gunicorn, 2 gthread workers) takes load on `POST /api/ai/generate/` from 8 client
threads; once 40 calls were answered, one worker gets SIGKILL; the load goes on until 40 more were
answered, then the server stops and starts again. Every answer the clients got (its request id) must
be in the ledger. The writer is told to hold rows for a minute (`AI_LEDGER_FLUSH_INTERVAL=60`), so the
killed worker certainly held unwritten rows: without the journal (or Redis) they would be lost.

In-process mode (the default, `AI_LEDGER_QUEUE=local`) and, when REDIS_URL is set, the Redis ledger
(`AI_LEDGER_QUEUE=redis`). Event-driven: the kill and the stop follow counts of answers, never a sleep.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal

import pytest

from integrations.models import AIUsage, APIToken, BudgetPeriod

from .factories import AIProviderSettingsFactory, SiteFactory, SiteMembershipFactory, UserFactory, may_use_ai
from .test_server_config import Server

CLIENTS = 8
BEFORE_KILL = 40
AFTER_KILL = 40


def _stop(server: Server) -> int:
    """SIGTERM and wait: the workers flush first (on the Redis path, until the killed worker's processing
    list was re-queued after its heartbeat expired: up to ~15 s, more than Server.stop waits)."""
    server.process.send_signal(signal.SIGTERM)
    return server.process.wait(timeout=90)


def _workers(master: int) -> list[int]:
    with open(f"/proc/{master}/task/{master}/children") as handle:
        return [int(pid) for pid in handle.read().split()]


def _load(server: Server, token: str, answered: list[str], progress: threading.Condition, stop: threading.Event):
    body = json.dumps({"prompt": "Tagline for a bakery", "model": "gpt-4o-mini", "max_tokens": 20}).encode()
    while not stop.is_set():
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.port}/api/ai/generate/",
            method="POST",
            data=body,
            headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, answer = response.status, json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, OSError):  # the killed worker's connections
            continue
        if status == 200:
            with progress:
                answered.append(answer["request_id"])
                progress.notify_all()


@pytest.mark.parametrize("mode", ["in-process", "redis"])
@pytest.mark.django_db(transaction=True)
def test_every_answered_call_is_in_the_ledger_after_a_worker_is_killed(upstream, mode):
    if mode == "redis" and not os.environ.get("REDIS_URL"):
        pytest.skip("needs Redis (REDIS_URL)")
    site = SiteFactory(domain="127.0.0.1")
    AIProviderSettingsFactory(
        site=site,
        provider_type="openai",
        openai_api_key="sk-proj-" + "e5" * 24,
        openai_base_url=upstream.openai_base_url,
        monthly_budget=Decimal(100),
    )
    user = may_use_ai(UserFactory(username="kill-editor"))
    SiteMembershipFactory(user=user, site=site)
    _, token = APIToken.issue(user, "kill test")
    env = {
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "4",
        "AI_API_RATE_LIMIT": "off",
        "AI_LEDGER_FLUSH_INTERVAL": "60",
        "AI_LEDGER_BATCH_SIZE": "100000",
    }
    # in-process: the default queue, with Redis (if set) still holding the budget counters, as in production
    env["AI_LEDGER_QUEUE"] = "local" if mode == "in-process" else "redis"
    answered: list[str] = []
    progress = threading.Condition()
    stop = threading.Event()
    server = Server(**env)
    try:
        clients = [
            threading.Thread(target=_load, args=(server, token, answered, progress, stop), daemon=True)
            for _ in range(CLIENTS)
        ]
        for client in clients:
            client.start()
        with progress:
            assert progress.wait_for(lambda: len(answered) >= BEFORE_KILL, timeout=60), "".join(server.log)
        victim = _workers(server.process.pid)[0]
        os.kill(victim, signal.SIGKILL)
        with progress:
            at_kill = len(answered)
            assert progress.wait_for(lambda: len(answered) >= at_kill + AFTER_KILL, timeout=60), "".join(server.log)
        stop.set()
        for client in clients:
            client.join(60)
        assert _stop(server) == 0
    finally:
        stop.set()
        if server.process.poll() is None:
            server.process.kill()
    # The next start: its workers' writers replay what the killed worker journaled (the worker gunicorn
    # started in its place already did; a second start finds nothing left, and writes nothing twice).
    again = Server(**env)
    try:
        deadline = time.monotonic() + 30
        wanted = set(answered)
        while True:
            found = set(AIUsage.objects.filter(site=site, status="ok").values_list("request_id", flat=True))
            if wanted <= found or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # polling the database for the replay, bounded by the deadline
        assert _stop(again) == 0
    finally:
        if again.process.poll() is None:
            again.process.kill()
    missing = wanted - found
    assert not missing, f"{len(missing)} of {len(wanted)} answered calls are not in the ledger"
    rows = AIUsage.objects.filter(site=site, status="ok")
    assert rows.count() == len(set(rows.values_list("request_id", flat=True)))  # nothing written twice
    # the budget period the counters are seeded from holds the same spend as the ledger
    period = BudgetPeriod.objects.get(site=site)
    assert period.spent == sum(row.cost for row in rows) > 0
