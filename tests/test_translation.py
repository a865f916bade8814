"""Issue 23: page translation with AI through the real SDKs against the emulator: a linked page per language,
glossary in the prompt and checked in the answer, provenance per field, staleness and re-translating only
the changed fields, tenancy, the review screens."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from integrations.ai.ledger import usage
from integrations.models import AIUsage
from pages import translation
from pages.models import Block, GlossaryTerm, Page, PageTranslation, SiteLanguage

from .factories import SiteMembershipFactory, UserFactory
from .factories_cms import BlockFactory, PageFactory

pytestmark = pytest.mark.django_db


def languages(site, *codes: str) -> None:
    SiteLanguage.objects.create(site=site, code="en", name="English", is_default=True)
    names = {"de": "German", "fr": "French"}
    for code in codes:
        SiteLanguage.objects.create(site=site, code=code, name=names[code])


def bakery(site) -> Page:
    page = PageFactory(
        site=site,
        title="Sourdough bakery",
        slug="bakery",
        body="Our Sourdough is baked daily.",
        meta_title="Bakery",
        meta_description="Fresh bread every morning.",
    )
    BlockFactory(page=page, type="hero", order=0, content={"heading": "Welcome", "cta_url": "/order/"})
    return page


def translate_all(page: Page, code: str = "de", **kwargs) -> Page:
    proposal = translation.propose(page, code, **kwargs)
    return translation.accept(proposal, dict(proposal.translated))


@pytest.mark.parametrize("provider", ["openai", "anthropic", "openrouter"])
def test_translate_creates_a_linked_page_with_provenance_per_field(emulated_site, upstream, provider):
    site = emulated_site(provider)
    languages(site, "de")
    page = bakery(site)
    proposal = translation.propose(page, "de")
    assert Page.objects.count() == 1  # a proposal saves nothing
    assert proposal.translated["title"] == "[de] Sourdough bakery"
    hero = page.blocks.get()
    assert proposal.translated[f"b{hero.pk}.heading"] == "[de] Welcome"
    assert f"b{hero.pk}.cta_url" not in proposal.sources  # URLs are not translated

    translated = translation.accept(proposal, dict(proposal.translated))
    link = PageTranslation.objects.get(page=translated)
    assert (link.source, link.language, translated.site_id, translated.status) == (page, "de", site.id, "draft")
    assert translated.body == "[de] Our Sourdough is baked daily." and translated.slug == "bakery-de"
    block = translated.blocks.get()
    assert block.content == {"heading": "[de] Welcome", "cta_url": "/order/"} and link.block_map == {
        str(hero.pk): block.pk
    }
    rows = {(r.field, r.block_id): r for r in translated.provenance.all()}
    assert set(rows) == {
        ("title", None),
        ("body", None),
        ("meta_title", None),
        ("meta_description", None),
        ("block", block.pk),
    }
    assert all(r.prompt_name == "pages.translate" and r.provider == provider and r.ai_generated for r in rows.values())
    assert rows[("title", None)].parameters["language"] == "de"
    assert translation.stale_units(link) == {}


def test_the_call_is_the_sites_own_and_attributed_to_the_page(emulated_site, upstream):
    site = emulated_site("openai")
    languages(site, "de")
    page = bakery(site)
    translation.propose(page, "de")
    usage.flush()
    row = AIUsage.objects.get(site=site)
    assert (row.service, row.object_id, row.content_type) == (
        "pages.translate",
        page.pk,
        ContentType.objects.get_for_model(Page),
    )
    assert row.cost is not None and row.cost > 0
    sent = upstream.requests[0].json
    assert sent["response_format"]["type"] == "json_schema"


def test_glossary_is_in_the_prompt_and_a_miss_gets_a_corrective_retry(emulated_site, upstream):
    site = emulated_site("openai")
    languages(site, "de")
    GlossaryTerm.objects.create(site=site, term="Sourdough")  # keep as is
    GlossaryTerm.objects.create(site=site, term="bread", language="de", translation="Brot")
    GlossaryTerm.objects.create(site=emulated_site("openai"), term="bakery", translation="NEVER")  # another site
    page = bakery(site)
    proposal = translation.propose(page, "de")
    prompt = upstream.requests[0].json["messages"][-1]["content"]
    assert '"Sourdough" -> keep as is' in prompt and '"bread" -> "Brot"' in prompt and "NEVER" not in prompt
    assert proposal.translated["meta_description"] == "[de] Fresh Brot every morning."
    assert proposal.misses == []

    keys = list(proposal.sources)
    bad = {key: "[de] übersetzt" for key in keys}
    upstream.script(content=json.dumps(bad), times=2)
    proposal = translation.propose(page, "de")
    assert len(upstream.requests) == 3  # one corrective retry, naming the misses
    assert "broke the glossary" in upstream.requests[2].json["messages"][-1]["content"]
    assert any("Sourdough" in miss and "kept" in miss for miss in proposal.misses)
    assert any("Brot" in miss for miss in proposal.misses)


def test_editing_the_source_makes_only_changed_fields_stale_and_retranslation_sends_only_those(emulated_site, upstream):
    site = emulated_site("openai")
    languages(site, "de")
    page = bakery(site)
    translated = translate_all(page)
    link = translated.translation_of
    page.body = "Our Sourdough is baked twice a day."
    page.save()
    extra = BlockFactory(page=page, type="text", order=1, content={"body": "Open on Sundays."})
    assert translation.stale_units(link) == {"body": "changed in the source", f"block:{extra.pk}": "new in the source"}

    upstream.reset()
    proposal = translation.propose(page, "de", only_stale=True)
    sent = json.loads(upstream.requests[0].json["messages"][-1]["content"].split("Fields:\n", 1)[1])
    assert set(sent) == {"body", f"b{extra.pk}.body"}  # title, meta, the hero: not sent again
    translated.title = "Meine Bäckerei"  # a person's edit of the translation stays
    translated.save()
    translation.accept(proposal, dict(proposal.translated))
    translated.refresh_from_db()
    assert translated.title == "Meine Bäckerei" and translated.body == "[de] Our Sourdough is baked twice a day."
    assert translated.blocks.count() == 2 and translation.stale_units(link) == {}

    Block.objects.filter(pk=extra.pk).delete()
    assert translation.stale_units(link) == {f"block:{extra.pk}": "removed from the source"}
    upstream.reset()
    proposal = translation.propose(page, "de", only_stale=True)
    assert upstream.requests == []  # nothing to translate: the removal is applied on accept
    translation.accept(proposal, {})
    assert translated.blocks.count() == 1 and translation.stale_units(link) == {}


def test_an_edit_at_review_is_recorded_and_an_edit_later_clears_the_ai_marker(emulated_site, upstream):
    site = emulated_site("openai")
    languages(site, "de")
    page = bakery(site)
    proposal = translation.propose(page, "de")
    translated = translation.accept(proposal, {**proposal.translated, "title": "Sauerteig-Bäckerei"})
    rows = {r.field: r for r in translated.provenance.filter(block=None)}
    assert rows["title"].edited_at_review and not rows["body"].edited_at_review
    assert rows["title"].ai_generated and rows["meta_title"].ai_generated
    translated.body = "Von Hand geändert."
    translated.title = "Von Hand"
    translated.save()
    assert not translated.provenance.get(field="body").ai_generated
    assert not translated.provenance.get(field="title").ai_generated
    assert translated.provenance.get(field="meta_title").ai_generated


def test_languages_are_per_site_and_bad_requests_are_typed(emulated_site, upstream):
    site, other = emulated_site("openai"), emulated_site("openai")
    languages(site, "de")
    SiteLanguage.objects.create(site=other, code="fr", name="French")
    page = bakery(site)
    with pytest.raises(translation.TranslationError, match="“fr” is not one of this site's translation languages"):
        translation.propose(page, "fr")
    with pytest.raises(translation.TranslationError):
        translation.propose(page, "en")  # the default language is the source's
    translated = translate_all(page)
    with pytest.raises(translation.TranslationError, match="itself a translation"):
        translation.propose(translated, "de")
    assert [lang.code for lang in translation.target_languages(page)] == ["de"]
    assert upstream.requests and all(
        "fr" not in r.json["messages"][-1]["content"].split("into")[1][:12] for r in upstream.requests
    )


def staff(site, *perms: str):
    user = UserFactory()
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    return user


def test_review_then_accept_in_the_admin_and_retranslate_stale(client, emulated_site, upstream):
    site = emulated_site("openai")
    languages(site, "de")
    page = bakery(site)
    client.force_login(staff(site, "view_page", "change_page", "add_page"))
    url = reverse("admin:pages_page_translate", args=[page.pk])
    assert "German" in client.get(url).content.decode() and upstream.requests == []
    review = client.post(url, {"language": "de"})
    html = review.content.decode()
    assert "Our Sourdough is baked daily." in html and "[de] Our Sourdough is baked daily." in html
    token = review.context["token"]
    keys = list(review.context["proposal"].sources)
    data = {
        "token": token,
        **{f"text-{k}": review.context["proposal"].translated[k] for k in keys},
        **{f"accept-{k}": "on" for k in keys},
    }
    done = client.post(reverse("admin:pages_page_accept_translation"), data)
    translated = PageTranslation.objects.get(source=page).page
    assert done.status_code == 302 and done["Location"] == reverse("admin:pages_page_change", args=[translated.pk])
    assert translated.title == "[de] Sourdough bakery"

    page.title = "Sourdough & rye bakery"
    page.save()
    changelist = client.get(reverse("admin:pages_page_changelist")).content.decode()
    assert "translation stale" in changelist
    again = client.post(url, {"language": "de", "only_stale": "on"})
    assert list(again.context["proposal"].sources) == ["title"]


def test_another_sites_admin_cannot_translate_or_accept(client, emulated_site, upstream):
    site, other = emulated_site("openai"), emulated_site("openai")
    languages(site, "de")
    page = bakery(site)
    client.force_login(staff(other, "view_page", "change_page", "add_page"))
    assert client.post(reverse("admin:pages_page_translate", args=[page.pk]), {"language": "de"}).status_code == 404
    assert upstream.requests == []


def test_site_languages_and_glossary_admins_are_scoped_to_the_users_sites(client, emulated_site, upstream):
    site, other = emulated_site("openai"), emulated_site("openai")
    SiteLanguage.objects.create(site=other, code="fr", name="Français-other")
    GlossaryTerm.objects.create(site=other, term="Other-term")
    user = staff(
        site, "view_sitelanguage", "add_sitelanguage", "change_sitelanguage", "view_glossaryterm", "add_glossaryterm"
    )
    client.force_login(user)
    assert "Français-other" not in client.get(reverse("admin:pages_sitelanguage_changelist")).content.decode()
    assert "Other-term" not in client.get(reverse("admin:pages_glossaryterm_changelist")).content.decode()
    foreign = SiteLanguage.objects.get(site=other)
    assert client.get(reverse("admin:pages_sitelanguage_change", args=[foreign.pk])).status_code in (302, 404)
    refused = client.post(reverse("admin:pages_sitelanguage_add"), {"site": other.pk, "code": "it", "name": "Italian"})
    assert refused.status_code == 200 and not SiteLanguage.objects.filter(code="it").exists()
    bad = client.post(reverse("admin:pages_sitelanguage_add"), {"site": site.pk, "code": "not a tag", "name": "X"})
    assert "Use a language tag such as en, de or pt-BR." in bad.content.decode()
    client.post(reverse("admin:pages_sitelanguage_add"), {"site": site.pk, "code": "it", "name": "Italian"})
    assert SiteLanguage.objects.filter(site=site, code="it").exists()
    client.post(reverse("admin:pages_glossaryterm_add"), {"site": other.pk, "term": "Sneaky", "translation": ""})
    assert not GlossaryTerm.objects.filter(term="Sneaky").exists()
