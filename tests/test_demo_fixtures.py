"""The demo data: no keys in the fixture, demo records wired to the emulator and labelled as such."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from integrations.ai.service import AIService
from integrations.models import AIProviderSettings, ModelMapping

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "demo.json"

pytestmark = pytest.mark.django_db


def test_fixture_holds_no_key():
    text = FIXTURE.read_text()
    assert not re.search(r'"[a-z]+_api_key": "[^"]+"', text)
    assert "sk-" not in text


def test_load_demo_wires_the_demo_sites_to_the_emulator(upstream, client):
    out = StringIO()
    call_command("load_demo", "--upstream-url", upstream.url, stdout=out)
    call_command("load_demo", "--upstream-url", upstream.url, stdout=StringIO())  # idempotent
    assert "demo-token" not in out.getvalue()
    site_a = AIProviderSettings.objects.get(site__domain="127.0.0.1")
    assert site_a.is_demo_upstream and site_a.openrouter_base_url == upstream.openrouter_base_url
    assert ModelMapping.objects.filter(site__isnull=True, logical_name="claude-3-5-sonnet").count() == 2
    result = AIService(site=site_a.site).generate_content("Hello demo")
    assert result.provider == "openrouter" and result.content.endswith("Hello demo")
    site_b = AIProviderSettings.objects.get(site__domain="localhost")
    assert AIService(site=site_b.site).generate_content("Hello B").provider == "anthropic"

    assert client.login(username="site-a-admin", password="demo")
    change = "admin:integrations_aiprovidersettings_change"
    html = client.get(reverse(change, args=[site_a.pk]), HTTP_HOST="127.0.0.1").content.decode()
    assert "Demo upstream: answers come from the local emulator" in html
    assert client.get(reverse(change, args=[site_b.pk]), HTTP_HOST="127.0.0.1").status_code == 302
