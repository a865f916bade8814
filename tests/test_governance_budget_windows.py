"""Issue 14, item 3: daily/weekly/per-service budget windows, threshold alerts once per period, refusals recorded."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from integrations.ai.gateway.service import AIService
from integrations.ai.governance import budget_windows
from integrations.ai.ledger import usage
from integrations.ai.providers.errors import BudgetExceeded
from integrations.models import AIProviderSettings, AIUsage, BudgetAlert, ModelPrice

from .factories import SiteMembershipFactory, UserFactory

pytestmark = pytest.mark.django_db
# 100 prompt x $2.5/M + 100 completion x $10/M = $0.00125 a call
USAGE = {"prompt_tokens": 100, "completion_tokens": 100, "total_tokens": 200}
PER_CALL = Decimal("0.00125")


@pytest.fixture(autouse=True)
def gpt4o_price(db):
    ModelPrice.objects.create(
        provider="openai", model_id="gpt-4o", prompt_per_million=Decimal("2.5"), completion_per_million=Decimal("10")
    )


def call(site, service="general"):
    return AIService(site=site, service=service).generate_content("hi", model="gpt-4o", max_tokens=100)


def test_daily_cap_refuses_names_the_window_and_alerts_each_threshold_once(emulated_site, upstream):
    site = emulated_site("openai", daily_budget=PER_CALL * 4)
    admin = UserFactory(email="admin-a@example.test")
    SiteMembershipFactory(user=admin, site=site)
    stranger_site = emulated_site("openai")
    SiteMembershipFactory(user=UserFactory(email="admin-b@example.test"), site=stranger_site)
    upstream.script(flavor="openai", usage=USAGE, times=10)
    for _ in range(4):
        call(site)
    with pytest.raises(BudgetExceeded, match="daily budget of"):
        call(site)
    assert len(upstream.requests) == 4
    subjects = [m.subject for m in mail.outbox]
    assert len(subjects) == 3
    assert ["50%" in s for s in subjects] == [True, False, False]
    assert "80%" in subjects[1] and "100%" in subjects[2]
    assert all(m.to == ["admin-a@example.test"] for m in mail.outbox)
    assert set(BudgetAlert.objects.filter(site=site).values_list("window", "threshold")) == {
        ("day", 50),
        ("day", 80),
        ("day", 100),
    }
    # Crossing again in the same period (cold counters after a restart) sends nothing new.
    window = budget_windows.windows_for(_policy(site), None, "general")[0]
    assert budget_windows.send_alert(site.id, window, 80, PER_CALL * 4) is False
    assert len(mail.outbox) == 3
    usage.flush()
    refused = AIUsage.objects.get(site=site, status="refused")
    assert refused.error_class == "BudgetExceeded" and "daily budget" in refused.error_message


def _policy(site):
    from integrations.ai.sites.site_config import get_snapshot

    return get_snapshot(site.id).policy


def test_yesterdays_spend_does_not_count_today_but_this_weeks_does(emulated_site, upstream):
    site = emulated_site("openai", daily_budget=PER_CALL * 2)
    upstream.script(flavor="openai", usage=USAGE, times=10)
    call(site)
    call(site)
    with pytest.raises(BudgetExceeded):
        call(site)
    usage.flush()
    now = timezone.localtime()
    yesterday = now - datetime.timedelta(days=1)
    AIUsage.objects.filter(site=site).update(created_at=yesterday)
    from django.core.cache import cache

    cache.clear()  # cold counters: today's window is seeded from the ledger, where the spend is now yesterday's
    call(site)
    record = AIProviderSettings.objects.get(site=site)
    record.daily_budget = None
    record.weekly_budget = PER_CALL * 3
    record.save()
    from integrations.ai.sites.site_config import invalidate_site

    invalidate_site(site.id)
    usage.flush()
    cache.clear()
    if yesterday.date() >= (now - datetime.timedelta(days=now.weekday())).date():  # yesterday is in this week
        with pytest.raises(BudgetExceeded, match="weekly budget"):
            call(site)
    else:
        call(site)


def test_service_cap_applies_to_that_service_only(emulated_site, upstream):
    site = emulated_site("openai", service_budgets={"pages.meta": str(PER_CALL)})
    upstream.script(flavor="openai", usage=USAGE, times=10)
    call(site, "pages.meta")
    with pytest.raises(BudgetExceeded, match=r"service pages\.meta"):
        call(site, "pages.meta")
    call(site, "blocks")
    call(site, "blocks")
    assert len(upstream.requests) == 3


def test_monthly_cap_alerts_and_webhook_is_signed(emulated_site, upstream, settings):
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    settings.AI_OUTBOUND_ALLOWLIST = [*settings.AI_OUTBOUND_ALLOWLIST, host]
    try:
        site = emulated_site(
            "openai",
            monthly_budget=PER_CALL * 2,
            alert_thresholds=[50],
            alert_webhook_url=f"http://{host}/hook",
            alert_webhook_secret="whsec-test-123456",
        )
        upstream.script(flavor="openai", usage=USAGE, times=10)
        call(site)
    finally:
        server.shutdown()
    assert len(received) == 1
    headers, body = received[0]
    expected = "sha256=" + hmac.new(b"whsec-test-123456", body, hashlib.sha256).hexdigest()
    assert headers["X-Panel-Signature"] == expected
    payload = json.loads(body)
    assert (payload["window"], payload["threshold"], Decimal(payload["spent"])) == ("month", 50, PER_CALL)
    assert b"whsec" not in body


def test_webhook_to_a_private_address_is_refused_at_save(emulated_site):
    record = AIProviderSettings.objects.get(site=emulated_site("openai"))
    record.alert_webhook_url = "http://10.0.0.5/hook"
    record.service_budgets = {"pages.meta": "-1"}
    record.alert_thresholds = [50, "eighty"]
    with pytest.raises(ValidationError) as caught:
        record.full_clean()
    assert set(caught.value.message_dict) >= {"alert_webhook_url", "service_budgets", "alert_thresholds"}
    # the message names the field that was refused (issue 19), not a base URL
    (message,) = caught.value.message_dict["alert_webhook_url"]
    assert message.startswith("A site's alert webhook URL must use https.")


def test_a_batch_counts_in_the_daily_window_and_is_refused_up_front_past_it(emulated_site, upstream):
    """A batch reserves its worst case in every window before it starts; what it spent stays in the day's count."""
    site = emulated_site("openai", daily_budget=Decimal("0.0095"))
    upstream.script(flavor="openai", usage=USAGE, times=20)
    # Worst case of one prompt: (2//3 + 16) prompt x $2.5/M + 300 completion x $10/M = $0.00304: three fit.
    items = AIService(site=site).generate_batch(["hi"] * 3, concurrency=2, model="gpt-4o", max_tokens=300)
    assert all(item.ok for item in items)
    # Spent 3 x $0.00125 = $0.00375: a batch of two more ($0.00608 at worst) would pass $0.0095.
    with pytest.raises(BudgetExceeded, match="daily budget of"):
        AIService(site=site).generate_batch(["hi"] * 2, model="gpt-4o", max_tokens=300)
    assert len(upstream.requests) == 3
    call(site)  # $0.00125 more, worst case $0.00129 with max_tokens=100
    usage.flush()
    assert AIUsage.objects.filter(site=site, status="refused", error_class="BudgetExceeded").count() == 1


