"""Daily roll-ups of the usage ledger (issue 14, item 2): kept by the ledger writer, built for old
ledgers by a data migration, read by the dashboard; `seed_usage` for big ledgers.

Every roll-up is checked against the raw rows it sums. Calls go through the emulator; the Redis ledger
path (`AI_LEDGER_QUEUE=redis`) writes through the same `write_rows`. Two writer processes share one group
to show the roll-ups stay exact under contention.
"""

from __future__ import annotations

import datetime
import io
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, Sum
from django.utils import timezone

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.models import AIUsage, ModelPrice, UsageDaily
from integrations.usage import rollups as usage_rollups
from integrations.usage.dashboard import Dashboard
from integrations.usage.rollups import bucket, histogram_percentile

from .factories import SiteFactory
from .test_scaleout import child_env

ROOT = Path(__file__).resolve().parent.parent
SUMMED = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost",
    "saved_cost",
    "latency_ms",
)


def raw_totals(**filters) -> dict:
    rows = AIUsage.objects.filter(**filters)
    totals = rows.aggregate(requests=Count("id"), **{n: Sum(n) for n in SUMMED})
    return {k: v or 0 for k, v in totals.items()}


def rollup_totals(**filters) -> dict:
    rows = UsageDaily.objects.filter(**filters)
    totals = rows.aggregate(
        requests=Sum("requests"), latency_ms=Sum("latency_sum"), **{n: Sum(n) for n in SUMMED if n != "latency_ms"}
    )
    return {k: v or 0 for k, v in totals.items()}


def assert_rollups_match_ledger(**site) -> None:
    raw, rolled = raw_totals(**site), rollup_totals(**site)
    assert rolled == raw and raw["requests"] > 0
    histogram_count = sum(sum(r.latency_histogram.values()) for r in UsageDaily.objects.filter(**site))
    assert histogram_count == raw["requests"]


# -- the histogram ----------------------------------------------------------------------------------


def test_buckets_keep_two_significant_digits():
    assert [bucket(v) for v in (0, 7, 99, 100, 109, 110, 999, 1000, 1099, 4321, 99_999, 100_000, 3_600_000)] == [
        0,
        7,
        99,
        100,
        100,
        110,
        990,
        1000,
        1000,
        4300,
        99_000,
        100_000,
        100_000,
    ]
    assert bucket(-5) == 0


def test_percentiles_from_the_histogram_are_nearest_rank_bucket_edges():
    histogram = {100: 1, 200: 1, 300: 1, 400: 1}
    assert (histogram_percentile(histogram, 0.5), histogram_percentile(histogram, 0.95)) == (200.0, 400.0)
    assert histogram_percentile({}, 0.5) is None
    counts: dict[int, int] = {}
    for v in range(1, 101):
        counts[bucket(v)] = counts.get(bucket(v), 0) + 1
    assert histogram_percentile(counts, 0.95) == 95.0  # exact below 100 ms
    assert histogram_percentile({bucket(1234): 3}, 0.5) == 1200.0  # at most one bucket low above


# -- the writer ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_ledger_writer_keeps_rollups_matching_the_ledger(emulated_site, upstream, settings):
    settings.AI_RETRY_BACKOFF = 0.01
    ModelPrice.objects.create(
        provider="openai", model_id="gpt-4o", prompt_per_million=Decimal("2.5"), completion_per_million=Decimal("10")
    )
    site = emulated_site("openai")
    other = emulated_site("openai")
    for n in range(3):
        AIService(site=site, service="pages.meta").generate_content(f"Roll me up {n}", model="gpt-4o")
    upstream.script(flavor="openai", status=500, times=1)  # one failed attempt, then the retry serves
    AIService(site=site, service="pages.summary").generate_content("Fail once", model="gpt-4o")
    AIService(site=site, service="pages.meta").generate_content("Same", model="gpt-4o", temperature=0)
    AIService(site=site, service="pages.meta").generate_content("Same", model="gpt-4o", temperature=0)  # cache hit
    AIService(site=other, service="b.service").generate_content("Another site", model="gpt-4o")
    assert usage.flush()

    assert_rollups_match_ledger(site=site)
    assert_rollups_match_ledger(site=other)
    today = timezone.localdate()
    groups = {(r.service, r.status, r.error_class): r for r in UsageDaily.objects.filter(site=site)}
    assert set(groups) == {
        ("pages.meta", "ok", ""),
        ("pages.summary", "ok", ""),
        ("pages.summary", "error", "ProviderUnavailable"),
        ("pages.meta", "cached", ""),
    }
    assert groups[("pages.meta", "ok", "")].requests == 4
    assert groups[("pages.meta", "cached", "")].cache_hits == 1
    assert all(r.day == today and r.model.startswith("gpt-4o") for r in groups.values())
    assert groups[("pages.meta", "ok", "")].cost > 0
    # written in several batches, the groups were updated in place: one row per group
    assert UsageDaily.objects.filter(site=site).count() == 4


WRITER = """
import sys
sys.path.insert(0, "backend")
import django
django.setup()
from decimal import Decimal
from integrations.ai.ledger.writer import write_rows
site_id, tag = int(sys.argv[1]), sys.argv[2]
for n in range(40):
    write_rows([{"site_id": site_id, "service": "shared", "provider": "openai", "served_model": "gpt-4o",
                 "status": "ok", "prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                 "cost": Decimal("0.001"), "latency_ms": 10 + i, "request_id": f"{tag}-{n}-{i}"}
                for i in range(5)]
               + [{"site_id": site_id, "service": f"{tag}.{n % 3}", "provider": "openai", "served_model": "gpt-4o",
                   "status": "refused", "error_class": "RateLimited", "cost": Decimal(0)}])
print("done", flush=True)
"""


