"""`manage.py ai_token USERNAME NAME [--site DOMAIN] [--scope generate --scope pages.write] [--days 90]`:
issue a token for POST /api/ai/generate/ (shown once, stored hashed), for one site, with scopes and an expiry."""

from __future__ import annotations

import datetime

from django.contrib.auth import get_user_model
from django.contrib.sites.models import Site
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from integrations.models import APIToken
from tenancy.access import can_manage


class Command(BaseCommand):
    help = "Issue an API token for a staff user; it is printed once and only its hash is kept."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("name", help="What the token is for, e.g. 'storefront'.")
        parser.add_argument(
            "--site",
            default="",
            help="Domain of the one site the token works for (default: every site the user manages).",
        )
        parser.add_argument(
            "--scope",
            action="append",
            choices=list(APIToken.SCOPES),
            default=None,
            help="What the token may do; repeat for several (default: generate).",
        )
        parser.add_argument(
            "--days",
            type=int,
            default=APIToken.DEFAULT_LIFETIME.days,
            help="Days until it expires; 0 for never (default: %(default)s).",
        )

    def handle(self, *args, **options) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None or not user.is_staff:
            raise CommandError(f"No staff user {options['username']!r}.")
        site = None
        if options["site"]:
            site = Site.objects.filter(domain=options["site"]).first()
            if site is None or not can_manage(user, site.pk):
                raise CommandError(f"{user.username} manages no site {options['site']!r}.")
        if options["days"] < 0:
            raise CommandError("--days must be 0 (never expires) or more.")
        expires = timezone.now() + datetime.timedelta(days=options["days"]) if options["days"] else None
        scopes = tuple(options["scope"] or (APIToken.SCOPE_GENERATE,))
        token, raw = APIToken.issue(user, options["name"], site=site, scopes=scopes, expires_at=expires)
        scope_text = f"site {site.domain}" if site else "every site they manage"
        until = f"until {expires:%Y-%m-%d}" if expires else "with no expiry"
        self.stdout.write(
            f"Token for {user.username} ({token.name}), {', '.join(token.scopes)} on {scope_text}, "
            f"{until}; copy it now, it is not shown again:"
        )
        self.stdout.write(raw)
