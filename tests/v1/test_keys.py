"""Virtual keys: resolved with no query once warm, forgotten on revoke everywhere, managed per site in the admin."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from integrations.ai.runtime.shared_cache import cache
from integrations.api.v1 import keys
from integrations.models import APIToken, VirtualKey

from ..factories import SiteFactory, SiteMembershipFactory, UserFactory


@pytest.fixture
def site(db):
    return SiteFactory(domain="keys.example.test")


def test_a_warm_key_costs_no_query(site, django_assert_num_queries, settings):
    settings.AI_SETTINGS_CHECK_INTERVAL = 0  # even when the version counter is read on every request
    raw = keys.issue(site, UserFactory(), "ci", requests_per_minute=5)[1]
    first = keys.resolve(raw)
    with django_assert_num_queries(0):
        again = keys.resolve(raw)
    assert again == first and (again.site_id, again.requests_per_minute, again.last4) == (site.pk, 5, raw[-4:])


def test_a_revoke_in_another_process_is_seen_through_the_version_counter(site, settings):
    settings.AI_SETTINGS_CHECK_INTERVAL = 0
    raw = keys.issue(site, UserFactory(), "ci")[1]
    keys.resolve(raw)
    APIToken.objects.filter(key_hash=keys.digest(raw)).update(revoked_at="2026-01-01T00:00:00Z")  # no signal here
    assert keys.resolve(raw).site_id == site.pk  # this process has not heard of it yet
    cache.incr(keys.VERSION_KEY) if cache.get(keys.VERSION_KEY) else cache.set(keys.VERSION_KEY, 1)  # the other's bump
    with pytest.raises(keys.KeyRefused, match="not valid"):
        keys.resolve(raw)


def test_only_a_hash_and_the_last_four_are_stored(site):
    row, raw = keys.issue(site, UserFactory(), "ci")
    stored = APIToken.objects.filter(pk=row.pk).values().get()
    assert raw not in repr(stored) and stored["key_hash"] == keys.digest(raw) and stored["last4"] == raw[-4:]
    assert raw not in repr(keys.resolve(raw)) and raw not in str(row)


def test_generate_tokens_and_virtual_keys_do_not_open_each_others_endpoints(site, client, settings):
    settings.ALLOWED_HOSTS = ["*"]
    user = UserFactory(is_staff=True)
    SiteMembershipFactory(user=user, site=site)
    _, generate_token = APIToken.issue(user, "generate endpoint", site=site)
    with pytest.raises(keys.KeyRefused):
        keys.resolve(generate_token)
    _, virtual = keys.issue(site, user, "v1 only")
    answer = client.post(
        "/api/ai/generate/",
        {"prompt": "hi"},
        content_type="application/json",
        HTTP_HOST=site.domain,
        HTTP_AUTHORIZATION=f"Token {virtual}",
    )
    assert answer.status_code == 403 and "scope" in answer.json()["error"]["message"]


# -- the admin ---------------------------------------------------------------------------------------------
@pytest.fixture
def site_admin(site):
    user = UserFactory(username="site-admin", is_staff=True)
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=["add_virtualkey", "change_virtualkey", "view_virtualkey", "delete_virtualkey"]
        )
    )
    client = Client()
    client.force_login(user)
    return client


def _create(client: Client, site_id: int, **fields) -> object:
    data = {
        "site": site_id,
        "name": "storefront",
        "expires_at_0": "",
        "expires_at_1": "",
        "monthly_budget": "",
        "requests_per_minute": "",
        "tokens_per_minute": "",
        "allowed_models": "",
        **fields,
    }
    return client.post("/admin/integrations/virtualkey/add/", data)


def test_a_site_admin_creates_a_key_shown_once(site, site_admin, settings):
    settings.ALLOWED_HOSTS = ["*"]
    answer = _create(site_admin, site.pk, monthly_budget="5.00", allowed_models="gpt-4o-mini, claude-*")
    assert answer.status_code == 200 and "no-store" in answer["Cache-Control"]
    raw = re.search(r'value="(sk-panel-[^"]+)"', answer.content.decode()).group(1)
    key = VirtualKey.objects.get()
    assert (key.site_id, key.monthly_budget, key.allowed_models) == (
        site.pk,
        Decimal("5.00"),
        ["gpt-4o-mini", "claude-*"],
    )
    assert keys.resolve(raw).id == key.pk
    listing = site_admin.get("/admin/integrations/virtualkey/").content.decode()
    change = site_admin.get(f"/admin/integrations/virtualkey/{key.pk}/change/").content.decode()
    assert f"…{raw[-4:]}" in listing and raw not in listing and raw not in change


def test_a_site_admin_cannot_create_see_or_revoke_another_sites_keys(site, site_admin, settings):
    settings.ALLOWED_HOSTS = ["*"]
    other = SiteFactory(domain="other.example.test")
    answer = _create(site_admin, other.pk)
    assert answer.status_code == 200 and "Select a valid choice" in answer.content.decode()
    assert not VirtualKey.objects.exists()
    foreign, raw = keys.issue(other, UserFactory(), "theirs")
    assert "theirs" not in site_admin.get("/admin/integrations/virtualkey/").content.decode()
    assert site_admin.get(f"/admin/integrations/virtualkey/{foreign.pk}/change/").status_code in (302, 404)
    site_admin.post("/admin/integrations/virtualkey/", {"action": "revoke", "_selected_action": [foreign.pk]})
    assert keys.resolve(raw).site_id == other.pk  # still working: the action only sees the admin's own keys


def test_revoking_stops_the_key_at_once(site, site_admin, settings):
    settings.ALLOWED_HOSTS = ["*"]
    mine, raw = keys.issue(site, UserFactory(), "mine")
    keys.resolve(raw)  # warm
    site_admin.post("/admin/integrations/virtualkey/", {"action": "revoke", "_selected_action": [mine.pk]})
    with pytest.raises(keys.KeyRefused):
        keys.resolve(raw)
    assert "revoked" in site_admin.get("/admin/integrations/virtualkey/").content.decode()
