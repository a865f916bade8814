"""Issue 23: search by meaning and related pages, through the real openai SDK against the emulator's /embeddings
(hashed-word vectors): the embed job (batched, only changed pages, off the request thread), the k nearest
pages of a site, related pages, the changelist search, per-site isolation, the cached matrix invalidated."""

from __future__ import annotations

import numpy as np
import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from integrations.ai.ledger import usage
from integrations.models import AIUsage, BatchJob
from pages import search, tasks
from pages.models import Page, PageEmbedding

from .factories import SiteMembershipFactory, UserFactory
from .factories_cms import BlockFactory, PageFactory

pytestmark = pytest.mark.django_db

SEEDED = {
    "bakery": ("The bakery", "Sourdough bread, rye bread and baking recipes from our ovens."),
    "florist": ("Flower shop", "Roses, tulips and wedding bouquets arranged by hand."),
    "garage": ("Car repairs", "Brakes, tyres and engine servicing for every car."),
    "hours": ("Opening hours", "Open Tuesday to Sunday, seven to six."),
    "cafe": ("Coffee corner", "Espresso, cappuccino and tea with cake."),
}


def seed(site, prefix: str = "") -> dict[str, Page]:
    return {
        slug: PageFactory(site=site, slug=prefix + slug, title=title, body=body, meta_description="")
        for slug, (title, body) in SEEDED.items()
    }


def index(site) -> BatchJob:
    job = tasks.start_embed(site)
    job.refresh_from_db()
    assert job.status == "done", (job.error, job.items)
    return job


def test_bread_recipes_finds_the_bakery_first_and_the_index_is_per_site(emulated_site, upstream):
    site, other = emulated_site("openai"), emulated_site("openai")
    pages = seed(site)
    seed(other, "x-")
    index(site)
    index(other)
    hits = search.nearest(site, "bread recipes", k=3)
    assert hits[0].page == pages["bakery"] and len(hits) == 3
    assert all(hit.page.site_id == site.id for hit in hits)
    assert search.nearest(site, "wedding roses")[0].page == pages["florist"]
    assert search.nearest(site.id, "engine brakes", k=1)[0].page == pages["garage"]
    related = search.related(pages["bakery"], k=10)
    assert pages["bakery"] not in [h.page for h in related] and len(related) == 4
    assert {h.page.site_id for h in related} == {site.id}


def test_the_job_embeds_in_batches_and_only_changed_pages(emulated_site, upstream):
    site = emulated_site("openai")
    pages = seed(site)
    job = index(site)
    posts = [r for r in upstream.requests_for("openai") if r.path.endswith("/embeddings")]
    assert len(posts) == 1 and len(posts[0].json["input"]) == 5  # one request for the five pages
    assert job.succeeded == 1 and PageEmbedding.objects.filter(site=site).count() == 5
    usage.flush()
    rows = AIUsage.objects.filter(site=site, service="pages.search")
    assert rows.count() == 1 and rows.get().cost > 0

    assert search.stale_page_ids(site.id) == []
    upstream.reset()
    index(site)
    assert upstream.requests == []  # nothing changed: nothing sent

    pages["hours"].body = "Fresh bread recipes every Sunday."
    pages["hours"].save()
    assert search.stale_page_ids(site.id) == [pages["hours"].pk]
    index(site)
    posts = [r for r in upstream.requests_for("openai") if r.path.endswith("/embeddings")]
    assert [r.json["input"] for r in posts] == [[search.page_text(pages["hours"])]]
    usage.flush()
    newest = AIUsage.objects.filter(site=site, service="pages.search").order_by("-id").first()
    assert (newest.content_type, newest.object_id) == (ContentType.objects.get_for_model(Page), pages["hours"].pk)


