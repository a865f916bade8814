"""`manage.py ai_token USERNAME NAME`: issue a token for POST /api/ai/generate/ (shown once, stored hashed)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from integrations.models import APIToken


class Command(BaseCommand):
    help = "Issue an API token for a staff user; it is printed once and only its hash is kept."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("name", help="What the token is for, e.g. 'storefront'.")

    def handle(self, *args, **options) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None or not user.is_staff:
            raise CommandError(f"No staff user {options['username']!r}.")
        token, raw = APIToken.issue(user, options["name"])
        self.stdout.write(f"Token for {user.username} ({token.name}); copy it now, it is not shown again:")
        self.stdout.write(raw)
