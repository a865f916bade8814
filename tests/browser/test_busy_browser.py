"""Busy states of the AI screens in a real browser (issue 13, deliverable 6), and the prompt run
screen end to end (deliverable 2): a slow provider shows a spinner with elapsed seconds and disables
the buttons; a failed stream is an admin error message, not raw JSON; a saved run shows its numbers."""

from __future__ import annotations

import base64
import json
import re
import time

import pytest
from django.contrib.auth.models import Permission

from integrations.models import AIProviderSettings
from prompts.models import PromptRun
from tests.browser.conftest import SCREENSHOTS
from tests.factories import SiteFactory, SiteMembershipFactory, SuperUserFactory, UserFactory
from tests.factories_cms import PromptTemplateFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def submit_and_watch(page, request, click: str, step: str) -> dict:
    """Click `click` (a submit button: the page navigates when the answer arrives) and report what the
    page shows while the server is still waiting for the provider, with a screenshot of that moment.

    Playwright blocks queries on a page whose navigation has started, so the page reports its own
    state on the console every 100 ms, and the screenshot is taken over a raw DevTools session.
    """
    states: list[dict] = []

    def on_console(message) -> None:
        if message.text.startswith("busy-probe "):
            states.append(json.loads(message.text[len("busy-probe ") :]))

    page.on("console", on_console)
    page.evaluate(
        """(click) => {
      setInterval(() => {
        const busy = document.querySelector('.ai-busy');
        console.log('busy-probe ' + JSON.stringify(busy ? {
          text: busy.textContent.trim(), form: busy.closest('form') && busy.closest('form').id,
          disabled: Object.fromEntries(Array.from(
            document.querySelectorAll('#content form button, #content form input[type=submit]'))
            .map(b => [b.name || b.id, b.disabled]))} : {}));
      }, 100);
      setTimeout(() => document.querySelector(click).click(), 0);
    }""",
        click,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(s.get("text", "").endswith(" 1 s") for s in states):
        page.wait_for_timeout(50)
    seen = [s for s in states if s.get("text", "").endswith(" 1 s")]
    assert seen, f"no busy indicator with elapsed seconds appeared: {states[-3:]}"
    cdp = page.context.new_cdp_session(page)
    png = cdp.send("Page.captureScreenshot", {"format": "png"})["data"]
    cdp.detach()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / f"{request.node.name}-{step}.png").write_bytes(base64.b64decode(png))
    page.remove_listener("console", on_console)
    return seen[0]


def test_test_screen_shows_busy_state_and_stream_errors_as_messages(
    page, live_server, admin_login, emulated_site, upstream, screenshot, settings, request
):
    settings.AI_MAX_RETRIES = 0
    site = emulated_site("openai", site=SiteFactory(domain="localhost", name="Busy bakery"))
    record = AIProviderSettings.objects.get(site=site)
    user = UserFactory(username="busy-admin")
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="integrations",
            codename__in=["view_aiprovidersettings", "change_aiprovidersettings"],
        )
    )
    admin_login("busy-admin")
    page.goto(f"{live_server.url}/admin/integrations/aiprovidersettings/{record.pk}/test/")
    page.fill("#id_prompt", "Name a bread")

    upstream.script(delay=2.5)
    state = submit_and_watch(page, request, "input[name=_send]", "1-busy-send")
    assert re.fullmatch(r"Waiting for the provider… 1 s", state["text"].strip())
    assert state["form"] == "test-provider-form"
    assert state["disabled"] == {"_send": True, "stream-button": True}
    page.wait_for_selector("#test-result")
    assert page.inner_text("#answer") == "Emulated openai reply (gpt-4o-mini): Name a bread"
    assert page.locator(".ai-busy").count() == 0
    screenshot("2-answer")

    upstream.script(delay=2.0)
    page.fill("#id_prompt", "Stream a bread")
    page.click("#stream-button")
    page.locator("#test-provider-form .ai-busy").wait_for(state="visible")
    assert page.locator("input[name=_send]").is_disabled() and page.locator("#stream-button").is_disabled()
    screenshot("3-busy-stream")
    page.wait_for_function("document.getElementById('stream-stats').textContent.includes('tokens')")
    assert page.locator(".ai-busy").count() == 0
    assert page.locator("#stream-button").is_enabled() and page.locator("input[name=_send]").is_enabled()

    upstream.script(status=401)
    page.click("#stream-button")
    page.wait_for_selector("#stream-error")
    screenshot("4-stream-error")
    message = page.inner_text(".messagelist li.error#stream-error")
    assert message.startswith("Streaming failed (")
    assert "{" not in message and '"error"' not in page.inner_text("#content")
    assert page.locator("#stream-button").is_enabled()
    assert page.locator("#stream-output").is_hidden()  # nothing streamed: no empty answer box
    assert page.locator("#test-result").is_hidden()  # the earlier answer is not shown as this one's


def test_prompt_run_screen_busy_then_saved_with_numbers(
    page, live_server, admin_login, emulated_site, upstream, screenshot, request
):
    site = emulated_site("openrouter", site=SiteFactory(domain="localhost", name="Run bakery"))
    template = PromptTemplateFactory(site=site, default_model="")
    SuperUserFactory(username="run-root")
    admin_login("run-root")
    page.goto(f"{live_server.url}/admin/prompts/prompttemplate/{template.pk}/change/")
    page.click("text=Run with AI")
    page.fill("#id_product", "rye")
    page.fill("#id_audience", "students")
    page.select_option("#id_site", str(site.pk))
    upstream.script(delay=2.0)
    state = submit_and_watch(page, request, "input[name=_preview]", "1-busy-preview")
    assert state["form"] == "run-form" and state["text"].strip() == "Generating… 1 s"
    assert state["disabled"] == {"_preview": True, "stream-button": True, "stream-cancel": True}  # one answer at a time
    page.wait_for_selector("#save-form")
    facts = page.inner_text("#preview-facts")
    assert re.match(r"OpenRouter · openai/gpt-4o-mini · \d+ prompt \+ \d+ completion = \d+ tokens · cost \$", facts)
    screenshot("2-preview")
    page.fill("#id_output", "Rye for students, edited.")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    screenshot("3-saved-run")
    run = PromptRun.objects.get()
    assert page.inner_text(".field-provider_name .readonly") == "OpenRouter"
    assert page.inner_text(".field-cost_usd .readonly") == f"${run.cost.normalize():f}"
    assert run.output == "Rye for students, edited." and run.total_tokens > 0 and run.cost is not None
    assert run.model == "openai/gpt-4o-mini" and run.provider == "openrouter"
    page.click("a.usage-link")
    page.wait_for_selector("#result_list")
    screenshot("4-usage-rows")
    assert page.locator("#result_list tbody tr").count() == 1