def test_the_cached_matrix_follows_changes(emulated_site, upstream):
    site = emulated_site("openai")
    pages = seed(site)
    index(site)
    assert search.nearest(site, "espresso cappuccino")[0].page == pages["cafe"]
    before = search._matrices[site.id]
    search.nearest(site, "espresso")
    assert search._matrices[site.id] is before  # one matrix per site while nothing changes
    page = PageFactory(site=site, slug="tea", title="Tea room", body="Espresso cappuccino espresso cappuccino tea.")
    index(site)
    assert search.nearest(site, "espresso cappuccino")[0].page == page
    assert search._matrices[site.id] is not before
    vectors = search._matrices[site.id].vectors
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_a_page_save_schedules_the_embed_job_after_commit(
    emulated_site, upstream, settings, django_capture_on_commit_callbacks
):
    settings.PAGES_EMBED_ON_SAVE = "sync"
    site = emulated_site("openai")
    with django_capture_on_commit_callbacks(execute=True):
        page = PageFactory(site=site, slug="bread", title="Bread", body="Bread recipes")
        BlockFactory(page=page, content={"body": "Rye and spelt."})
    assert BatchJob.objects.filter(kind="pages.embed", site=site).count() == 2
    stored = PageEmbedding.objects.get(page=page)
    assert stored.content_hash == search.text_hash(search.page_text(page), None)
    assert "Rye and spelt." in search.page_text(page)
    settings.PAGES_EMBED_ON_SAVE = "off"
    with django_capture_on_commit_callbacks(execute=True):
        page.save()
    assert BatchJob.objects.filter(kind="pages.embed", site=site).count() == 2


def test_bad_query_is_a_typed_error_and_an_empty_index_finds_nothing(emulated_site, upstream):
    from integrations.ai.providers.errors import InvalidRequest

    site = emulated_site("openai")
    with pytest.raises(InvalidRequest, match="words to search"):
        search.nearest(site, "  ")
    assert search.nearest(site, "bread") == [] and upstream.requests == []


def staff(site, *perms: str):
    user = UserFactory()
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    return user


def test_changelist_find_by_meaning_and_related_pages_in_the_form(client, emulated_site, upstream):
    site, other = emulated_site("openai"), emulated_site("openai")
    pages = seed(site)
    foreign = seed(other, "x-")
    index(site)
    index(other)
    client.force_login(staff(site, "view_page", "change_page"))
    response = client.get(reverse("admin:pages_page_changelist"), {"meaning": "bread recipes"})
    assert response.status_code == 200
    listed = list(response.context["cl"].result_list)
    assert listed[0] == pages["bakery"] and all(p.site_id == site.id for p in listed)
    assert 'value="bread recipes"' in response.content.decode()
    form = client.get(reverse("admin:pages_page_change", args=[pages["bakery"].pk])).content.decode()
    change = lambda page: reverse("admin:pages_page_change", args=[page.pk])  # noqa: E731
    assert "Related pages" in form and change(pages["cafe"]) in form
    assert not any(change(page) in form for page in foreign.values())  # the other site has the same titles


def test_the_demo_has_two_languages_a_translated_page_and_searchable_pages(upstream):
    from io import StringIO

    from django.core.management import call_command

    from pages import translation
    from pages.models import PageTranslation, SiteLanguage

    call_command("load_demo", "--upstream-url", upstream.url, stdout=StringIO())
    bakery = Page.objects.get(slug="spring-sale").site
    assert set(SiteLanguage.objects.filter(site=bakery).values_list("code", flat=True)) >= {"en", "de"}
    link = PageTranslation.objects.get(source__slug="spring-sale", language="de")
    assert translation.stale_units(link) == {}  # the fixture's hashes match its source page
    out = StringIO()
    call_command("index_pages", "--site", bakery.domain, stdout=out)
    assert "done" in out.getvalue()
    assert search.nearest(bakery, "cinnamon buns sale")[0].page.slug in ("spring-sale", "spring-sale-de")
    assert {h.page.site_id for h in search.nearest(bakery, "wedding cakes", k=10)} == {bakery.id}


def test_a_lost_version_counter_never_serves_an_old_matrix(emulated_site, upstream):
    from django.core.cache import cache

    site = emulated_site("openai")
    pages = seed(site)
    index(site)
    assert search.nearest(site, "espresso cappuccino")[0].page == pages["cafe"]
    cache.clear()  # the shared cache lost the counter (a Redis restart); this process keeps its matrix
    PageEmbedding.objects.filter(page=pages["cafe"]).delete()
    search.forget(site.id)
    assert pages["cafe"] not in [h.page for h in search.nearest(site, "espresso cappuccino", k=10)]
