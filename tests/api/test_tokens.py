"""A token's answer is remembered per process (integrations.api.tokens, issue 22) and never outlives a change.

A warm token costs no query; a change to the token (revoked, re-scoped, moved to another site), to its user,
membership or permissions is seen by the next call of this process (signals), by another process once the
shared version moves, and a change no signal tells of within `MAX_AGE`. Expiry is checked on every call.
"""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.ai.ledger import usage
from integrations.api import tokens
from integrations.models import APIToken

from ..factories import SiteFactory
from .calls import code_of, post

pytestmark = pytest.mark.django_db


def _token_queries(client, raw) -> tuple[int, list[str]]:
    """The call's status and the token queries it made (the call's own ledger rows are held back)."""
    entries: list = []
    with usage.deferred(entries), CaptureQueriesContext(connection) as queries:
        response = post(client, {"prompt": "x"}, raw)
    usage.flush(entries)
    return response.status_code, [q["sql"] for q in queries if "integrations_apitoken" in q["sql"]]


def test_a_revoked_token_stops_at_once(client, token, upstream):
    assert post(client, {"prompt": "warm"}, token).status_code == 200
    record = APIToken.objects.get()
    record.revoked_at = timezone.now()
    record.save()
    response = post(client, {"prompt": "x"}, token)
    assert response.status_code == 401 and code_of(response) == "invalid_token"


def test_a_deleted_token_stops_at_once(client, token, upstream):
    assert post(client, {"prompt": "warm"}, token).status_code == 200
    APIToken.objects.all().delete()
    assert code_of(post(client, {"prompt": "x"}, token)) == "invalid_token"


def test_an_edited_token_is_read_again_at_once(client, token, site, upstream):
    assert post(client, {"prompt": "warm"}, token).status_code == 200
    record = APIToken.objects.get()
    record.scopes = [APIToken.SCOPE_PAGES]
    record.save()
    response = post(client, {"prompt": "x"}, token)
    assert response.status_code == 403 and "'generate' scope" in response.json()["error"]["message"]
    record.scopes, record.site = [APIToken.SCOPE_GENERATE], SiteFactory(domain="elsewhere.example.test")
    record.save()
    response = post(client, {"prompt": "x"}, token)
    assert response.status_code == 403 and "another site" in response.json()["error"]["message"]


def test_a_remembered_token_still_expires_on_the_clock(client, staff, upstream, monkeypatch):
    raw = APIToken.issue(staff, "short", expires_at=timezone.now() + datetime.timedelta(hours=1))[1]
    assert post(client, {"prompt": "warm"}, raw).status_code == 200
    later = timezone.now() + datetime.timedelta(hours=2)
    monkeypatch.setattr(timezone, "now", lambda: later)
    status, queries = _token_queries(client, raw)
    assert status == 401 and queries == []  # from memory, and expired all the same


def test_losing_the_use_ai_permission_is_seen_at_once(client, staff, token, upstream):
    assert post(client, {"prompt": "warm"}, token).status_code == 200
    staff.user_permissions.remove(Permission.objects.get(codename="use_ai"))
    assert post(client, {"prompt": "x"}, token).status_code == 403
    group = Group.objects.create(name="AI users")
    group.permissions.add(Permission.objects.get(codename="use_ai"))
    staff.groups.add(group)
    assert post(client, {"prompt": "x"}, token).status_code == 200
    group.permissions.clear()
    assert post(client, {"prompt": "x"}, token).status_code == 403


def test_a_login_does_not_make_tokens_be_read_again(client, staff, token, upstream):
    assert post(client, {"prompt": "warm"}, token).status_code == 200
    client.force_login(staff)  # saves the user's last_login: nothing a token's answer holds
    client.logout()
    assert _token_queries(client, token) == (200, [])


def test_a_change_in_another_process_is_seen_once_the_shared_version_moves(client, token, upstream, settings):
    settings.AI_SETTINGS_CHECK_INTERVAL = 0  # the version is read on every call
    assert post(client, {"prompt": "warm"}, token).status_code == 200
    APIToken.objects.update(revoked_at=timezone.now())  # no signal here: as if saved by another process...
    assert _token_queries(client, token) == (200, [])  # ...which this one cannot know yet
    cache.set(tokens.VERSION_KEY, 10_000, None)  # ...until that process's save moves the shared version
    status, queries = _token_queries(client, token)
    assert status == 401 and len(queries) == 1


def test_a_change_no_signal_tells_of_is_seen_within_max_age(client, token, upstream, monkeypatch):
    assert post(client, {"prompt": "warm"}, token).status_code == 200
    APIToken.objects.update(scopes=[APIToken.SCOPE_PAGES])  # a bulk update: no signal, no version moved
    assert post(client, {"prompt": "x"}, token).status_code == 200
    monkeypatch.setattr(tokens, "MAX_AGE", 0.0)
    assert code_of(post(client, {"prompt": "x"}, token)) == "forbidden"


def test_an_unknown_token_is_refused_and_a_new_one_works_at_once(client, staff, upstream):
    assert code_of(post(client, {"prompt": "x"}, "pnl_not-a-token")) == "invalid_token"
    assert _token_queries(client, "pnl_not-a-token") == (401, [])  # remembered as unknown
    assert post(client, {"prompt": "x"}, APIToken.issue(staff, "new")[1]).status_code == 200
