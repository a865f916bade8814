"""Issue 20 (6): the admin's test screen tries a tool definition, a JSON schema and an image upload against the
site's provider, through the gateway, and shows the tool call, the validated JSON or a clear error."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from .beyond_text import png
from .test_admin_settings import assert_no_key, site_admin_for, two_sites  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db

WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
BASE = {"provider": "anthropic", "model": "claude-3-5-sonnet", "max_tokens": 50, "temperature": 0.5}


def post(client, record, **fields):
    url = reverse("admin:integrations_aiprovidersettings_test", args=[record.pk])
    return client.post(url, {**BASE, **fields}).content.decode()


def test_a_tool_definition_shows_the_call_the_model_makes(client, two_sites, upstream):  # noqa: F811
    _, record = two_sites
    client.force_login(site_admin_for(record.site))
    html = post(client, record, prompt="Weather in Paris?", tool=json.dumps(WEATHER))
    assert '<ul id="result-tool-calls">' in html and "<code>get_weather</code>" in html
    assert upstream.requests[-1].json["tools"][0]["name"] == "get_weather"
    assert_no_key(html)


def test_a_schema_shows_validated_json(client, two_sites, upstream):  # noqa: F811
    _, record = two_sites
    client.force_login(site_admin_for(record.site))
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    html = post(client, record, prompt="Name a bakery", schema=json.dumps(schema))
    assert 'id="result-parsed">Valid against the schema' in html
    assert upstream.requests[-1].json["tool_choice"]["type"] == "tool"


def test_an_image_upload_is_described(client, two_sites, upstream):  # noqa: F811
    _, record = two_sites
    client.force_login(site_admin_for(record.site))
    photo = SimpleUploadedFile("tart.png", png(64, 48), content_type="image/png")
    html = post(client, record, prompt="Describe it", image=photo)
    assert "I see 1 image(s) (image/png 64x48)" in html
    text_only = SimpleUploadedFile("tart.png", png(64, 48), content_type="image/png")
    html = post(client, record, prompt="Describe it", image=text_only, model="claude-3-5-haiku")
    assert (
        "Not supported by this provider: " in html
        and "<code>not_supported</code>" in html
        and "does not support images" in html
    )


def test_bad_inputs_are_form_errors_and_nothing_is_sent(client, two_sites, upstream):  # noqa: F811
    _, record = two_sites
    client.force_login(site_admin_for(record.site))
    html = post(
        client,
        record,
        prompt="x",
        tool="{not json",
        schema="[1]",
        image=SimpleUploadedFile("a.txt", b"hello", content_type="text/plain"),
    )
    assert "The tool is not JSON" in html and "The JSON schema must be a JSON object" in html
    assert "Upload a PNG, JPEG, GIF or WebP image (got text/plain)" in html
    assert upstream.requests == []


def test_another_sites_screen_is_a_404(client, two_sites, upstream):  # noqa: F811
    record_a, record_b = two_sites
    client.force_login(site_admin_for(record_a.site))
    url = reverse("admin:integrations_aiprovidersettings_test", args=[record_b.pk])
    assert client.post(url, {**BASE, "prompt": "x", "tool": json.dumps(WEATHER)}).status_code == 404
    assert upstream.requests == []


def test_a_thinking_budget_shows_the_models_signed_thinking(client, two_sites, upstream):  # noqa: F811
    _, record = two_sites
    client.force_login(site_admin_for(record.site))
    thinker = {"model": "claude-sonnet-4", "max_tokens": 2048, "temperature": 1, "thinking_budget": 1024}
    html = post(client, record, prompt="Name a bakery", **thinker)
    assert '<div id="result-thinking">' in html and "Emulated thinking before answering" in html
    assert "Signed by the vendor." in html and '<pre id="answer"' in html
    assert upstream.requests[-1].json["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert_no_key(html)
    before = len(upstream.requests)
    assert "Extended thinking takes temperature 1" in post(
        client, record, prompt="Hi", **{**thinker, "temperature": 0.5}
    )
    assert "Keep the thinking budget below max tokens (1,024)" in post(
        client, record, prompt="Hi", **{**thinker, "max_tokens": 1024}
    )
    assert "A thinking budget is at least 1,024 tokens" in post(
        client, record, prompt="Hi", **{**thinker, "thinking_budget": 100}
    )
    refused = post(client, record, prompt="Hi", **{**thinker, "model": "claude-3-5-haiku"})
    assert "does not support reasoning (extended thinking)" in refused and "<code>not_supported</code>" in refused
    assert len(upstream.requests) == before  # the form's checks and the capability table send nothing
