"""`manage.py seed_usage --rows N --site DOMAIN [--site DOMAIN ...]`: a big, plausible usage ledger.

For benchmarks and demos of the dashboard on a large ledger (`bin/bench --dashboard` seeds 1,000,000
rows): N rows spread evenly over the last `--days` days (default 90) across the given sites, with a
mix of providers, models, services, errors, cache hits and refusals, and their daily roll-ups.
Rows are generated in time order and written in batches of 10,000 (one `executemany` each); each
batch and its roll-ups (summed in Python, then one locked upsert) are one transaction, so the roll-ups always match the
ledger even if the command is stopped. Budget periods are not touched (seeded spend is history).
"""

from __future__ import annotations

import datetime
import random
import time
from decimal import Decimal
from types import SimpleNamespace

from django.contrib.sites.models import Site
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from integrations.models import AIUsage
from integrations.usage import rollups as usage_rollups

BATCH = 10_000
MODELS = (  # provider, model, $ per 1M prompt tokens, $ per 1M completion tokens
    ("openrouter", "openai/gpt-4o-mini", Decimal("0.15"), Decimal("0.60")),
    ("openrouter", "anthropic/claude-3.5-haiku", Decimal("0.80"), Decimal("4.00")),
    ("openai", "gpt-4o", Decimal("2.50"), Decimal("10.00")),
    ("openai", "gpt-4o-mini", Decimal("0.15"), Decimal("0.60")),
    ("anthropic", "claude-3-5-sonnet-20241022", Decimal("3.00"), Decimal("15.00")),
    ("anthropic", "claude-3-5-haiku", Decimal("0.80"), Decimal("4.00")),
)
SERVICES = ("pages.meta", "pages.summary", "pages.alt_text", "prompts.render", "api.generate")
ERRORS = ("ProviderUnavailable", "ProviderRateLimited")
REFUSALS = ("BudgetExceeded", "RateLimited", "PolicyViolation")
MILLION = Decimal(1_000_000)
EIGHT = Decimal("0.00000001")


COLUMNS = (
    "site_id",
    "service",
    "provider",
    "requested_model",
    "served_model",
    "attempt",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost",
    "cost_source",
    "saved_cost",
    "latency_ms",
    "status",
    "error_class",
    "error_message",
    "cache_hit",
    "request_id",
    "content_label",
    "created_at",
)
DEFAULTS = {
    "served_model": "",
    "attempt": 1,
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "total_tokens": 0,
    "cached_tokens": 0,
    "cache_write_tokens": 0,
    "reasoning_tokens": 0,
    "cost": None,
    "cost_source": "",
    "saved_cost": Decimal(0),
    "latency_ms": 0,
    "error_class": "",
    "error_message": "",
    "cache_hit": False,
    "request_id": "",
    "content_label": "",
}


