"""`manage.py index_pages [--site DOMAIN]`: embed the changed pages for search by meaning (a job per site)."""

from __future__ import annotations

from django.contrib.sites.models import Site
from django.core.management.base import BaseCommand

from pages.tasks import start_embed


class Command(BaseCommand):
    help = "Embed the changed pages of every site (or one) for search by meaning; prints each site's job."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--site", help="Only this site (its domain).")

    def handle(self, *args, **options) -> None:
        sites = Site.objects.order_by("pk")
        if options["site"]:
            sites = sites.filter(domain=options["site"])
        for site in sites:
            job = start_embed(site)
            job.refresh_from_db()
            detail = job.error or "; ".join(f"{i['item']}: {i['message'] or i['code']}" for i in job.items)
            self.stdout.write(f"{site.name or site.domain}: {job.status} {detail}".rstrip())
