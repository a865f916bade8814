"""`manage.py ai_test "prompt"`: send one prompt through the same path the CMS uses and print what came back."""

from __future__ import annotations

from django.contrib.sites.models import Site
from django.core.management.base import BaseCommand, CommandError

from integrations.ai.gateway.service import AIService
from integrations.ai.governance.money import usd
from integrations.ai.ledger import usage
from integrations.ai.providers import registry
from integrations.ai.providers.errors import AIProviderError
from integrations.ai.runtime.conf import load_provider_specs


class Command(BaseCommand):
    help = "Send a test prompt through the AI layer; print the answer, model, tokens, latency and cost."

    def add_arguments(self, parser) -> None:
        parser.add_argument("prompt")
        load_provider_specs()
        parser.add_argument(
            "--provider",
            help=f"One of {', '.join(registry.direct_names())}, or a named endpoint of the site or deployment.",
        )
        parser.add_argument("--model")
        parser.add_argument("--site", help="Domain of the site whose AI settings to use (default: deployment).")
        parser.add_argument("--max-tokens", type=int, default=200)
        parser.add_argument("--temperature", type=float, default=0.7)

    def handle(self, *args, **options) -> None:
        site = None
        if options["site"]:
            site = Site.objects.filter(domain=options["site"]).first()
            if site is None:
                raise CommandError(f"No site with domain {options['site']!r}.")
        service = AIService(site=site, service="cli.ai_test")
        try:
            result = service.generate_content(
                options["prompt"],
                provider=options["provider"],
                model=options["model"],
                max_tokens=options["max_tokens"],
                temperature=options["temperature"],
            )
        except AIProviderError as exc:
            raise CommandError(f"{exc.code}: {exc}") from None
        finally:
            usage.flush()  # the ledger rows are in the database before the command returns
        cost = usd(result.cost) if result.cost is not None else "not reported"
        self.stdout.write(result.content)
        self.stdout.write("")
        via = f" (via {result.upstream_provider})" if result.upstream_provider else ""
        self.stdout.write(f"provider:  {result.provider}{via}")
        self.stdout.write(f"model:     {result.model} (requested {result.requested_model})")
        self.stdout.write(
            f"tokens:    {result.prompt_tokens} prompt + {result.completion_tokens} completion = {result.total_tokens}"
        )
        self.stdout.write(f"latency:   {result.latency_ms:.0f} ms over {result.attempts} attempt(s)")
        self.stdout.write(f"cost:      {cost}")
        self.stdout.write(f"finish:    {result.finish_reason}   request id: {result.request_id}")
