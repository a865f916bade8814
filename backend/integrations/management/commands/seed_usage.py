"""`manage.py seed_usage --rows N --site DOMAIN [--site DOMAIN ...]`: a big, plausible usage ledger.

For benchmarks and demos of the dashboard on a large ledger (`bin/bench --dashboard` seeds 1,000,000
rows): N rows spread evenly over the last `--days` days (default 90) across the given sites, with a
mix of providers, models, services, errors, cache hits and refusals, and their daily roll-ups.
Rows are generated in time order and written in batches of 10,000; each batch and its roll-ups
(summed in Python, then one locked upsert) are one transaction, so the roll-ups always match the
ledger even if the command is stopped. Budget periods are not touched (seeded spend is history).
"""

from __future__ import annotations

import contextlib
import datetime
import random
import time
from collections.abc import Iterator
from decimal import Decimal

from django.contrib.sites.models import Site
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from integrations import usage_rollups
from integrations.models import AIUsage

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


@contextlib.contextmanager
def keeping_created_at() -> Iterator[None]:
    """Let `bulk_create` keep the `created_at` given (it is `auto_now_add`); this process only."""
    field = AIUsage._meta.get_field("created_at")
    field.auto_now_add = False
    try:
        yield
    finally:
        field.auto_now_add = True


def fake_row(rng: random.Random, site_id: int, created_at: datetime.datetime) -> AIUsage:
    """One ledger row as the gateway would write it for a call at `created_at`."""
    provider, model, prompt_price, completion_price = rng.choice(MODELS)
    service = rng.choice(SERVICES)
    roll = rng.random()
    base = {"site_id": site_id, "service": service, "provider": provider, "requested_model": model,
            "created_at": created_at}
    if roll < 0.02:
        return AIUsage(**base, attempt=0, status="refused", cost=Decimal(0), error_class=rng.choice(REFUSALS),
                       error_message="seeded refusal")
    if roll < 0.06:
        return AIUsage(**base, served_model=model, status="error", error_class=rng.choice(ERRORS),
                       error_message="seeded error", latency_ms=int(rng.lognormvariate(7.5, 0.6)))
    prompt, completion = rng.randint(50, 3000), rng.randint(10, 800)
    cached = rng.choice((0, 0, 0, prompt // 2))
    cost = ((prompt * prompt_price + completion * completion_price) / MILLION).quantize(Decimal("0.00000001"))
    if roll < 0.10:
        return AIUsage(**base, served_model=model, status="cached", cache_hit=True, prompt_tokens=prompt,
                       completion_tokens=completion, total_tokens=prompt + completion, cost=Decimal(0),
                       cost_source="cache", saved_cost=cost, latency_ms=rng.randint(0, 5))
    saved = (cached * prompt_price * Decimal("0.5") / MILLION).quantize(Decimal("0.00000001"))
    return AIUsage(**base, served_model=model, status="ok", prompt_tokens=prompt, completion_tokens=completion,
                   total_tokens=prompt + completion, cached_tokens=cached, cost=cost - saved,
                   cost_source="price_table", saved_cost=saved, latency_ms=int(rng.lognormvariate(6.3, 0.5)))


def seed(rows: int, site_ids: list[int], days: int = 90, seed_value: int = 0,
         progress: object | None = None) -> int:
    """Write `rows` ledger rows over the last `days` days and their roll-ups; returns the rows written."""
    rng = random.Random(seed_value)
    end = timezone.now()
    span = datetime.timedelta(days=days).total_seconds()
    start = end - datetime.timedelta(days=days)
    written = 0
    with keeping_created_at():
        while written < rows:
            count = min(BATCH, rows - written)
            batch = [fake_row(rng, site_ids[(written + i) % len(site_ids)],
                              start + datetime.timedelta(seconds=(written + i + rng.random()) / rows * span))
                     for i in range(count)]
            with transaction.atomic():
                AIUsage.objects.bulk_create(batch, batch_size=2000)
                usage_rollups.upsert(usage_rollups.aggregate(batch))
            written += count
            if callable(progress):
                progress(written)
    return written


class Command(BaseCommand):
    help = "Bulk-create N plausible AI usage ledger rows over the last 90 days, with their daily roll-ups."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rows", type=int, required=True, help="How many ledger rows to create.")
        parser.add_argument("--site", action="append", required=True, metavar="DOMAIN",
                            help="A site's domain (repeat for several; rows are spread over them).")
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

        written = seed(options["rows"], [found[d] for d in options["site"]], options["days"], options["seed"],
                       progress)
        self.stdout.write(f"Seeded {written:,} AI usage rows and their daily roll-ups over {options['days']} days "
                          f"for {', '.join(options['site'])} in {time.perf_counter() - started:.1f} s.")
