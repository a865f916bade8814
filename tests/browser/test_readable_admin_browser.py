"""The admin reads as words and fits the screen (issue 28, "Weak"), in Chromium as superuser, site admin
and editor, at 1366 and 375 px: sites named "Name (domain)" everywhere and a one-site user never asked
to pick one, no page wider than the window, codes shown as words (one mapping), labelled meta review
boxes, the test screen's models grouped by vendor with a filter, the settings page in collapsible
sections with the keys near the top. Every screen goes to var/screenshots/."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from integrations.models import AIProviderSettings
from tests.browser.test_dashboard_browser import spread
from tests.factories import SiteFactory, SiteMembershipFactory, SuperUserFactory, UserFactory
from tests.factories_cms import PageFactory, PromptTemplateFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = {"desktop": (1366, 800), "phone": (375, 740)}
ROLES = ("superuser", "site_admin", "editor")
PERMS = {
    "site_admin": {
        "integrations": ["view_aiprovidersettings", "change_aiprovidersettings", "view_aiusage", "view_modelmapping"],
        "pages": ["view_page", "change_page", "add_page"],
        "prompts": ["view_prompttemplate", "change_prompttemplate", "add_promptrun", "view_promptrun"],
    },
    "editor": {"pages": ["view_page", "change_page"], "prompts": ["view_prompttemplate", "add_promptrun"]},
}
OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"
# The elements that stick out of the window (outermost first), to name in a failure.
WIDE = """[...document.querySelectorAll('body *')].filter(el => el.getBoundingClientRect().right > window.innerWidth + 1
  && !el.closest('[style*=overflow], .results, .site-overview, .dashboard-tables section'))
  .slice(0, 6)
  .map(el => el.tagName + '#' + el.id + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right))"""


@pytest.fixture
def world(emulated_site):
    """Two sites with settings, a fortnight of usage each, a page and a global prompt template."""
    SiteFactory(domain="localhost", name="Admin host")  # the live server's host
    bakery = emulated_site(
        "openrouter", site=SiteFactory(domain="bakery.example.test", name="Bakery"), monthly_budget=25
    )
    books = emulated_site("anthropic", site=SiteFactory(domain="books.example.test", name="Bookshop"))
    spread(bakery, "openai/gpt-4o-mini", "pages.translate", "0.004")
    spread(books, "anthropic/claude-3.5-haiku", "images.alt_text", "0.002")
    PageFactory(site=bakery, title="Spring sale", body="Hot cross buns all week.")
    template = PromptTemplateFactory(site=None, default_model="")
    return AIProviderSettings.objects.get(site=bakery), AIProviderSettings.objects.get(site=books), template


def login_as(role: str, bakery, admin_login):
    if role == "superuser":
        SuperUserFactory(username="read-root")
        return admin_login("read-root")
    user = UserFactory(username=f"read-{role}")
    SiteMembershipFactory(user=user, site=bakery.site)
    wanted = PERMS[role]
    user.user_permissions.set(
        [
            p
            for app, codes in wanted.items()
            for p in Permission.objects.filter(content_type__app_label=app, codename__in=codes)
        ]
    )
    return admin_login(user.username)


def screens(role: str, bakery, template) -> dict[str, str]:
    """The screens this role may open (refusals are another issue's)."""
    pages = {
        "index": "/admin/",
        "run": f"/admin/prompts/prompttemplate/{template.pk}/run/",
        "pages": "/admin/pages/page/",
    }
    if role != "editor":
        pages.update(
            {
                "dashboard": "/admin/integrations/aiusage/dashboard/",
                "usage-log": "/admin/integrations/aiusage/",
                "settings": f"/admin/integrations/aiprovidersettings/{bakery.pk}/change/",
                "test-screen": f"/admin/integrations/aiprovidersettings/{bakery.pk}/test/",
            }
        )
    return pages


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("role", ROLES)
def test_no_page_is_wider_than_the_window(page, live_server, admin_login, world, screenshot, role, width):
    bakery, _, template = world
    page.set_viewport_size(dict(zip(("width", "height"), WIDTHS[width], strict=True)))
    login_as(role, bakery, admin_login)
    for name, path in screens(role, bakery, template).items():
        page.goto(f"{live_server.url}{path}")
        page.wait_for_selector("#content")
        if name == "dashboard":
            page.wait_for_function("window.Chart && Chart.getChart('chart-cost')")
        screenshot(name)
        assert page.evaluate(OVERFLOW) <= 0, f"{name} is wider than {WIDTHS[width][0]} px: {page.evaluate(WIDE)}"
        if name == "index" and role != "editor":
            # the dashboard link sits on one or two lines, never one letter per line
            assert page.evaluate("document.querySelector('#usage-dashboard-index a').getClientRects().length") <= 2
        if name == "usage-log" and width == "desktop":
            # every column visible without scrolling: inside the table's box and the window
            cut = page.evaluate(
                "(() => { const box = document.querySelector('#changelist .results').getBoundingClientRect();"
                " return [...document.querySelectorAll('#result_list thead th')]"
                ".filter(th => th.getBoundingClientRect().right > Math.min(box.right, window.innerWidth) + 1)"
                ".map(th => th.innerText + ' ' + Math.round(th.getBoundingClientRect().right)"
                " + '>' + Math.round(box.right)); })()"
            )
            assert cut == [], f"usage log columns off-screen: {cut}"


@pytest.mark.parametrize("role", ROLES)
def test_sites_are_named_and_one_site_is_not_asked_for(page, live_server, admin_login, world, screenshot, role):
    bakery, _, template = world
    login_as(role, bakery, admin_login)
    page.goto(f"{live_server.url}/admin/")
    assert "Bakery (bakery.example.test)" in page.inner_text("#site-overview")

    page.goto(f"{live_server.url}/admin/prompts/prompttemplate/{template.pk}/run/")
    page.wait_for_selector("#run-form")
    screenshot("run")
    site_field = page.locator("#run-form [name=site]")
    if role == "superuser":
        options = page.locator("#id_site option").all_inner_texts()
        assert "Bakery (bakery.example.test)" in options and "Bookshop (books.example.test)" in options
    else:  # one site: chosen for them, not asked
        assert site_field.get_attribute("type") == "hidden" and site_field.input_value() == str(bakery.site.pk)
        assert page.locator("#run-form label", has_text="Site").count() == 0
        page.fill("#id_product", "buns")
        page.fill("#id_audience", "students")
        page.click("input[name=_preview]")
        page.wait_for_selector("#preview-facts")
        screenshot("run-preview")
        assert "site Bakery (bakery.example.test)" in page.inner_text("#preview-facts")

    if role == "editor":
        return
    page.goto(f"{live_server.url}/admin/integrations/aiusage/dashboard/")
    page.wait_for_selector("#dashboard-scope")
    screenshot("dashboard")
    if role == "superuser":
        assert "Bakery (bakery.example.test)" in page.locator("#dashboard-site option").all_inner_texts()
    else:
        assert page.inner_text("#dashboard-scope") == "Bakery (bakery.example.test)"
    assert "Bakery (bakery.example.test)" in page.inner_text("#budget-table")


@pytest.mark.parametrize("role", ["superuser", "site_admin"])
def test_codes_read_as_words(page, live_server, admin_login, world, upstream, screenshot, role):
    bakery, _, _ = world
    login_as(role, bakery, admin_login)

    page.goto(f"{live_server.url}/admin/integrations/aiusage/dashboard/")
    page.wait_for_function("window.Chart && Chart.getChart('chart-cost')")
    data = json.loads(page.inner_text("#dashboard-data"))
    assert {"Page meta", "Page translation"} <= set(data["series"]["service"]["cost"])
    assert "OpenRouter" in data["series"]["provider"]["cost"]
    assert set(page.evaluate("Chart.getChart('chart-refusals').data.labels")) == {"Budget exceeded", "Rate limited"}
    assert "Budget exceeded" in page.inner_text("#refusal-table")
    screenshot("dashboard")

    page.goto(f"{live_server.url}/admin/integrations/aiusage/?site__id__exact={bakery.site.pk}")
    page.wait_for_selector("#result_list")
    screenshot("usage-log")
    table = page.inner_text("#result_list")
    assert "Provider unavailable (down or overloaded)" in table and "Page meta" in table and "OpenRouter" in table
    for code in ("ProviderUnavailable", "pages.meta", "openrouter"):
        assert code not in table

    page.goto(f"{live_server.url}/admin/integrations/aiprovidersettings/{bakery.pk}/change/")
    page.wait_for_selector("#aiprovidersettings_form")
    label = page.locator("label[for=id_openrouter_deny_data_collection]").text_content()
    assert label.strip().rstrip(":") == "OpenRouter: deny data collection"
    assert "Openrouter" not in page.locator("#aiprovidersettings_form").text_content()

    page.goto(f"{live_server.url}/admin/integrations/aiprovidersettings/{bakery.pk}/test/")
    page.fill("#id_prompt", "A slogan for buns")
    page.select_option("#id_model", "openai/gpt-4o-mini")
    page.click("input[name=_send]")
    page.wait_for_selector("#test-result")
    screenshot("test-answer")
    assert page.inner_text("#result-provider") == "OpenAI via OpenRouter"
    upstream.script(status=503, times=5)  # every retry
    page.fill("#id_prompt", "A slogan for buns")
    page.click("input[name=_send]")
    page.wait_for_selector("#test-error")
    screenshot("test-error")
    assert page.inner_text("#test-error").startswith("Provider unavailable (down or overloaded): ")


@pytest.mark.parametrize("role", ROLES)
def test_meta_review_boxes_have_labels(page, live_server, admin_login, world, screenshot, role):
    bakery, _, _ = world
    login_as(role, bakery, admin_login)
    page.goto(f"{live_server.url}/admin/pages/page/")
    page.check("input[name=_selected_action]")
    page.select_option("select[name=action]", "generate_meta")
    page.click("button[name=index]")
    page.wait_for_selector("#accept-meta-form")
    screenshot("review")
    assert page.get_by_label("Meta title", exact=True).input_value().startswith("Spring sale")
    assert page.get_by_label("Meta description", exact=True).evaluate("el => el.tagName") == "TEXTAREA"
    assert "Bakery (bakery.example.test)" in page.inner_text(".meta-site")


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("role", ["superuser", "site_admin"])
def test_models_grouped_by_vendor_with_a_filter(
    page, live_server, admin_login, world, upstream, screenshot, role, width
):
    bakery, _, _ = world
    page.set_viewport_size(dict(zip(("width", "height"), WIDTHS[width], strict=True)))
    login_as(role, bakery, admin_login)
    page.goto(f"{live_server.url}/admin/integrations/aiprovidersettings/{bakery.pk}/test/")
    page.wait_for_selector("#id_model-filter")
    groups = page.evaluate("[...document.querySelectorAll('#id_model optgroup')].map(g => g.label)")
    assert {"OpenAI", "Anthropic", "Google"} <= set(groups)
    openai = page.locator("#id_model optgroup[label=OpenAI] option").evaluate_all("os => os.map(o => o.value)")
    assert "gpt-4o" in openai and "openai/gpt-4o-mini" in openai and not any("claude" in v for v in openai)
    page.evaluate("document.getElementById('id_model').size = 16")  # opened, for the screenshot only
    screenshot("groups")
    page.fill("#id_model-filter", "claude")
    screenshot("filtered")
    shown = page.evaluate(
        "[...document.querySelectorAll('#id_model option')].filter(o => o.value && !o.hidden).map(o => o.value)"
    )
    assert shown and all("claude" in v for v in shown)
    assert page.evaluate(
        "[...document.querySelectorAll('#id_model optgroup')].filter(g => !g.hidden).map(g => g.label)"
    ) == ["Anthropic"]
    assert "match" in page.inner_text(".model-filter-count")
    assert page.evaluate(OVERFLOW) <= 0
    page.evaluate("document.getElementById('id_model').size = 0")
    page.select_option("#id_model", "claude-3-5-haiku")  # same field name and values as before
    page.fill("#id_prompt", "A slogan for buns")
    page.click("input[name=_send]")
    page.wait_for_selector("#test-result")
    assert upstream.requests[-1].json["model"] == "anthropic/claude-3.5-haiku"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("role", ["superuser", "site_admin"])
def test_settings_in_collapsible_sections_keys_first(page, live_server, admin_login, world, screenshot, role, width):
    bakery, _, _ = world
    page.set_viewport_size(dict(zip(("width", "height"), WIDTHS[width], strict=True)))
    login_as(role, bakery, admin_login)
    page.goto(f"{live_server.url}/admin/integrations/aiprovidersettings/{bakery.pk}/change/")
    page.wait_for_selector("#aiprovidersettings_form")
    screenshot("closed")
    sections = page.evaluate(
        "[...document.querySelectorAll('#aiprovidersettings_form fieldset details')]"
        ".map(d => [d.querySelector('summary').innerText.trim(), d.open])"
    )
    assert [name for name, _ in sections] == [
        "OpenRouter",
        "Failover and budget",
        "Policy and rate limits",
        "Budget windows and alerts",
    ]
    assert not any(is_open for _, is_open in sections)
    keys_first = page.evaluate(
        "(() => { const keys = document.querySelector('.inline-group');"
        " const first = document.querySelector('#aiprovidersettings_form fieldset details');"
        " return !!(keys.compareDocumentPosition(first) & Node.DOCUMENT_POSITION_FOLLOWING); })()"
    )
    assert keys_first and "Provider keys and endpoints" in page.text_content(".inline-group h2")
    assert not page.locator("#id_monthly_budget").is_visible()
    page.click("summary:has-text('Failover and budget')")
    assert page.locator("#id_monthly_budget").is_visible()
    for summary in page.locator("#aiprovidersettings_form details > summary").all():
        if summary.evaluate("s => !s.parentElement.open"):
            summary.click()
    screenshot("opened")
    assert page.evaluate(OVERFLOW) <= 0, page.evaluate(WIDE)

    # a section holding an error is open when the page comes back
    page.fill("#id_monthly_budget", "-5")
    page.click("input[name=_continue]")
    page.wait_for_selector(".errornote")
    screenshot("error")
    assert page.locator("#id_monthly_budget").is_visible()
    assert AIProviderSettings.objects.get(pk=bakery.pk).monthly_budget == Decimal("25")