def test_a_batch_that_crosses_a_monthly_threshold_sends_its_alert(emulated_site, upstream):
    """The month's alerts read the monthly cap's own counter (one count of the month), batches included."""
    site = emulated_site("openai", monthly_budget=PER_CALL * 4, alert_thresholds=[50, 100])
    SiteMembershipFactory(user=UserFactory(email="admin-m@example.test"), site=site)
    upstream.script(flavor="openai", usage=USAGE, times=10)
    AIService(site=site).generate_batch(["hi"] * 2, model="gpt-4o", max_tokens=100)
    assert [m.subject for m in mail.outbox] == [f"[{site.domain}] AI spend at 50% of the monthly budget"]
    call(site)
    call(site)
    assert len(mail.outbox) == 2 and "100%" in mail.outbox[1].subject
    assert set(BudgetAlert.objects.filter(site=site).values_list("window", "threshold")) == {
        ("month", 50),
        ("month", 100),
    }


def test_a_window_that_refuses_gives_back_what_the_others_held(emulated_site, upstream):
    """The windows are reserved together (one cache operation): when one refuses, the refusal names the first
    window the call does not fit, and nothing stays held in any window; a settlement moves every window."""
    from django.core.cache import cache

    site = emulated_site("openai", daily_budget=PER_CALL * 10, weekly_budget=PER_CALL * 2, service_budgets={})
    upstream.script(flavor="openai", usage=USAGE, times=10)
    call(site)
    call(site)
    with pytest.raises(BudgetExceeded, match="weekly budget of"):
        call(site)
    counters = {
        window.name: [cache.get(key) for key in window.keys(site.id)]
        for window in budget_windows.windows_for(_policy(site), None, "general")
    }
    two_calls = int(PER_CALL * 2 * 1_000_000)
    assert counters == {"day": [two_calls, two_calls], "week": [two_calls, two_calls]}  # used == spent: none held
    assert len(upstream.requests) == 2


@pytest.mark.parametrize(
    ("monthly", "daily", "named"),
    [
        (PER_CALL * 2, PER_CALL * 2, "daily budget of"),
        (PER_CALL * 2, PER_CALL * 10, "monthly AI budget of"),
        (PER_CALL * 10, PER_CALL * 2, "daily budget of"),
    ],
    ids=["both-full", "only-the-month-full", "only-the-day-full"],
)
def test_a_refusal_with_the_monthly_cap_gives_every_hold_back_and_names_a_full_window_first(
    emulated_site, upstream, monthly, daily, named
):
    """The windows' holds move in the monthly cap's own round trip. When the month refuses, a window that is full
    too is the one named (as when the windows were reserved first), and neither the month nor any window keeps a
    hold."""
    from django.core.cache import cache

    from integrations.ai.governance import budget

    site = emulated_site("openai", monthly_budget=monthly, daily_budget=daily)
    upstream.script(flavor="openai", usage=USAGE, times=10)
    call(site)
    call(site)
    with pytest.raises(BudgetExceeded, match=named):
        call(site)
    two_calls = int(PER_CALL * 2 * 1_000_000)
    day = next(w for w in budget_windows.windows_for(_policy(site), None, "general") if w.name == "day")
    assert [cache.get(key) for key in day.keys(site.id)] == [two_calls, two_calls]
    assert [cache.get(key) for key in budget.counter_keys(site.id)] == [two_calls, two_calls]
    assert len(upstream.requests) == 2
