"""`manage.py load_demo`: demo sites, mappings, prices and users, wired to the local upstream emulator.

Fixtures never hold keys. The demo records' credential rows get placeholder tokens here, shaped nothing like a real
key, which only the emulator accepts, and base URLs pointing at it; they stay labelled as a demo
upstream in the admin.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from integrations.models import AIProviderSettings, ProviderCredential

DEMO_USERS = ("admin", "site-a-admin", "editor")  # superuser; site admin and editor of "Bakery (OpenRouter)"


class Command(BaseCommand):
    help = "Load the demo data (fixtures/demo.json) and point the demo sites at the upstream emulator."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--upstream-url", default="http://127.0.0.1:8765", help="Where ai_emulator listens.")
        parser.add_argument("--password", default="demo", help="Password for the demo users.")

    def handle(self, *args, **options) -> None:
        for fixture in ("demo.json", "demo_translation.json"):  # demo_translation: languages, a translated page
            call_command("loaddata", str(settings.BASE_DIR / "fixtures" / fixture), verbosity=0)
        url = options["upstream_url"].rstrip("/")
        bases = {
            "openrouter": f"{url}/openrouter/api/v1",
            "openai": f"{url}/openai/v1",
            "anthropic": f"{url}/anthropic",
        }
        for record in AIProviderSettings.objects.filter(is_demo_upstream=True).select_related("site"):
            for provider, base_url in bases.items():
                ProviderCredential.objects.update_or_create(
                    settings=record,
                    name=provider,
                    defaults={"provider": provider, "api_key": f"emulator-demo-token-{provider}", "base_url": base_url},
                )
            record.save()
            self.stdout.write(
                f"demo upstream for {record.site.name} ({record.site.domain}): {record.provider_type} via {url}"
            )
        users = get_user_model().objects.filter(username__in=DEMO_USERS)
        for user in users:
            user.set_password(options["password"])
            user.save(update_fields=["password"])
        self.stdout.write(f"demo users: {', '.join(u.username for u in users)} (password set)")
