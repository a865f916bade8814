"""POST /api/ai/generate/: staff only, per host site, validated, JSON errors with stable codes (issue 4)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from integrations.ai.ledger import usage
from integrations.models import AIUsage, APIToken
from pages.models import Page

from ..factories import SiteFactory, SiteMembershipFactory, SuperUserFactory, UserFactory
from ..factories_cms import PageFactory
from .calls import HOST, OAI_KEY, URL, code_of, post

pytestmark = pytest.mark.django_db


def test_token_auth_generates_and_reports_usage(client, token, upstream, site):
    response = post(client, {"prompt": "Tagline for bread", "model": "gpt-4o", "max_tokens": 50}, token)
    assert response.status_code == 200
    data = response.json()
    assert data["content"] == "Emulated openai reply (gpt-4o): Tagline for bread"
    assert data["provider"] == "openai" and data["usage"]["total_tokens"] > 0 and data["saved"] is False
    assert upstream.requests[0].headers["authorization"] == f"Bearer {OAI_KEY}"
    usage.flush()
    assert AIUsage.objects.get().service == "api.generate"
    assert AIUsage.objects.get().site == site


def test_saves_into_a_page_field(client, token, site, upstream):
    page = PageFactory(site=site, meta_description="")
    upstream.script(content="Fresh bread, twenty percent off, " * 10)
    response = post(client, {"prompt": "Describe", "page_id": page.pk, "field": "meta_description"}, token)
    assert response.json()["saved"] is True
    page.refresh_from_db()
    assert 0 < len(page.meta_description) <= 160 and not page.meta_description.endswith(" ")


def test_anonymous_is_401(client, site):
    response = post(client, {"prompt": "x"})
    assert response.status_code == 401 and code_of(response) == "not_authenticated"
    response = post(client, {"prompt": "x"}, token="pnl_wrong")
    assert response.status_code == 401 and code_of(response) == "invalid_token"


def test_non_staff_and_non_members_are_403(client, site):
    outsider = UserFactory(username="outsider")  # staff, but manages no site
    token = APIToken.issue(outsider, "t")[1]
    assert code_of(post(client, {"prompt": "x"}, token)) == "forbidden"
    customer = UserFactory(username="customer", is_staff=False)
    SiteMembershipFactory(user=customer, site=site)
    response = post(client, {"prompt": "x"}, APIToken.issue(customer, "t")[1])
    assert response.status_code == 403


def test_another_sites_page_is_404(client, token, site, upstream):
    other_page = PageFactory(site=SiteFactory(domain="other.example.test"))
    response = post(client, {"prompt": "x", "page_id": other_page.pk, "field": "meta_title"}, token)
    assert response.status_code == 404 and code_of(response) == "not_found"
    assert upstream.requests == []


def test_host_decides_the_site(client, token, site, upstream):
    SiteFactory(domain="elsewhere.example.test")
    response = post(client, {"prompt": "x"}, token, host="elsewhere.example.test")
    assert response.status_code == 403  # the editor manages shop, not elsewhere


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"prompt": ""}, 400, "invalid_request"),
        ({"prompt": "   "}, 400, "invalid_request"),
        ({}, 400, "invalid_request"),
        ({"prompt": "x", "max_tokens": 0}, 400, "invalid_request"),
        ({"prompt": "x", "max_tokens": 500_000}, 400, "invalid_request"),
        ({"prompt": "x", "max_tokens": "100"}, 400, "invalid_request"),
        ({"prompt": "x", "temperature": 2.5}, 400, "invalid_request"),
        ({"prompt": "x", "temperature": -1}, 400, "invalid_request"),
        ({"prompt": "x", "provider": "cohere"}, 400, "unknown_provider"),
        ({"prompt": "x", "model": "claude-3-5-sonnet", "provider": "openai"}, 400, "model_not_found"),
        ({"prompt": "x", "page_id": 1, "field": "title"}, 400, "invalid_request"),
    ],
)
def test_bad_input_is_4xx_with_a_code_and_no_upstream_call(client, token, upstream, body, status, code):
    response = post(client, body, token)
    assert (response.status_code, code_of(response)) == (status, code)
    assert upstream.requests == []


def test_malformed_json_body(client, token):
    response = post(client, None, token, raw="{not json")
    assert (response.status_code, code_of(response)) == (400, "invalid_json")


def test_rate_limit_is_429_with_retry_after(client, token, upstream, settings):
    settings.AI_MAX_RETRIES = 0
    upstream.script(flavor="openai", status=429, headers={"Retry-After": "45"})
    response = post(client, {"prompt": "x"}, token)
    assert (response.status_code, code_of(response), response["Retry-After"]) == (429, "rate_limited", "45")
    assert OAI_KEY not in response.content.decode()


@pytest.mark.parametrize(
    ("status", "expected", "code"), [(503, 503, "provider_unavailable"), (401, 502, "authentication_failed")]
)
def test_vendor_errors_map_to_statuses(client, token, upstream, settings, status, expected, code):
    settings.AI_MAX_RETRIES = 0
    upstream.script(flavor="openai", status=status)
    response = post(client, {"prompt": "x"}, token)
    assert (response.status_code, code_of(response)) == (expected, code)


def test_session_auth_requires_csrf(site, staff, upstream):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(staff)
    response = post(csrf_client, {"prompt": "x"})
    assert (response.status_code, code_of(response)) == (403, "csrf_failed")
    csrf_client.get("/admin/", HTTP_HOST=HOST)  # the page's logout form sets the CSRF cookie
    token = csrf_client.cookies["csrftoken"].value
    response = csrf_client.post(
        URL, data=json.dumps({"prompt": "x"}), content_type="application/json", HTTP_HOST=HOST, HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 200


def test_get_is_405(client, token):
    response = client.get(URL, HTTP_HOST=HOST, HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 405


def test_superuser_may_use_any_site(client, site, upstream):
    token = APIToken.issue(SuperUserFactory(), "root")[1]
    assert post(client, {"prompt": "x"}, token).status_code == 200
    assert Page.objects.count() == 0
