"""`manage.py prune_usage [--days N]`: delete raw AI usage ledger rows older than N days (roll-ups stay)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from integrations.ai.ledger import usage
from integrations.ai.runtime import conf
from integrations.usage.retention import BATCH_SIZE, cutoff, prune


class Command(BaseCommand):
    help = (
        "Delete raw AI usage ledger rows older than --days (default AI_USAGE_RETENTION_DAYS), in batches. "
        "The daily roll-ups the dashboard reads are never deleted."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, help="Keep this many days of raw rows (default: the setting).")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="Rows deleted per transaction.")

    def handle(self, *args, **options) -> None:
        days = options["days"] if options["days"] is not None else conf.usage_retention_days()
        if days < 1:
            raise CommandError(f"--days must be at least 1; got {days}.")
        if options["batch_size"] < 1:
            raise CommandError(f"--batch-size must be at least 1; got {options['batch_size']}.")
        usage.flush()  # rows still queued in this process are written (and rolled up) first
        deleted = prune(days, batch_size=options["batch_size"])
        self.stdout.write(
            f"Deleted {deleted} AI usage row(s) created before {cutoff(days):%Y-%m-%d %H:%M %Z} "
            f"(kept {days} days; daily roll-ups kept)."
        )
