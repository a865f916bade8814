"""The admin's test screen tries extended thinking (a thinking budget), in Chromium, as a site admin and a
superuser, on a site with its own Anthropic key: the form's own checks shown on their fields, then the
model's signed thinking above its answer. Screens go to var/screenshots/."""

from __future__ import annotations

import pytest

from integrations.models import AIProviderSettings
from tests.factories import SiteFactory

from .test_admin_truth_browser import at, no_sideways_scroll, person

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("role", ["site admin", "superuser"])
def test_the_test_screen_shows_the_models_thinking(
    page, live_server, admin_login, emulated_site, upstream, screenshot, role
):
    site = emulated_site("anthropic", site=SiteFactory(domain="localhost", name="Bakery"))
    record = AIProviderSettings.objects.get(site=site)
    admin_login(person(role, site).username)
    at(page, 1366)
    page.goto(f"{live_server.url}/admin/integrations/aiprovidersettings/{record.pk}/test/")
    page.select_option("#id_provider", "anthropic")
    page.select_option("#id_model", "claude-sonnet-4")
    page.fill("#id_prompt", "A name for a bakery")
    page.fill("#id_max_tokens", "2048")
    page.fill("#id_thinking_budget", "1024")  # temperature left at 0.7: the form says what to change
    page.click("input[name=_send]")
    page.wait_for_selector(".errorlist")
    screenshot(f"thinking-1-temperature-{role}")
    assert "Extended thinking takes temperature 1" in page.inner_text("body")
    assert upstream.requests_for("anthropic") == []  # nothing sent

    page.fill("#id_temperature", "1")
    page.click("input[name=_send]")
    page.wait_for_selector("#test-result", timeout=60_000)
    screenshot(f"thinking-2-answer-{role}")
    thinking = page.inner_text("#result-thinking")
    assert "Emulated thinking before answering: A name for a bakery" in thinking and "Signed by the vendor." in thinking
    assert page.inner_text("#answer").startswith("Emulated anthropic reply")
    assert upstream.requests_for("anthropic")[-1].json["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    no_sideways_scroll(page)
