"""How long the main admin screens take to render with the demo data (issue 13: each under 300 ms).

`bin/bench --admin` runs it: a fresh `var/bench-admin.sqlite3`, `load_demo` pointed at an in-process
emulator, a few real AI calls so the ledger, runs and dashboard have rows, then each screen fetched
through Django's test client (the full middleware and template stack, no network) as the superuser
and as the demo site admin; the median of 7 warm renders is printed per screen.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB = ROOT / "var" / "bench-admin.sqlite3"
TARGET_MS = 300.0


def setup() -> None:
    sys.path[:0] = [str(ROOT / "backend"), str(ROOT)]
    os.environ["DJANGO_SETTINGS_MODULE"] = "panel.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{DB}"
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    os.environ["DJANGO_SECURE_SSL_REDIRECT"] = "0"
    os.environ["DJANGO_SESSION_COOKIE_SECURE"] = "0"
    os.environ["DJANGO_CSRF_COOKIE_SECURE"] = "0"
    os.environ["AI_OUTBOUND_ALLOWLIST"] = "127.0.0.1"
    DB.parent.mkdir(exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{DB}{suffix}").unlink(missing_ok=True)
    import django

    django.setup()


def screens() -> list[tuple[str, str]]:
    from django.urls import reverse

    from integrations.models import AIProviderSettings, BatchJob
    from pages.models import Page
    from prompts.models import PromptTemplate

    record = AIProviderSettings.objects.order_by("pk").first()
    page = Page.objects.order_by("pk").first()
    template = PromptTemplate.objects.order_by("pk").first()
    found = [
        ("admin index", reverse("admin:index")),
        ("AI provider settings list", reverse("admin:integrations_aiprovidersettings_changelist")),
        ("AI provider settings (with keys)", reverse("admin:integrations_aiprovidersettings_change", args=[record.pk])),
        ("test provider screen", reverse("admin:integrations_aiprovidersettings_test", args=[record.pk])),
        ("model mappings", reverse("admin:integrations_modelmapping_changelist")),
        ("AI usage ledger", reverse("admin:integrations_aiusage_changelist")),
        ("usage dashboard", reverse("admin:integrations_aiusage_dashboard")),
        ("pages", reverse("admin:pages_page_changelist")),
        ("page (with blocks)", reverse("admin:pages_page_change", args=[page.pk])),
        ("prompt templates", reverse("admin:prompts_prompttemplate_changelist")),
        ("run template", reverse("admin:prompts_prompttemplate_run", args=[template.pk])),
        ("prompt runs", reverse("admin:prompts_promptrun_changelist")),
        ("batch jobs", reverse("admin:integrations_batchjob_changelist")),
    ]
    job = BatchJob.objects.order_by("pk").first()
    if job is not None:
        found.append(("batch job", reverse("admin:integrations_batchjob_change", args=[job.pk])))
    return found


def main() -> None:
    setup()
    from django.core.management import call_command
    from django.test import Client

    from integrations.ai.gateway.service import AIService
    from integrations.ai.ledger import usage
    from integrations.ai.testing.upstream import Upstream
    from integrations.models import AIProviderSettings
    from pages.models import Page
    from pages.tasks import start_generate_meta

    upstream = Upstream().start()
    call_command("migrate", verbosity=0)
    call_command("load_demo", upstream_url=upstream.url, verbosity=0)
    for record in AIProviderSettings.objects.select_related("site"):
        for n in range(20):  # a ledger to list and chart
            AIService(site=record.site, service="bench.admin").generate_content(f"Describe product {n}", max_tokens=60)
        page_ids = list(Page.objects.filter(site=record.site).values_list("pk", flat=True))
        start_generate_meta(record.site, page_ids=page_ids)
    usage.flush()

    rows = []
    for username in ("admin", "site-a-admin"):
        client = Client()
        client.login(username=username, password="demo")
        for name, url in screens():
            statuses = set()
            samples = []
            for _ in range(9):
                started = time.perf_counter()
                response = client.get(url)
                samples.append((time.perf_counter() - started) * 1000)
                statuses.add(response.status_code)
            rows.append((username, name, statistics.median(samples[2:]), max(samples[2:]), statuses))
    upstream.stop()
    print(f"admin screens with the demo data (median of 7 warm renders; target < {TARGET_MS:.0f} ms)")
    print(f"{'user':<14}{'screen':<36}{'median ms':>10}{'max ms':>9}  status")
    for username, name, median, worst, statuses in rows:
        flag = "" if median < TARGET_MS else "  OVER"
        print(f"{username:<14}{name:<36}{median:>10.1f}{worst:>9.1f}  {sorted(statuses)}{flag}")


if __name__ == "__main__":
    main()
