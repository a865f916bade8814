"""`manage.py ai_generate`: fills missing meta in batches, reports failures per page (issues 4 and 6)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from pages.models import Page

from .factories import SiteFactory
from .factories_cms import PageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(emulated_site):
    return emulated_site("openrouter")


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("ai_generate", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_fills_missing_meta_and_skips_pages_that_have_it(site, upstream):
    missing = [PageFactory(site=site, meta_title="", meta_description="") for _ in range(5)]
    done = PageFactory(site=site, meta_title="Kept", meta_description="Kept too")
    out, err = run("--site", site.domain, "--concurrency", "3")
    assert "Generated meta for 5 of 5 page(s)." in out
    assert "5/5" in err  # the progress bar
    for page in missing:
        page.refresh_from_db()
        assert page.meta_title and page.meta_description and len(page.meta_title) <= 60
    done.refresh_from_db()
    assert (done.meta_title, done.meta_description) == ("Kept", "Kept too")
    # one call per page (the GET before them is the router's catalogue: does the model take a JSON schema?)
    assert len([r for r in upstream.requests if r.method == "POST"]) == 5


def test_a_failing_page_is_reported_and_left_alone(site, upstream, settings):
    settings.AI_MAX_RETRIES = 0
    pages = [PageFactory(site=site, meta_title="", meta_description="") for _ in range(3)]
    upstream.script(content="this is not json")
    out, _ = run("--concurrency", "1")
    assert "Generated meta for 2 of 3 page(s)." in out
    assert "failed: [" in out and "invalid_output: The model's answer did not match the schema" in out
    states = [bool(Page.objects.get(pk=p.pk).meta_title) for p in pages]
    assert states.count(False) == 1


def test_dry_run_and_limits(site, upstream):
    PageFactory.create_batch(3, site=site, meta_title="", meta_description="")
    out, _ = run("--dry-run", "--limit", "2")
    assert out.count("would generate:") == 2 and upstream.requests == []
    with pytest.raises(CommandError, match="No site with domain"):
        run("--site", "nowhere.example")
    SiteFactory(domain="empty.example")
    assert "No pages are missing meta." in run("--site", "empty.example")[0]
