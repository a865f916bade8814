"""generate-block, streamed in Chromium (issue 27): the answer appears as it arrives, Cancel stops it (the
provider's stream is closed, the ledger row is `cancelled`, no block saved), and a stream that completes
goes to the review step, where the block is added only when accepted. Screens in var/screenshots/."""

from __future__ import annotations

import json
import threading
import time

import pytest
from django.contrib.auth.models import Permission

from integrations.ai.ledger import usage
from integrations.models import AIUsage
from pages.models import Block, Page
from tests.factories import SiteFactory, SiteMembershipFactory, UserFactory
from tests.factories_cms import PageFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FAQ = {
    "items": [
        {"question": "Do you bake wedding cakes?", "answer": "Yes, tiered and made to order."},
        {"question": "Do you deliver?", "answer": "Within the city, on Saturdays."},
    ]
}


def editor(site) -> str:
    user = UserFactory(username="stream-editor")
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="pages", codename__in=["view_page", "change_page"])
    )
    return user.username


def ledger_rows(site, until: threading.Event) -> list[tuple[str, str]]:
    """The site's ledger rows once the server has settled the call (`until`: the upstream saw the end)."""
    assert until.wait(10), "the provider's stream outlived the cancelled request"
    settled, deadline = threading.Event(), time.monotonic() + 10
    while time.monotonic() < deadline:  # the request thread settles the call just after closing the upstream
        usage.flush()
        rows = list(AIUsage.objects.filter(site=site).values_list("service", "status"))
        if rows:
            return rows
        settled.wait(0.05)  # a condition polled to a deadline, not a sleep the assertion depends on
    return []


def open_screen(page, live_server, admin_login, target):
    admin_login(editor(target.site))
    page.goto(f"{live_server.url}/admin/pages/page/{target.pk}/generate-block/")
    page.wait_for_selector("#generate-block-form")
    page.select_option("#id_type", "faq")


def test_cancel_stops_a_streamed_block_and_saves_nothing(
    page, live_server, admin_login, emulated_site, upstream, screenshot
):
    site = emulated_site("openai", site=SiteFactory(domain="localhost", name="Bakery"))
    target = PageFactory(site=site, title="Wedding cakes")
    long = json.dumps({"items": [{"question": f"Question {n}?", "answer": f"Answer {n}."} for n in range(100)]})
    upstream.script(flavor="openai", content=long, token_rate=20)  # about a minute to stream it all
    open_screen(page, live_server, admin_login, target)

    page.click("#stream-button")
    page.wait_for_function("document.querySelector('[data-stream-text]').textContent.length > 20")
    assert page.locator("#stream-cancel").is_visible()
    screenshot("1-streaming")
    page.click("#stream-cancel")
    page.wait_for_selector("#stream-output[data-state=cancelled]")
    screenshot("2-cancelled")
    assert "Cancelled" in page.inner_text("[data-stream-status]") and page.locator("#stream-cancel").is_hidden()
    assert page.locator("#block-proposal").count() == 0
    assert ledger_rows(site, upstream.stream_aborted) == [("pages.blocks", "cancelled")]
    assert not Block.objects.filter(page=target).exists()


def test_a_completed_stream_is_reviewed_then_added(page, live_server, admin_login, emulated_site, upstream, screenshot):
    site = emulated_site("openai", site=SiteFactory(domain="localhost", name="Bakery"))
    target = PageFactory(site=site, title="Wedding cakes")
    upstream.script(flavor="openai", content=json.dumps(FAQ), token_rate=20)
    open_screen(page, live_server, admin_login, target)

    page.click("#stream-button")
    page.wait_for_selector("#block-proposal")  # the stream ended valid: the review step
    screenshot("1-review")
    assert "Do you bake wedding cakes?" in page.inner_text(".proposal-preview")
    assert not Block.objects.filter(page=target).exists()  # nothing saved before it is accepted
    page.fill("input[name='items-1-question']", "Do you deliver cakes?")
    page.click("input[name=_accept]")
    page.wait_for_selector(".messagelist .success")
    screenshot("2-added")
    block = Block.objects.get(page=target)
    assert [item["question"] for item in block.content["items"]] == [
        "Do you bake wedding cakes?",
        "Do you deliver cakes?",
    ]
    usage.flush()
    assert list(AIUsage.objects.filter(site=site).values_list("service", "status")) == [("pages.blocks", "ok")]


def test_an_invalid_streamed_block_shows_its_errors(
    page, live_server, admin_login, emulated_site, upstream, screenshot
):
    site = emulated_site("openai", site=SiteFactory(domain="localhost", name="Bakery"))
    target = PageFactory(site=site, title="Wedding cakes")
    upstream.script(flavor="openai", content='{"items": [{"question": "Only a question?"}]}', token_rate=20)
    open_screen(page, live_server, admin_login, target)

    page.click("#stream-button")
    page.wait_for_selector("#stream-output[data-state=invalid]")
    screenshot("invalid")
    assert "nothing was saved" in page.inner_text("[data-stream-status]")
    assert "answer" in page.inner_text("[data-stream-errors]")
    assert page.locator("#block-proposal").count() == 0 and not Block.objects.filter(page=target).exists()


