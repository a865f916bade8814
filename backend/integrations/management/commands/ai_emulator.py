"""`manage.py ai_emulator`: run the loopback upstream emulator for the demo (no vendor, no key, no network)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from integrations.ai.testing.upstream import main


class Command(BaseCommand):
    help = "Serve the OpenAI/OpenRouter/Anthropic upstream emulator on loopback (demo only)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)

    def handle(self, *args, **options) -> None:
        main(["--host", options["host"], "--port", str(options["port"])])
