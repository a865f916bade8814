"""`manage.py ai_generate`: meta title and description for every page that lacks them, in batches."""

from __future__ import annotations

from django.conf import settings
from django.contrib.sites.models import Site
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from tqdm import tqdm

from integrations.ai.ledger import usage
from pages.models import Page
from pages.services.ai_service import AIService


class Command(BaseCommand):
    help = "Generate missing meta titles and descriptions with AI (batched, with a progress bar)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--site", help="Only this site's pages (domain).")
        parser.add_argument("--limit", type=int, help="At most this many pages.")
        parser.add_argument("--model", help="Model to use (default: each site's default).")
        parser.add_argument("--concurrency", type=int, default=settings.AI_BATCH_CONCURRENCY)
        parser.add_argument("--dry-run", action="store_true", help="List the pages, generate nothing.")

    def handle(self, *args, **options) -> None:
        pages = Page.objects.filter(Q(meta_title="") | Q(meta_description="")).select_related("site").order_by("pk")
        if options["site"]:
            site = Site.objects.filter(domain=options["site"]).first()
            if site is None:
                raise CommandError(f"No site with domain {options['site']!r}.")
            pages = pages.filter(site=site)
        pages = list(pages[: options["limit"]] if options["limit"] else pages)
        if not pages:
            self.stdout.write("No pages are missing meta.")
            return
        if options["dry_run"]:
            for page in pages:
                self.stdout.write(f"would generate: [{page.site.domain}] {page.title}")
            return
        failures: list[str] = []
        with tqdm(total=len(pages), desc="pages", unit="page", file=self.stderr._out, disable=False) as bar:

            def progress(page: Page, problem: str | None) -> None:
                bar.update(1)
                if problem:
                    failures.append(f"[{page.site.domain}] {page.title}: {problem}")

            try:
                AIService().generate_meta_batch(
                    pages, model=options["model"], concurrency=options["concurrency"], on_page=progress
                )
            finally:
                usage.flush()  # the ledger rows are in the database before the command returns
        done = len(pages) - len(failures)
        self.stdout.write(self.style.SUCCESS(f"Generated meta for {done} of {len(pages)} page(s)."))
        for line in failures:
            self.stdout.write(self.style.ERROR(f"failed: {line}"))