def test_streamed_meta_goes_to_the_review_screen_and_is_saved_when_accepted(
    page, live_server, admin_login, emulated_site, upstream, screenshot
):
    site = emulated_site("openai", site=SiteFactory(domain="localhost", name="Bakery"))
    target = PageFactory(site=site, title="Wedding cakes", meta_title="Old title", meta_description="")
    answer = {"meta_title": "Wedding cakes made to order", "meta_description": "Tiered cakes, baked fresh."}
    upstream.script(flavor="openai", content=json.dumps(answer), token_rate=20)
    admin_login(editor(site))
    page.goto(f"{live_server.url}/admin/pages/page/{target.pk}/generate-meta/")
    page.click("#stream-button")
    page.wait_for_selector("#accept-meta-form")  # the stream ended usable: the meta review screen
    screenshot("review")
    assert Page.objects.get(pk=target.pk).meta_title == "Old title"  # nothing saved before it is accepted
    page.click("input[name=_accept]")
    page.wait_for_selector(".messagelist .success")
    assert Page.objects.get(pk=target.pk).meta_title == "Wedding cakes made to order"


def test_a_streamed_prompt_run_is_cancelled_then_streamed_and_saved(
    page, live_server, admin_login, emulated_site, upstream, screenshot
):
    from prompts.models import PromptRun
    from tests.factories_cms import PromptTemplateFactory

    site = emulated_site("openai", site=SiteFactory(domain="localhost", name="Bakery"))
    template = PromptTemplateFactory(site=site, template="Write a blurb for {product} aimed at {audience}.")
    user = UserFactory(username="stream-runner")
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="prompts",
            codename__in=["view_prompttemplate", "change_prompttemplate", "add_promptrun", "view_promptrun"],
        )
    )
    admin_login("stream-runner")
    upstream.script(flavor="openai", content=" ".join(f"word{n}" for n in range(400)), token_rate=20)
    upstream.script(flavor="openai", content="Rye bread, baked for students.", token_rate=20)
    page.goto(f"{live_server.url}/admin/prompts/prompttemplate/{template.pk}/run/")
    page.fill("#id_product", "rye")
    page.fill("#id_audience", "students")
    page.click("#stream-button")
    page.wait_for_function("document.querySelector('[data-stream-text]').textContent.includes('word3')")
    page.click("#stream-cancel")
    page.wait_for_selector("#stream-output[data-state=cancelled]")
    assert ledger_rows(site, upstream.stream_aborted) == [("prompts.template", "cancelled")]

    page.click("#stream-button")
    page.wait_for_selector("#save-form")
    screenshot("save-step")
    assert page.input_value("#save-form textarea[name=output]") == "Rye bread, baked for students."
    assert page.input_value("#id_product") == "rye"  # the review step shows what was run
    assert PromptRun.objects.count() == 0
    page.click("#save-form [type=submit]")
    page.wait_for_selector(".messagelist .success")
    assert PromptRun.objects.get().output == "Rye bread, baked for students."


def test_a_site_admin_cancels_a_streamed_translation_then_streams_reviews_and_saves_it(
    page, live_server, admin_login, emulated_site, upstream, screenshot
):
    from pages.models import PageTranslation, SiteLanguage

    site = emulated_site("openai", site=SiteFactory(domain="localhost", name="Bakery"))
    SiteLanguage.objects.create(site=site, code="en", name="English", is_default=True)
    SiteLanguage.objects.create(site=site, code="de", name="German")
    source = PageFactory(site=site, title="Sourdough bakery", body="Our sourdough is baked daily.", meta_title="Bakery")
    user = UserFactory(username="stream-site-admin")  # a site admin: may create the translation page
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="pages",
            codename__in=["view_page", "add_page", "change_page", "delete_page", "view_block", "add_block"],
        )
    )
    long = json.dumps({"title": " ".join(f"Wort{n}" for n in range(400)), "body": "x", "meta_title": "y"})
    upstream.script(flavor="openai", content=long, token_rate=20)  # about half a minute to stream it all
    admin_login("stream-site-admin")
    page.goto(f"{live_server.url}/admin/pages/page/{source.pk}/translate/")
    page.select_option("select[name=language]", "de")

    page.click("#stream-button")
    page.wait_for_function("document.querySelector('[data-stream-text]').textContent.includes('Wort3')")
    assert page.locator("#stream-cancel").is_visible()
    screenshot("1-streaming")
    page.click("#stream-cancel")
    page.wait_for_selector("#stream-output[data-state=cancelled]")
    screenshot("2-cancelled")
    assert "Cancelled" in page.inner_text("[data-stream-status]")
    assert ledger_rows(site, upstream.stream_aborted) == [("pages.translate", "cancelled")]
    assert not PageTranslation.objects.exists()

    answer = {"title": "Sauerteig-Bäckerei", "body": "Unser Sauerteig wird täglich gebacken.", "meta_title": "Bäckerei"}
    upstream.script(flavor="openai", content=json.dumps(answer, ensure_ascii=False), token_rate=20)
    page.click("#stream-button")
    page.wait_for_selector("#accept-translation-form")  # the stream ended valid: the side-by-side review
    screenshot("3-review")
    body_row = page.locator("tr[data-key=body]")
    assert body_row.locator("td.source").inner_text() == "Our sourdough is baked daily."
    assert body_row.locator("textarea, input[type=text]").input_value() == answer["body"]
    assert not PageTranslation.objects.exists()  # nothing saved before it is accepted
    page.locator("tr[data-key=title] input[type=text]").fill("Sauerteig-Backstube")
    page.click("input[name=_accept]")
    page.wait_for_selector(".messagelist .success")
    screenshot("4-saved")
    translated = PageTranslation.objects.get(source=source, language="de").page
    assert (translated.title, translated.body) == ("Sauerteig-Backstube", answer["body"])
    assert "pages.translate" in page.inner_text(".field-ai_provenance")
    usage.flush()
    assert sorted(AIUsage.objects.filter(site=site).values_list("service", "status")) == [
        ("pages.translate", "cancelled"),
        ("pages.translate", "ok"),
    ]
