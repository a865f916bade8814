"""Retention of the usage ledger (issue 14, item 7): `prune_usage` deletes raw rows older than the
retention in batches, never the daily roll-ups, and the dashboard shows the same numbers afterwards."""

from __future__ import annotations

import datetime
import io
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.utils import timezone

from integrations.ai.runtime import conf
from integrations.models import AIUsage, UsageDaily
from integrations.usage import rollups as usage_rollups
from integrations.usage.dashboard import Dashboard, to_csv
from integrations.usage.retention import prune

from .factories import SiteFactory

pytestmark = pytest.mark.django_db


def ledger_row(site, days_ago: int, **fields) -> AIUsage:
    values = {
        "service": "pages.meta",
        "provider": "openai",
        "served_model": "gpt-4o",
        "status": "ok",
        "total_tokens": 15,
        "cost": Decimal("0.01"),
        "latency_ms": 100 + days_ago,
        **fields,
    }
    made = AIUsage.objects.create(site=site, **values)
    AIUsage.objects.filter(pk=made.pk).update(created_at=timezone.now() - datetime.timedelta(days=days_ago, hours=1))
    made.refresh_from_db()
    usage_rollups.add([made])  # as the ledger writer does when it writes the row
    return made


@pytest.fixture
def aged_ledger():
    site = SiteFactory(domain="aged.example.test")
    for days_ago in (1, 2, 20, 45, 45, 200):
        ledger_row(site, days_ago)
    ledger_row(site, 45, status="error", error_class="ProviderUnavailable", cost=None, latency_ms=3000)
    ledger_row(site, 45, status="refused", error_class="BudgetExceeded", cost=Decimal(0))
    ledger_row(site, 45, status="cached", cache_hit=True, cost=Decimal(0), saved_cost=Decimal("0.01"))
    return site


def dashboard(site) -> dict:
    today = timezone.localdate()
    return Dashboard(site_ids={site.pk}, first=today - datetime.timedelta(days=300), last=today).build()


def test_pruning_deletes_old_raw_rows_in_batches_and_leaves_the_dashboard_unchanged(aged_ledger):
    before = dashboard(aged_ledger)
    csv_before = to_csv(before)
    rollups = list(UsageDaily.objects.order_by("pk").values())
    out = io.StringIO()
    call_command("prune_usage", "--days", "30", "--batch-size", "2", stdout=out)
    assert "Deleted 6 AI usage row(s)" in out.getvalue()
    assert sorted(AIUsage.objects.values_list("latency_ms", flat=True)) == [101, 102, 120]
    assert list(UsageDaily.objects.order_by("pk").values()) == rollups  # roll-ups are never pruned
    after = dashboard(aged_ledger)
    assert after == before and to_csv(after) == csv_before
    assert before["totals"]["requests"] == 8 and before["totals"]["refused"] == 1
    assert before["totals"]["cost"] == Decimal("0.06")


def test_the_retention_setting_is_the_default(aged_ledger, settings):
    settings.AI_USAGE_RETENTION_DAYS = 10
    assert conf.usage_retention_days() == 10
    assert prune(batch_size=3) == 7  # 20, 45 x 5 and 200 days old
    assert AIUsage.objects.count() == 2
    settings.AI_USAGE_RETENTION_DAYS = 0
    with pytest.raises(ImproperlyConfigured, match="AI_USAGE_RETENTION_DAYS must be at least 1"):
        conf.usage_retention_days()


def test_default_retention_is_400_days(aged_ledger, settings):
    del settings.AI_USAGE_RETENTION_DAYS
    assert conf.usage_retention_days() == 400
    call_command("prune_usage", stdout=io.StringIO())
    assert AIUsage.objects.count() == 9


def test_prune_usage_rejects_bad_input(aged_ledger):
    with pytest.raises(CommandError, match="--days must be at least 1"):
        call_command("prune_usage", "--days", "0")
    with pytest.raises(CommandError, match="--batch-size must be at least 1"):
        call_command("prune_usage", "--batch-size", "0")
    assert AIUsage.objects.count() == 9


def test_celery_beat_runs_the_prune_task_daily(aged_ledger, settings):
    from integrations import tasks
    from panel.celery import app

    entry = app.conf.beat_schedule["prune-ai-usage"]
    assert entry["task"] == tasks.PRUNE_USAGE == tasks.prune_usage.name
    assert entry["schedule"].remaining_estimate(timezone.now()) <= datetime.timedelta(days=1)
    settings.AI_USAGE_RETENTION_DAYS = 30
    assert tasks.prune_usage.delay().get() == 6  # eager without a broker, as in tests
    assert AIUsage.objects.count() == 3
