"""Shared state across processes and databases (issue 7).

These run in both CI passes: SQLite + local memory, and PostgreSQL + Redis. The two-process test
needs a cache two processes share, so it runs only when REDIS_URL is set (the second pass).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers import errors
from integrations.ai.runtime import pauses
from integrations.models import AIUsage, BudgetPeriod, ModelPrice

from .factories import AIProviderSettingsFactory

ROOT = Path(__file__).resolve().parent.parent
OR_KEY = "sk-or-v1-" + "3d" * 24
ANT_KEY = "sk-ant-api03-" + "4e" * 24
OAI_KEY = "sk-proj-" + "5f" * 24

needs_redis = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a shared cache (REDIS_URL)")


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process that shares this test's database and the emulator's allowlist."""
    from django.conf import settings

    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "panel.settings_test",
        "AI_OUTBOUND_ALLOWLIST": ",".join(settings.AI_OUTBOUND_ALLOWLIST),
        **extra,
    }


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"


CHILD = """
import json, os, sys
sys.path.insert(0, "backend")
import django
django.setup()
from integrations.ai.runtime import pauses
from integrations.ai.gateway.service import AIService
site_id = int(sys.argv[1])
result = AIService(site=site_id).generate_content("From the second process")
print(json.dumps({"provider": result.provider, "cooling": pauses.cooling_down(site_id, "openrouter")}))
"""


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_cooldown_set_by_one_process_is_honoured_by_another(upstream, settings):
    settings.AI_MAX_RETRIES = 0
    settings.AI_COOLDOWN_AFTER_FAILURES = 2
    record = AIProviderSettingsFactory(
        provider_type="openrouter",
        openrouter_api_key=OR_KEY,
        openrouter_base_url=upstream.openrouter_base_url,
        anthropic_api_key=ANT_KEY,
        anthropic_base_url=upstream.anthropic_base_url,
        fallback_chain=[{"provider": "anthropic", "model": ""}],
    )
    upstream.script(flavor="openrouter", status=503, times=2)
    for n in range(2):
        assert AIService(site=record.site).generate_content(f"fail {n}").provider == "anthropic"
    assert pauses.cooling_down(record.site_id, "openrouter") > 0
    upstream.reset()

    env = child_env()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(record.site_id)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    child = json.loads(out.stdout.strip().splitlines()[-1])
    assert child["provider"] == "anthropic"
    assert child["cooling"] > 0
    assert [r.flavor for r in upstream.requests] == ["anthropic"]  # the other process never tried OpenRouter


@pytest.mark.django_db(transaction=True)
def test_concurrent_spend_never_exceeds_the_cap(upstream):
    ModelPrice.objects.create(
        provider="openai", model_id="gpt-4o", prompt_per_million=Decimal("2.5"), completion_per_million=Decimal("10")
    )
    cap = Decimal("0.002")
    record = AIProviderSettingsFactory(
        provider_type="openai",
        openai_api_key=OAI_KEY,
        openai_base_url=upstream.openai_base_url,
        monthly_budget=cap,
    )
    upstream.script(flavor="openai", delay=0.05, times=100)  # keep requests in flight together
    outcomes: list[str] = []
    lock = threading.Lock()

    def spend(n: int) -> None:
        try:
            AIService(site=record.site).generate_content(f"Spend {n}", model="gpt-4o", max_tokens=20)
            outcome = "ok"
        except errors.BudgetExceeded:
            outcome = "refused"
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

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
    period = BudgetPeriod.objects.get(site=record.site)
    assert period.spent == spent and period.reserved == 0
