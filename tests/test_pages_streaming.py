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


# -- translation, streamed ---------------------------------------------------------------------------------
SITE_ADMIN = ("view_page", "add_page", "change_page", "delete_page", "view_block", "add_block", "change_block")


def translatable(site):
    from pages.models import SiteLanguage

    from .factories_cms import BlockFactory

    SiteLanguage.objects.create(site=site, code="en", name="English", is_default=True)
    SiteLanguage.objects.create(site=site, code="de", name="German")
    page = PageFactory(
        site=site,
        title="Sourdough bakery",
        body="Our sourdough is baked daily.",
        meta_title="Bakery",
        meta_description="",
    )
    BlockFactory(page=page, type="hero", order=0, content={"heading": "Welcome", "cta_url": "/order/"})
    return page


def post_translate_stream(client, page, language="de"):
    return client.post(reverse("admin:pages_page_translate_stream", args=[page.pk]), {"language": language})


def kept_translations(client) -> list[dict]:
    from prompts.run_previews import SESSION_KEY

    return [p for p in (client.session.get(SESSION_KEY) or {}).values() if p.get("kind") == "page_translation"]


def test_a_site_admin_streams_a_translation_to_the_review_and_saves_it_when_accepted(client, emulated_site, upstream):
    from pages import translation
    from pages.models import PageTranslation

    page = translatable(emulated_site("openai"))
    hero = page.blocks.get()
    user = editor(page.site, *SITE_ADMIN)  # a site admin, not a superuser
    client.force_login(user)
    expected_prompt = translation.call_for(page, "de").prompt
    answer = {
        "title": "Sauerteig-Bäckerei",
        "meta_title": "Bäckerei " + "frisch " * 20,  # over the meta title's limit: trimmed like the plain path
        "body": "Unser Sauerteig wird täglich gebacken.",
        f"b{hero.pk}.heading": "Willkommen",
    }
    upstream.script(flavor="openai", content=json.dumps(answer, ensure_ascii=False))
    sent = events(post_translate_stream(client, page))
    assert json.loads("".join(e.get("delta", "") for e in sent)) == answer
    done = sent[-1]
    assert done["done"] and "errors" not in done
    assert not PageTranslation.objects.exists()  # nothing saved by the stream
    review = client.get(done["review_url"])
    assert review.status_code == 200
    proposed = {row["key"]: row["proposed"] for row in review.context["rows"]}
    assert proposed["body"] == "Unser Sauerteig wird täglich gebacken."
    assert proposed[f"b{hero.pk}.heading"] == "Willkommen"
    assert proposed["meta_title"].startswith("Bäckerei frisch") and len(proposed["meta_title"]) <= 60
    form = {"token": review.context["token"], "_accept": "1"}
    for key, text in proposed.items():
        form |= {f"text-{key}": text, f"accept-{key}": "on"}
    assert client.post(reverse("admin:pages_page_accept_translation"), form).status_code == 302
    translated = PageTranslation.objects.get(source=page, language="de").page
    assert (translated.title, translated.body) == ("Sauerteig-Bäckerei", "Unser Sauerteig wird täglich gebacken.")
    assert translated.blocks.get().content == {"heading": "Willkommen", "cta_url": "/order/"}
    usage.flush()
    (row,) = AIUsage.objects.filter(site=page.site)
    assert (row.service, row.status, row.object_id, row.user_id) == ("pages.translate", "ok", page.pk, user.pk)
    (sent_request,) = upstream.requests  # the same call as the plain path: prompt, system prompt, parameters
    messages = sent_request.json["messages"]
    assert [m["content"] for m in messages] == [translation.SYSTEM_PROMPT, expected_prompt]
    assert sent_request.json["stream"] is True and sent_request.json["temperature"] == 0.2


def test_an_invalid_streamed_translation_comes_back_as_its_errors_and_nothing_is_kept(client, emulated_site, upstream):
    page = translatable(emulated_site("openai"))
    client.force_login(editor(page.site, *SITE_ADMIN))
    upstream.script(flavor="openai", content='{"title": "Sauerteig-Bäckerei", "body": ')  # cut-off JSON
    done = events(post_translate_stream(client, page))[-1]
    assert done["done"] and "review_url" not in done and done["errors"]
    assert kept_translations(client) == []
    upstream.script(flavor="openai", content='{"title": "Nur ein Titel"}')  # valid JSON, fields missing
    done = events(post_translate_stream(client, page))[-1]
    assert "review_url" not in done and any("body" in problem for problem in done["errors"])
    assert kept_translations(client) == []


def test_translate_stream_checks_the_site_the_permissions_and_the_method(client, emulated_site, upstream):
    page = translatable(emulated_site("openai"))
    client.force_login(editor(SiteFactory(), *SITE_ADMIN))  # another site's admin
    assert post_translate_stream(client, page).status_code == 404
    client.force_login(editor(page.site, "view_page", "change_page"))  # the first translation creates a page
    assert post_translate_stream(client, page).status_code == 403
    client.force_login(editor(page.site, *SITE_ADMIN))
    assert client.get(reverse("admin:pages_page_translate_stream", args=[page.pk])).status_code == 405
    refused = post_translate_stream(client, page, language="fr")
    assert refused.status_code == 400 and "language" in refused.json()["error"]["message"]
    assert upstream.requests == [] and not AIUsage.objects.exists()


def test_a_review_token_of_another_page_is_not_shown(client, emulated_site, upstream):
    page = translatable(emulated_site("openai"))
    other = PageFactory(site=page.site)
    client.force_login(editor(page.site, *SITE_ADMIN))
    done = events(post_translate_stream(client, page))[-1]  # the emulator translates: "[de] ..."
    token = done["review_url"].split("token=")[1]
    foreign = client.get(reverse("admin:pages_page_translate", args=[other.pk]), {"token": token})
    assert "rows" not in foreign.context and "unknown, expired" in foreign.content.decode()
    own = client.get(done["review_url"])
    assert {row["key"]: row["proposed"] for row in own.context["rows"]}["title"] == "[de] Sourdough bakery"


def test_a_streamed_glossary_miss_is_shown_to_the_reviewer_without_a_retry(client, emulated_site, upstream):
    from pages.models import GlossaryTerm

    page = translatable(emulated_site("openai"))
    GlossaryTerm.objects.create(site=page.site, term="sourdough", translation="Sauerteig", language="de")
    client.force_login(editor(page.site, *SITE_ADMIN))
    upstream.script(
        flavor="openai",
        content=json.dumps(
            {"title": "Brot", "body": "Brot.", "meta_title": "B"} | {f"b{page.blocks.get().pk}.heading": "Hallo"}
        ),
    )
    done = events(post_translate_stream(client, page))[-1]
    review = client.get(done["review_url"])
    assert len(upstream.requests) == 1  # no corrective retry on the streamed path
    assert b"glossary-misses" in review.content and "“sourdough” must be translated as “Sauerteig”" in (
        review.content.decode()
    )


def test_an_up_to_date_translation_asks_nothing(client, emulated_site, upstream):
    from pages import translation

    page = translatable(emulated_site("openai"))
    proposal = translation.propose(page, "de")
    translation.accept(proposal, dict(proposal.translated))
    calls = len(upstream.requests)
    client.force_login(editor(page.site, *SITE_ADMIN))
    url = reverse("admin:pages_page_translate_stream", args=[page.pk])
    (done,) = events(client.post(url, {"language": "de", "only_stale": "on"}))
    assert done == {"done": True, "errors": [], "message": "The translation is up to date: nothing to translate."}
    assert len(upstream.requests) == calls
