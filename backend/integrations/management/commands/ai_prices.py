"""`manage.py ai_prices MODEL [--provider P] [--site DOMAIN]`: how a model id is priced, and from where.

Prints, per provider, the source (a ModelPrice override, a free endpoint, the genai-prices catalogue,
or unpriced), the entry it matched (a dated id matches its model's entry) and the per-million prices,
resolved exactly as the gateway resolves a call's cost (`integrations.ai.pricing`).
"""

from __future__ import annotations

from django.contrib.sites.models import Site
from django.core.management.base import BaseCommand, CommandError

from integrations.ai import pricing
from integrations.ai.sites.site_config import get_snapshot


class Command(BaseCommand):
    help = "Show how a model id resolves to a price: source, entry and USD per million tokens."

    def add_arguments(self, parser) -> None:
        parser.add_argument("model", help="The id as a vendor answers with it, e.g. gpt-4o-mini-2024-07-18.")
        parser.add_argument("--provider", help="openai, anthropic, openrouter or a named endpoint (default: each).")
        parser.add_argument("--site", help="A site's domain (its named endpoints); default: the deployment's.")

    def handle(self, *args, **options) -> None:
        site_id = None
        if options["site"]:
            site = Site.objects.filter(domain=options["site"]).first()
            if site is None:
                raise CommandError(f"No site with the domain {options['site']!r}.")
            site_id = site.pk
        snapshot = get_snapshot(site_id)
        names = [options["provider"]] if options["provider"] else [*pricing.CATALOGUE_IDS, *snapshot.instances]
        for name in names:
            if name not in pricing.CATALOGUE_IDS and name not in snapshot.instances:
                known = ", ".join([*pricing.CATALOGUE_IDS, *snapshot.instances])
                raise CommandError(f"Unknown provider {name!r}; use one of: {known}.")
            resolution = snapshot.prices.resolve(name, options["model"])
            self.stdout.write(f"{name}:{options['model']} -> {pricing.describe(resolution)}")
        self.stdout.write(f"catalogue: {pricing.catalogue_version()} (upgrade the pinned package to refresh it)")
