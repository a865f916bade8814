"""The request path of POST /api/ai/generate/ outside the AI layer (issue 12): cheap, and no less strict.

A warm token call costs no query (the token's answer is remembered per process: integrations.api.tokens), the
host's site is remembered even when the host carries a port, and a token's last use is written at most once a
minute. Each saving here keeps the check it replaces: deactivated users, renamed sites and
non-members are still refused.
"""

from __future__ import annotations

import datetime

import pytest
from django.contrib.sites.models import Site
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.ai.ledger import usage
from integrations.api import tokens
from integrations.models import APIToken

from .calls import HOST, code_of, post

pytestmark = pytest.mark.django_db
PORTED = f"{HOST}:8000"  # the host as a client names it on a non-default port


def test_a_warm_token_call_on_a_ported_host_makes_no_query(client, token, upstream):
    assert post(client, {"prompt": "warm up"}, token, host=PORTED).status_code == 200
    entries: list = []
    with usage.deferred(entries), CaptureQueriesContext(connection) as queries:
        response = post(client, {"prompt": "second"}, token, host=PORTED)
    assert response.status_code == 200, response.content
    assert len(queries) == 0, [q["sql"] for q in queries]  # the token's answer is remembered
    usage.flush(entries)


def test_a_renamed_site_stops_answering_for_its_old_host(client, token, site, upstream):
    assert post(client, {"prompt": "x"}, token, host=PORTED).status_code == 200
    site.domain = "renamed.example.test"
    site.save()
    response = post(client, {"prompt": "x"}, token, host=PORTED)
    assert response.status_code == 404 and code_of(response) == "unknown_site"
    assert post(client, {"prompt": "x"}, token, host="renamed.example.test:8000").status_code == 200


def test_a_deleted_site_stops_answering(client, token, site, upstream):
    assert post(client, {"prompt": "x"}, token, host=PORTED).status_code == 200
    Site.objects.get(pk=site.pk).delete()
    assert code_of(post(client, {"prompt": "x"}, token, host=PORTED)) == "unknown_site"


def test_a_deactivated_users_token_is_401(client, token, staff, upstream):
    assert post(client, {"prompt": "x"}, token).status_code == 200
    staff.is_active = False
    staff.save()
    response = post(client, {"prompt": "x"}, token)
    assert response.status_code == 401 and code_of(response) == "invalid_token"


def test_a_token_loses_the_site_with_its_membership(client, token, staff, site, upstream):
    assert post(client, {"prompt": "x"}, token).status_code == 200
    staff.site_memberships.all().delete()
    assert code_of(post(client, {"prompt": "x"}, token)) == "forbidden"
    staff.is_staff, staff.is_superuser = False, True  # a superuser still needs staff status
    staff.save()
    assert code_of(post(client, {"prompt": "x"}, token)) == "forbidden"


def test_last_use_is_written_at_most_once_a_minute(client, token, upstream):
    record = APIToken.objects.get()
    assert record.last_used_at is None
    assert post(client, {"prompt": "x"}, token).status_code == 200
    first = APIToken.objects.get().last_used_at
    assert first is not None and timezone.now() - first < datetime.timedelta(seconds=10)
    assert post(client, {"prompt": "x"}, token).status_code == 200
    assert APIToken.objects.get().last_used_at == first  # within the minute: no write
    stale = timezone.now() - datetime.timedelta(minutes=2)
    APIToken.objects.filter(pk=record.pk).update(last_used_at=stale)  # no signal: this process still knows `first`
    assert post(client, {"prompt": "x"}, token).status_code == 200
    assert APIToken.objects.get().last_used_at == stale
    tokens.forget()  # as a process that has not seen the token: it reads the stale last use, and writes
    assert post(client, {"prompt": "x"}, token).status_code == 200
    assert APIToken.objects.get().last_used_at > stale + datetime.timedelta(minutes=1)


def test_a_site_renamed_by_another_process_stops_answering_once_its_host_expires(
    client, token, site, upstream, monkeypatch
):
    """A change made elsewhere sends no signal here: the remembered host is trusted for HOST_TTL seconds only."""
    from panel import sites

    assert post(client, {"prompt": "warm up"}, token, host=PORTED).status_code == 200
    Site.objects.filter(pk=site.pk).update(domain="renamed.example.test")  # no signal, as from another process
    assert post(client, {"prompt": "still remembered"}, token, host=PORTED).status_code == 200
    monkeypatch.setattr(sites, "HOST_TTL", 0.0)
    sites.forget_hosts()  # entries remembered with the old lifetime go; from now on every lookup expires at once
    assert post(client, {"prompt": "warm again"}, token, host=PORTED).status_code == 404
    Site.objects.filter(pk=site.pk).update(domain=HOST)
    assert post(client, {"prompt": "back"}, token, host=PORTED).status_code == 200
    Site.objects.filter(pk=site.pk).update(domain="renamed.example.test")
    response = post(client, {"prompt": "expired"}, token, host=PORTED)
    assert response.status_code == 404 and code_of(response) == "unknown_site"
