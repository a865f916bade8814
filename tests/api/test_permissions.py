"""The JSON API asks what the admin asks (issue 25): `integrations.use_ai` for any call, `pages.change_page`
(and a token scoped for it) to write into a page, with provenance; tokens bound to a site, scopes and an
expiry; one rate-limit window per user; the cost answered when the price table gives it."""

from __future__ import annotations

import datetime
import io
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.utils import timezone

from integrations.models import APIToken, ModelPrice
from pages.models import ContentProvenance

from ..factories import SiteFactory, SiteMembershipFactory, UserFactory, may_use_ai
from ..factories_cms import PageFactory
from .calls import code_of, post

pytestmark = pytest.mark.django_db

BOTH = (APIToken.SCOPE_GENERATE, APIToken.SCOPE_PAGES)


def member(site, name: str, *perms: str, ai: bool = True):
    user = UserFactory(username=name)
    SiteMembershipFactory(user=user, site=site)
    return may_use_ai(user, *perms) if ai else user


def test_a_member_without_the_use_ai_permission_is_403_by_token_and_by_session(client, site, upstream):
    user = member(site, "no-ai", ai=False)
    response = post(client, {"prompt": "x"}, APIToken.issue(user, "t")[1])
    assert response.status_code == 403 and "May use AI" in response.json()["error"]["message"]
    client.force_login(user)
    assert post(client, {"prompt": "x"}).status_code == 403
    assert upstream.requests == []


def test_use_ai_through_a_group_counts(client, site, upstream):
    user = member(site, "grouped", ai=False)
    group = Group.objects.create(name="AI users")
    group.permissions.add(Permission.objects.get(codename="use_ai"))
    user.groups.add(group)
    assert post(client, {"prompt": "x"}, APIToken.issue(user, "t")[1]).status_code == 200


def test_writing_into_a_page_needs_change_page(client, site, upstream):
    page = PageFactory(site=site, meta_title="Kept")
    user = member(site, "reader")  # may use AI, may not change pages
    body = {"prompt": "x", "page_id": page.pk, "field": "meta_title"}
    response = post(client, body, APIToken.issue(user, "t", scopes=BOTH)[1])
    assert response.status_code == 403 and "change page" in response.json()["error"]["message"]
    client.force_login(user)
    assert post(client, body).status_code == 403
    page.refresh_from_db()
    assert page.meta_title == "Kept" and upstream.requests == []  # refused before any spend
    client.logout()
    assert post(client, {"prompt": "x"}, APIToken.issue(user, "t2")[1]).status_code == 200  # generating is fine


def test_writing_into_a_page_needs_the_tokens_pages_scope(client, site, staff, upstream):
    page = PageFactory(site=site, meta_title="Kept")
    generate_only = APIToken.issue(staff, "generate only")[1]
    response = post(client, {"prompt": "x", "page_id": page.pk, "field": "meta_title"}, generate_only)
    assert response.status_code == 403 and "pages.write" in response.json()["error"]["message"]
    page.refresh_from_db()
    assert page.meta_title == "Kept"


@pytest.mark.parametrize("field", ["meta_title", "body"])
def test_an_api_page_write_records_provenance(client, site, staff, token, upstream, field):
    ModelPrice.objects.create(
        provider="openai", model_id="gpt-4o", prompt_per_million=Decimal(1), completion_per_million=Decimal(2)
    )
    page = PageFactory(site=site)
    upstream.script(content="Warm bread daily")
    response = post(client, {"prompt": "Title", "model": "gpt-4o", "page_id": page.pk, "field": field}, token)
    assert response.json()["saved"] is True
    row = ContentProvenance.objects.get(page=page)
    page.refresh_from_db()
    assert row.field == field and row.accepted_text == getattr(page, field) == "Warm bread daily"
    assert row.accepted_by == staff and row.prompt_name == "api.generate" and row.provider == "openai"
    assert row.model == "gpt-4o" and row.cost == Decimal(response.json()["cost"]) > 0


def test_the_cost_from_the_price_table_is_answered(client, site, token, upstream):
    ModelPrice.objects.create(
        provider="openai", model_id="gpt-4o", prompt_per_million=Decimal(1), completion_per_million=Decimal(2)
    )
    data = post(client, {"prompt": "x", "model": "gpt-4o"}, token).json()
    expected = (Decimal(data["usage"]["prompt_tokens"]) + 2 * Decimal(data["usage"]["completion_tokens"])) / 10**6
    assert Decimal(data["cost"]) == expected and data["cost_source"] == "price_table"


def test_a_token_bound_to_a_site_works_only_there(client, site, staff, upstream, settings):
    other = SiteFactory(domain="other.example.test")
    SiteMembershipFactory(user=staff, site=other)
    raw = APIToken.issue(staff, "shop only", site=site)[1]
    assert post(client, {"prompt": "x"}, raw).status_code == 200
    response = post(client, {"prompt": "x"}, raw, host="other.example.test")
    assert response.status_code == 403 and "another site" in response.json()["error"]["message"]


def test_an_expired_token_is_401(client, site, staff, upstream):
    raw = APIToken.issue(staff, "old", expires_at=timezone.now() - datetime.timedelta(seconds=1))[1]
    response = post(client, {"prompt": "x"}, raw)
    assert response.status_code == 401 and code_of(response) == "token_expired"
    fresh = APIToken.issue(staff, "new", expires_at=timezone.now() + datetime.timedelta(days=1))[1]
    assert post(client, {"prompt": "x"}, fresh).status_code == 200


def test_a_token_without_the_generate_scope_is_403(client, site, staff, upstream):
    raw = APIToken.issue(staff, "pages only", scopes=(APIToken.SCOPE_PAGES,))[1]
    assert post(client, {"prompt": "x"}, raw).status_code == 403
    with pytest.raises(ValueError, match="Unknown token scope"):
        APIToken.issue(staff, "bad", scopes=("admin",))


def test_the_ai_token_command_issues_a_scoped_expiring_token(site, staff):
    out = io.StringIO()
    call_command(
        "ai_token",
        staff.username,
        "cli",
        "--site",
        site.domain,
        "--scope",
        "generate",
        "--scope",
        "pages.write",
        "--days",
        "7",
        stdout=out,
    )
    token = APIToken.objects.get(name="cli")
    assert token.site == site and token.scopes == list(BOTH)
    assert timezone.now() + datetime.timedelta(days=6) < token.expires_at <= timezone.now() + datetime.timedelta(days=7)
    assert out.getvalue().strip().splitlines()[-1].startswith("pnl_")
