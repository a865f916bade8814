"""Issue 27 (1, 2): every ledger row names the user a call was made for, and a site admin's per-editor
quota (a monthly cap, a requests-per-minute limit; a user's own or their group's) refuses that editor
while another editor of the same site is served. Calls go through the JSON API as a front end makes
them (Panel is the server, the emulator the upstream)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError

from integrations.ai.ledger import usage
from integrations.models import AIUsage, APIToken, EditorQuota

from ..factories import SiteFactory, SiteMembershipFactory, UserFactory, may_use_ai
from ..test_governance_ratelimit import _not_at_a_window_edge  # noqa: F401  (autouse: not at a minute's edge)
from .calls import post

pytestmark = pytest.mark.django_db
BODY = {"prompt": "Tagline for bread", "model": "gpt-4o", "max_tokens": 2000}  # may cost up to ~$0.02


def editor(site, name: str):
    user = UserFactory(username=name)
    SiteMembershipFactory(user=user, site=site)
    may_use_ai(user)
    return user, APIToken.issue(user, f"{name}-token")[1]


def rows_of(user) -> list[AIUsage]:
    usage.flush()
    return list(AIUsage.objects.filter(user=user).order_by("id"))


def test_the_ledger_names_the_tokens_user(client, site, upstream):
    alice, token = editor(site, "alice")
    assert post(client, BODY, token).status_code == 200
    usage.flush()
    assert [(r.user_id, r.status) for r in AIUsage.objects.all()] == [(alice.pk, "ok")]


def test_the_ledger_names_the_session_user_of_an_admin_screen(client, site, upstream):
    """The admin's test screen runs no code of its own to name the user: AIEditorMiddleware does."""
    from django.urls import reverse

    from integrations.models import AIProviderSettings

    admin_user = UserFactory(username="site-admin", is_superuser=True)
    client.force_login(admin_user)
    record = AIProviderSettings.objects.get(site=site)
    url = reverse("admin:integrations_aiprovidersettings_test", args=[record.pk])
    fields = {"provider": "openai", "model": "gpt-4o", "max_tokens": 20, "temperature": 0.5, "prompt": "Hi"}
    assert client.post(url, fields).status_code == 200
    usage.flush()
    assert [r.user_id for r in AIUsage.objects.filter(status="ok")] == [admin_user.pk]


def test_a_monthly_cap_refuses_one_editor_while_another_is_served(client, site, upstream):
    alice, alice_token = editor(site, "alice")
    bob, bob_token = editor(site, "bob")
    quota = EditorQuota.objects.create(site=site, user=alice, monthly_budget=Decimal("0.01"))
    refused = post(client, BODY, alice_token)
    assert refused.status_code == 402, refused.content
    message = refused.json()["error"]["message"]
    assert f"monthly cap of the editor #{alice.pk} (own quota) of $0.01" in message and "editor quotas" in message
    assert post(client, BODY, bob_token).status_code == 200
    assert [r.status for r in rows_of(alice)] == ["refused"] and [r.status for r in rows_of(bob)] == ["ok"]
    assert len([r for r in upstream.requests if r.method == "POST"]) == 1  # Bob's only
    quota.monthly_budget = Decimal("5")
    quota.save()  # the site's snapshot is rebuilt: the raised cap holds at once
    assert post(client, BODY, alice_token).status_code == 200


def test_a_rate_limit_refuses_one_editor_while_another_is_served(client, site, upstream):
    alice, alice_token = editor(site, "alice")
    _bob, bob_token = editor(site, "bob")
    EditorQuota.objects.create(site=site, user=alice, requests_per_minute=1)
    assert post(client, BODY, alice_token).status_code == 200
    limited = post(client, BODY, alice_token)
    assert limited.status_code == 429 and int(limited["Retry-After"]) >= 1
    assert f"editor #{alice.pk} (own quota) has made its 1 AI requests" in limited.json()["error"]["message"]
    assert [post(client, BODY, bob_token).status_code for _ in range(3)] == [200, 200, 200]
    assert [r.status for r in rows_of(alice)] == ["ok", "refused"]
    assert [r.error_class for r in rows_of(alice)] == ["", "RateLimited"]


def test_a_groups_quota_reaches_its_members_on_that_site_only(client, site, upstream):
    alice, alice_token = editor(site, "alice")
    _bob, bob_token = editor(site, "bob")
    writers = Group.objects.create(name="Writers")
    EditorQuota.objects.create(site=site, group=writers, monthly_budget=Decimal("0.01"))
    assert post(client, BODY, alice_token).status_code == 200  # not yet a member
    alice.groups.add(writers)  # joining the group reaches the cached snapshot
    refused = post(client, BODY, alice_token)
    assert refused.status_code == 402 and "quota of the group “Writers”" in refused.json()["error"]["message"]
    assert post(client, BODY, bob_token).status_code == 200
    # a user's own row wins over their group's
    EditorQuota.objects.create(site=site, user=alice, monthly_budget=Decimal("5"))
    assert post(client, BODY, alice_token).status_code == 200


def test_a_quota_targets_the_sites_staff_only(site):
    outsider = UserFactory(username="outsider")
    SiteMembershipFactory(user=outsider, site=SiteFactory(domain="elsewhere.example.test"))
    quota = EditorQuota(site=site, user=outsider, monthly_budget=Decimal("1"))
    with pytest.raises(ValidationError, match="staff member of this site"):
        quota.full_clean()
    with pytest.raises(ValidationError, match="one user or one group"):
        EditorQuota(site=site, monthly_budget=Decimal("1")).full_clean()


def test_a_streamed_admin_answer_is_the_session_users_and_under_their_quota(client, site, upstream):
    """The test screen's stream runs after the view returned: the middleware carries the editor into it."""
    from django.urls import reverse

    from integrations.models import AIProviderSettings

    editor_user = UserFactory(username="streamer", is_superuser=True)
    client.force_login(editor_user)
    url = reverse(
        "admin:integrations_aiprovidersettings_test_stream", args=[AIProviderSettings.objects.get(site=site).pk]
    )
    fields = {"provider": "openai", "model": "gpt-4o", "max_tokens": 20, "temperature": 0.5, "prompt": "Hi"}
    body = b"".join(client.post(url, fields).streaming_content).decode()
    assert '"done": true' in body
    usage.flush()
    assert [r.user_id for r in AIUsage.objects.all()] == [editor_user.pk]
    EditorQuota.objects.create(site=site, user=editor_user, requests_per_minute=1)
    assert '"done": true' in b"".join(client.post(url, fields).streaming_content).decode()  # its one this minute
    body = b"".join(client.post(url, fields).streaming_content).decode()
    error = json.loads(body.removeprefix("data: "))["error"]
    assert error["code"] == "rate_limited" and "This editor “streamer” (own quota) has made its 1" in error["message"]
