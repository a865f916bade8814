"""Issue 27 (2): the editor-quota admin is site-scoped: a site admin sees and sets quotas of their own
site only, and can only target their site's staff (the choices list no one else, and a forged POST is
a form error naming the field)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from integrations.models import EditorQuota

from .factories import SiteFactory, SiteMembershipFactory, UserFactory

pytestmark = pytest.mark.django_db
URL = "/admin/integrations/editorquota/"


@pytest.fixture
def setup(client):
    site_a, site_b = SiteFactory(domain="a.example.test"), SiteFactory(domain="b.example.test")
    admin_a = UserFactory(username="admin-a")
    SiteMembershipFactory(user=admin_a, site=site_a)
    admin_a.user_permissions.set(Permission.objects.filter(codename__endswith="_editorquota"))
    writer_a, writer_b = UserFactory(username="writer-a"), UserFactory(username="writer-b-only")
    SiteMembershipFactory(user=writer_a, site=site_a)
    SiteMembershipFactory(user=writer_b, site=site_b)
    EditorQuota.objects.create(site=site_b, user=writer_b, monthly_budget=Decimal("777"))
    client.force_login(admin_a)
    return site_a, site_b, writer_a, writer_b


def test_a_site_admin_sets_a_quota_for_their_sites_staff(client, setup):
    site_a, _, writer_a, _ = setup
    response = client.post(
        URL + "add/", {"site": site_a.pk, "user": writer_a.pk, "monthly_budget": "12.50", "requests_per_minute": 5}
    )
    assert response.status_code == 302, response.content[:2000]
    quota = EditorQuota.objects.get(site=site_a)
    assert (quota.user, quota.monthly_budget, quota.requests_per_minute) == (writer_a, Decimal("12.50"), 5)


def test_another_sites_people_and_quotas_are_out_of_reach(client, setup):
    site_a, site_b, _, writer_b = setup
    form = client.get(URL + "add/").content.decode()
    assert "writer-a" in form and "writer-b-only" not in form and "b.example.test" not in form
    listing = client.get(URL).content.decode()
    assert "777" not in listing and "writer-b-only" not in listing
    other = EditorQuota.objects.get(site=site_b)
    assert client.get(f"{URL}{other.pk}/change/").status_code in (302, 404)
    forged = client.post(URL + "add/", {"site": site_a.pk, "user": writer_b.pk, "monthly_budget": "1"})
    assert forged.status_code == 200 and "Select a valid choice" in forged.content.decode()
    forged = client.post(URL + "add/", {"site": site_b.pk, "user": writer_b.pk, "monthly_budget": "1"})
    assert forged.status_code == 200 and not EditorQuota.objects.filter(site=site_b, monthly_budget=1).exists()
    assert EditorQuota.objects.filter(site=site_a).count() == 0
