"""generate-block, streamed (issue 27): the same permission and tenancy checks as the plain screen, the raw
answer as server-sent events, then validated server-side; a valid block goes to the review step (nothing
saved), an invalid one comes back as its errors."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from integrations.ai.ledger import usage
from integrations.models import AIUsage
from pages.models import Block

from .factories import SiteFactory, SiteMembershipFactory, UserFactory
from .factories_cms import PageFactory

pytestmark = pytest.mark.django_db

FAQ = {"items": [{"question": "Do you deliver?", "answer": "Yes, within the city."}]}


def editor(site, *codenames: str):
    user = UserFactory()
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="pages", codename__in=codenames))
    return user


def events(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return [json.loads(chunk[len("data: ") :]) for chunk in body.split("\n\n") if chunk.startswith("data: ")]


def post_stream(client, page, block_type="faq"):
    url = reverse("admin:pages_page_generate_block_stream", args=[page.pk])
    return client.post(url, {"type": block_type, "instructions": "", "model": ""})


def test_an_editor_of_another_site_gets_404_and_one_without_change_page_403(client, emulated_site, upstream):
    page = PageFactory(site=emulated_site("openai"))
    client.force_login(editor(SiteFactory(), "view_page", "change_page"))
    assert post_stream(client, page).status_code == 404
    client.force_login(editor(page.site, "view_page"))
    assert post_stream(client, page).status_code == 403
    assert upstream.requests == [] and not AIUsage.objects.exists()


def test_a_get_is_refused_and_a_bad_form_is_a_400_naming_the_field(client, emulated_site, upstream):
    page = PageFactory(site=emulated_site("openai"))
    client.force_login(editor(page.site, "view_page", "change_page"))
    assert client.get(reverse("admin:pages_page_generate_block_stream", args=[page.pk])).status_code == 405
    refused = post_stream(client, page, block_type="carousel")
    assert refused.status_code == 400 and "type" in refused.json()["error"]["message"]


def test_a_valid_stream_goes_to_review_and_saves_nothing_until_accepted(client, emulated_site, upstream):
    page = PageFactory(site=emulated_site("openai"), title="Bakery")
    user = editor(page.site, "view_page", "change_page")
    client.force_login(user)
    upstream.script(flavor="openai", content=json.dumps(FAQ))
    sent = events(post_stream(client, page))
    assert "".join(e.get("delta", "") for e in sent) == json.dumps(FAQ)
    done = sent[-1]
    assert done["done"] and "errors" not in done and not Block.objects.exists()
    review = client.get(done["review_url"])
    assert review.status_code == 200 and b"Do you deliver?" in review.content
    token = review.context["token"]
    client.post(
        reverse("admin:pages_page_generate_block", args=[page.pk]),
        {
            "_accept": "1",
            "token": token,
            "items-TOTAL_FORMS": "1",
            "items-INITIAL_FORMS": "1",
            "items-0-question": "Do you deliver?",
            "items-0-answer": "Yes, within the city.",
        },
    )
    assert Block.objects.get(page=page).content == FAQ
    usage.flush()
    (row,) = AIUsage.objects.filter(site=page.site)
    # the body ran after the view returned: the page and the editor still own the call
    assert (row.service, row.status, row.object_id, row.user_id) == ("pages.blocks", "ok", page.pk, user.pk)


def test_an_invalid_answer_comes_back_as_its_errors_and_nothing_is_kept(client, emulated_site, upstream):
    page = PageFactory(site=emulated_site("openai"))
    client.force_login(editor(page.site, "view_page", "change_page"))
    upstream.script(flavor="openai", content='{"items": [{"question": "No answer"}]}')
    done = events(post_stream(client, page))[-1]
    assert done["done"] and "review_url" not in done
    assert any("answer" in problem for problem in done["errors"])
    assert not Block.objects.exists()


def post_meta_stream(client, page):
    url = reverse("admin:pages_page_generate_meta_stream", args=[page.pk])
    return client.post(url, {"step": "generate", "model": ""})


def test_meta_stream_checks_the_site_and_the_permission(client, emulated_site, upstream):
    page = PageFactory(site=emulated_site("openai"))
    client.force_login(editor(SiteFactory(), "view_page", "change_page"))
    assert post_meta_stream(client, page).status_code == 404
    client.force_login(editor(page.site, "view_page"))
    assert post_meta_stream(client, page).status_code == 403
    assert upstream.requests == []


def test_a_streamed_meta_answer_is_trimmed_and_reviewed_before_anything_is_saved(client, emulated_site, upstream):
    page = PageFactory(site=emulated_site("openai"), title="Bakery", meta_title="Old", meta_description="")
    client.force_login(editor(page.site, "view_page", "change_page"))
    answer = {"meta_title": "Fresh bread " * 10, "meta_description": "Sourdough every morning."}
    upstream.script(flavor="openai", content=json.dumps(answer))
    done = events(post_meta_stream(client, page))[-1]
    review = client.get(done["review_url"])
    assert review.status_code == 200
    (row,) = review.context["rows"]
    assert (
        len(row["proposal"]["meta_title"]) <= 60 and row["proposal"]["meta_description"] == answer["meta_description"]
    )
    page.refresh_from_db()
    assert (page.meta_title, page.meta_description) == ("Old", "")


def test_a_streamed_meta_answer_without_a_description_shows_the_error(client, emulated_site, upstream):
    page = PageFactory(site=emulated_site("openai"))
    client.force_login(editor(page.site, "view_page", "change_page"))
    upstream.script(flavor="openai", content='{"meta_title": "Only a title"}')
    done = events(post_meta_stream(client, page))[-1]
    assert "review_url" not in done and any("meta_description" in problem for problem in done["errors"])


def test_prompt_run_streams_then_offers_the_save_step_and_checks_the_site(client, emulated_site, upstream):
    from prompts.models import PromptRun

    from .factories_cms import PromptTemplateFactory

    site = emulated_site("openai")
    template = PromptTemplateFactory(site=site)
    url = reverse("admin:prompts_prompttemplate_run_stream", args=[template.pk])
    form = {"product": "rye", "audience": "students", "site": site.pk, "model": ""}
    outsider = editor(SiteFactory())
    outsider.user_permissions.add(*Permission.objects.filter(content_type__app_label="prompts"))
    client.force_login(outsider)
    assert client.post(url, form).status_code == 404  # another site's template
    user = editor(site)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="prompts"))
    client.force_login(user)
    upstream.script(flavor="openai", content="Rye bread for students.")
    sent = events(client.post(url, form))
    assert "".join(e.get("delta", "") for e in sent) == "Rye bread for students."
    review = client.get(sent[-1]["review_url"])
    assert review.context["save_form"].initial["output"] == "Rye bread for students."
    assert PromptRun.objects.count() == 0  # nothing saved before the person saves it
    token = review.context["save_form"].initial["preview_token"]
    run_url = reverse("admin:prompts_prompttemplate_run", args=[template.pk])
    assert client.post(run_url, {"_save": "1", "output": "Rye!", "preview_token": token}).status_code == 302
    assert PromptRun.objects.get().output == "Rye!"
    usage.flush()
    (row,) = AIUsage.objects.filter(site=site)
    assert (row.service, row.status, row.object_id) == ("prompts.template", "ok", template.pk)