@pytest.mark.django_db(transaction=True)
def test_two_writer_processes_keep_the_rollups_exact():
    site = SiteFactory()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(site.pk), tag],
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("p", "q")
    ]
    for child in children:
        out, err = child.communicate(timeout=180)
        assert child.returncode == 0 and "done" in out, err[-2000:]
    assert AIUsage.objects.filter(site=site).count() == 2 * 40 * 6
    assert_rollups_match_ledger(site=site)
    shared = UsageDaily.objects.get(site=site, service="shared", status="ok")  # one row, not one per process
    assert shared.requests == 400 and shared.cost == Decimal("0.4")
    assert shared.latency_histogram == {str(10 + i): 80 for i in range(5)}
    assert UsageDaily.objects.filter(site=site, status="refused").count() == 6  # p.0-2 and q.0-2


# -- the data migration --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_data_migration_builds_rollups_from_existing_rows():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()  # every app: back to 0011 also unapplies what depends on it
    try:
        executor.migrate([("integrations", "0011_usage_daily")])
        apps = executor.loader.project_state([("integrations", "0011_usage_daily")]).apps
        site = apps.get_model("sites", "Site").objects.create(domain="old.example.test", name="old")
        OldUsage = apps.get_model("integrations", "AIUsage")
        day = timezone.localdate() - datetime.timedelta(days=40)
        for latency, status, cost in ((120, "ok", "0.01"), (340, "ok", "0.02"), (900, "error", None)):
            made = OldUsage.objects.create(
                site_id=site.pk,
                service="pages.meta",
                provider="openai",
                served_model="gpt-4o",
                status=status,
                latency_ms=latency,
                total_tokens=15,
                cost=Decimal(cost) if cost else None,
            )
            OldUsage.objects.filter(pk=made.pk).update(
                created_at=timezone.make_aware(datetime.datetime.combine(day, datetime.time(9)))
            )
        OldUsage.objects.create(
            site_id=None,
            service="cli",
            provider="anthropic",
            requested_model="claude",
            status="refused",
            error_class="PolicyViolation",
        )
        executor = MigrationExecutor(connection)
        executor.migrate([("integrations", "0012_usage_daily_backfill")])
    finally:
        MigrationExecutor(connection).migrate(latest)
    ok = UsageDaily.objects.get(site__domain="old.example.test", status="ok")
    assert (ok.day, ok.requests, ok.cost, ok.total_tokens, ok.latency_sum) == (day, 2, Decimal("0.03"), 30, 460)
    assert ok.latency_histogram == {"120": 1, "340": 1}
    assert UsageDaily.objects.get(site__domain="old.example.test", status="error").requests == 1
    refused = UsageDaily.objects.get(site__isnull=True)
    assert (refused.model, refused.error_class, refused.requests) == ("claude", "PolicyViolation", 1)
    # what the dashboard showed from raw rows it shows from the roll-ups
    data = Dashboard(site_ids=None, first=day, last=timezone.localdate()).build()
    assert data["totals"]["cost"] == Decimal("0.03") and data["totals"]["errors"] == 1
    assert data["latency"] == [{"provider": "openai", "model": "gpt-4o", "requests": 2, "p50": 120.0, "p95": 340.0}]


# -- seed_usage --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_seed_usage_writes_rows_over_the_range_and_their_rollups():
    a, b = SiteFactory(domain="seed-a.example.test"), SiteFactory(domain="seed-b.example.test")
    call_command(
        "seed_usage", "--rows", "1200", "--site", a.domain, "--site", b.domain, "--days", "30", stdout=io.StringIO()
    )
    assert AIUsage.objects.count() == 1200
    assert AIUsage.objects.filter(site=a).count() == AIUsage.objects.filter(site=b).count() == 600
    days = {timezone.localdate(d) for d in AIUsage.objects.values_list("created_at", flat=True)}
    assert len(days) >= 29 and min(days) >= timezone.localdate() - datetime.timedelta(days=30)
    assert set(AIUsage.objects.values_list("status", flat=True)) == {"ok", "error", "cached", "refused"}
    assert_rollups_match_ledger(site=a)
    assert_rollups_match_ledger(site=b)
    assert UsageDaily.objects.filter(day__in=days).count() == UsageDaily.objects.count()
    # seeding again adds to the same roll-ups
    call_command("seed_usage", "--rows", "100", "--site", a.domain, stdout=io.StringIO())
    assert_rollups_match_ledger(site=a)


@pytest.mark.django_db
def test_seed_usage_names_a_missing_site():
    with pytest.raises(CommandError, match=r"no site with domain 'nowhere\.example\.test'"):
        call_command("seed_usage", "--rows", "10", "--site", "nowhere.example.test")
    with pytest.raises(CommandError, match="--rows must be at least 1"):
        call_command("seed_usage", "--rows", "0", "--site", SiteFactory().domain)
    assert not AIUsage.objects.exists() and not UsageDaily.objects.exists()


def test_rollups_added_twice_sum(db):
    site = SiteFactory()
    row = AIUsage.objects.create(
        site=site,
        service="s",
        provider="openai",
        served_model="m",
        status="ok",
        latency_ms=42,
        total_tokens=3,
        cost=Decimal("0.5"),
    )
    usage_rollups.add([row])
    usage_rollups.add([row])
    rolled = UsageDaily.objects.get(site=site)
    assert (rolled.requests, rolled.total_tokens, rolled.cost, rolled.latency_histogram) == (
        2,
        6,
        Decimal("1"),
        {"42": 2},
    )