def fake_row(rng: random.Random, site_id: int, created_at: datetime.datetime) -> SimpleNamespace:
    """One ledger row's fields as the gateway would write them for a call at `created_at`."""
    provider, model, prompt_price, completion_price = rng.choice(MODELS)
    row = SimpleNamespace(
        **DEFAULTS,
        site_id=site_id,
        service=rng.choice(SERVICES),
        provider=provider,
        requested_model=model,
        created_at=created_at,
    )
    roll = rng.random()
    if roll < 0.02:
        row.__dict__.update(
            attempt=0,
            status="refused",
            cost=Decimal(0),
            error_class=rng.choice(REFUSALS),
            error_message="seeded refusal",
        )
        return row
    row.served_model = model
    if roll < 0.06:
        row.__dict__.update(
            status="error",
            error_class=rng.choice(ERRORS),
            error_message="seeded error",
            latency_ms=int(rng.lognormvariate(7.5, 0.6)),
        )
        return row
    prompt, completion = rng.randint(50, 3000), rng.randint(10, 800)
    cached = rng.choice((0, 0, 0, prompt // 2))
    cost = ((prompt * prompt_price + completion * completion_price) / MILLION).quantize(EIGHT)
    row.__dict__.update(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
    if roll < 0.10:
        row.__dict__.update(
            status="cached",
            cache_hit=True,
            cost=Decimal(0),
            cost_source="cache",
            saved_cost=cost,
            latency_ms=rng.randint(0, 5),
        )
        return row
    saved = (cached * prompt_price * Decimal("0.5") / MILLION).quantize(EIGHT)
    row.__dict__.update(
        status="ok",
        cached_tokens=cached,
        cost=cost - saved,
        cost_source="price_table",
        saved_cost=saved,
        latency_ms=int(rng.lognormvariate(6.3, 0.5)),
    )
    return row


def insert(rows: list[SimpleNamespace]) -> None:
    """One `executemany` INSERT of ledger rows (the ORM's per-value preparation would dominate the run)."""
    table = connection.ops.quote_name(AIUsage._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in COLUMNS)
    sql = f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"  # noqa: S608 (constants)
    when = connection.ops.adapt_datetimefield_value
    decimal = connection.ops.adapt_decimalfield_value
    values = [[*(getattr(r, c) for c in COLUMNS[:-1]), when(r.created_at)] for r in rows]
    for v in values:
        v[12] = decimal(v[12], 14, 8) if v[12] is not None else None  # cost
        v[14] = decimal(v[14], 14, 8)  # saved_cost
    with connection.cursor() as cursor:
        cursor.executemany(sql, values)


def seed(rows: int, site_ids: list[int], days: int = 90, seed_value: int = 0, progress: object | None = None) -> int:
    """Write `rows` ledger rows over the last `days` days and their roll-ups; returns the rows written."""
    rng = random.Random(seed_value)
    end = timezone.now()
    span = datetime.timedelta(days=days).total_seconds()
    start = end - datetime.timedelta(days=days)
    written = 0
    while written < rows:
        count = min(BATCH, rows - written)
        batch = [
            fake_row(
                rng,
                site_ids[(written + i) % len(site_ids)],
                start + datetime.timedelta(seconds=(written + i + rng.random()) / rows * span),
            )
            for i in range(count)
        ]
        with transaction.atomic():  # a batch and its roll-ups, together
            insert(batch)
            usage_rollups.upsert(usage_rollups.aggregate(batch))
        written += count
        if callable(progress):
            progress(written)
    return written


class Command(BaseCommand):
    help = "Bulk-create N plausible AI usage ledger rows over the last 90 days, with their daily roll-ups."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rows", type=int, required=True, help="How many ledger rows to create.")
        parser.add_argument(
            "--site",
            action="append",
            required=True,
            metavar="DOMAIN",
            help="A site's domain (repeat for several; rows are spread over them).",
        )
        parser.add_argument("--days", type=int, default=90, help="Spread the rows over this many past days.")
        parser.add_argument("--seed", type=int, default=0, help="Random seed (same seed, same rows).")

    def handle(self, *args, **options) -> None:
        if options["rows"] < 1:
            raise CommandError(f"--rows must be at least 1; got {options['rows']}.")
        if options["days"] < 1:
            raise CommandError(f"--days must be at least 1; got {options['days']}.")
        found = dict(Site.objects.filter(domain__in=options["site"]).values_list("domain", "pk"))
        missing = [d for d in options["site"] if d not in found]
        if missing:
            raise CommandError(f"--site: no site with domain {', '.join(map(repr, missing))}.")
        started = time.perf_counter()
        verbose = options["verbosity"] > 1

        def progress(done: int) -> None:
            if verbose or done == options["rows"]:
                self.stdout.write(f"  {done:,} rows ({time.perf_counter() - started:.0f} s)")

        written = seed(options["rows"], [found[d] for d in options["site"]], options["days"], options["seed"], progress)
        self.stdout.write(
            f"Seeded {written:,} AI usage rows and their daily roll-ups over {options['days']} days "
            f"for {', '.join(options['site'])} in {time.perf_counter() - started:.1f} s."
        )
