"""Issue 3: per-site settings in the admin — write-only encrypted keys, live test, key check, tenancy."""

from __future__ import annotations

import json
import logging
import re
from io import StringIO

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from integrations import labels
from integrations.ai.gateway.factory import ProviderFactory
from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.models import AIProviderSettings

from .factories import (
    AIProviderSettingsFactory,
    ModelMappingFactory,
    SiteFactory,
    SiteMembershipFactory,
    SuperUserFactory,
    UserFactory,
)
from .settings_forms import settings_form_data, stored

OR_KEY = "sk-or-v1-" + "0123456789abcdef" * 3
OAI_KEY = "sk-proj-" + "fedcba9876543210" * 3
ANT_KEY = "sk-ant-api03-" + "a1b2c3d4e5f60718" * 3
ALL_KEYS = (OR_KEY, OAI_KEY, ANT_KEY)

pytestmark = pytest.mark.django_db


def site_admin_for(site):
    from django.contrib.auth.models import Permission

    user = UserFactory()
    SiteMembershipFactory(user=user, site=site)
    codenames = [
        "view_aiprovidersettings",
        "change_aiprovidersettings",
        "add_aiprovidersettings",
        "view_modelmapping",
        "add_modelmapping",
        "change_modelmapping",
        "delete_modelmapping",
        "view_aiusage",
    ]
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def two_sites(upstream):
    site_a = SiteFactory(domain="a.example.test")
    site_b = SiteFactory(domain="b.example.test")
    record_a = AIProviderSettingsFactory(
        site=site_a,
        provider_type="openrouter",
        openrouter_api_key=OR_KEY,
        openrouter_base_url=upstream.openrouter_base_url,
        openrouter_http_referer="https://a.example.test",
        openrouter_app_name="Site A",
    )
    record_b = AIProviderSettingsFactory(
        site=site_b,
        provider_type="anthropic",
        anthropic_api_key=ANT_KEY,
        anthropic_base_url=upstream.anthropic_base_url,
        openai_api_key=OAI_KEY,
        openai_base_url=upstream.openai_base_url,
    )
    return record_a, record_b


def assert_no_key(text: str) -> None:
    for key in ALL_KEYS:
        assert key not in text
        assert key[8:] not in text  # nor most of it


class TestEncryption:
    def test_key_round_trips_and_the_column_holds_no_plaintext(self, two_sites):
        record_a, _ = two_sites
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT api_key FROM integrations_providercredential WHERE settings_id = %s AND name = %s",
                [record_a.pk, "openrouter"],
            )
            (raw,) = cursor.fetchone()
        assert raw and OR_KEY not in raw and raw.startswith("gAAAA")  # a Fernet token
        assert AIProviderSettings.objects.get(pk=record_a.pk).api_key("openrouter") == OR_KEY

    def test_repr_and_str_hide_keys(self, two_sites):
        for record in two_sites:
            assert_no_key(repr(record) + str(record) + repr(ProviderFactory.create_provider(site=record.site)))
        assert "keys_set=openrouter" in repr(two_sites[0])

    def test_dumpdata_exports_ciphertext_only_and_loads_back(self, two_sites):
        out = StringIO()
        call_command("dumpdata", "integrations.aiprovidersettings", "integrations.providercredential", stdout=out)
        assert_no_key(out.getvalue())
        rows = json.loads(out.getvalue())
        AIProviderSettings.objects.all().delete()
        fixture = StringIO(json.dumps(rows))
        fixture.name = "x.json"
        from django.core import serializers

        for obj in serializers.deserialize("json", fixture.getvalue()):
            obj.save()
        assert AIProviderSettings.objects.get(site__domain="a.example.test").api_key("openrouter") == OR_KEY


class TestPerSiteResolution:
    def test_each_site_reaches_the_upstream_with_its_own_key_and_headers(self, two_sites, upstream):
        record_a, record_b = two_sites
        a = AIService(site=record_a.site).generate_content("from site A")
        b = AIService(site=record_b.site).generate_content("from site B")
        assert (a.provider, b.provider) == ("openrouter", "anthropic")
        req_a, req_b = upstream.requests
        assert req_a.flavor == "openrouter" and req_a.headers["authorization"] == f"Bearer {OR_KEY}"
        assert req_a.headers["http-referer"] == "https://a.example.test"
        assert req_a.headers["x-title"] == "Site A"
        assert req_b.flavor == "anthropic" and req_b.headers["x-api-key"] == ANT_KEY
        assert ProviderFactory.resolve(site=record_a.site).source == "site"

    def test_a_site_never_uses_another_sites_key(self, two_sites, ai_settings):
        _, _record_b = two_sites
        site_c = SiteFactory(domain="c.example.test")
        from integrations.ai.providers.errors import ProviderNotConfigured

        with pytest.raises(ProviderNotConfigured):
            ProviderFactory.create_provider("anthropic", site_c)  # B has an Anthropic key; C must not get it
        with pytest.raises(ProviderNotConfigured):
            ProviderFactory.create_provider(site=site_c)

    def test_disabled_record_falls_back_to_settings(self, two_sites, ai_settings, upstream):
        record_a, _ = two_sites
        ai_settings.OPENAI_API_KEY = OAI_KEY
        record_a.enabled = False
        record_a.save()
        resolution = ProviderFactory.resolve(site=record_a.site)
        assert (resolution.provider_type, resolution.source) == ("openai", "auto")

    def test_a_sites_base_url_is_never_used_with_the_deployment_key(self, ai_settings, upstream):
        ai_settings.OPENAI_API_KEY = OAI_KEY
        record = AIProviderSettingsFactory(provider_type="openai", openai_base_url="https://attacker.example/v1")
        provider = ProviderFactory.create_provider(site=record.site)
        assert provider.config.api_key == OAI_KEY
        assert provider.config.base_url == upstream.openai_base_url


class TestWriteOnlyKeys:
    def test_change_form_never_renders_a_key(self, client, two_sites):
        record_a, _ = two_sites
        client.force_login(SuperUserFactory())
        html = client.get(reverse("admin:integrations_aiprovidersettings_change", args=[record_a.pk])).content.decode()
        assert_no_key(html)
        assert "A key is set, ending ••••" + OR_KEY[-4:] in html
        assert re.search(r'name="credentials-\d+-new_api_key"', html) and 'type="password"' in html
        changelist = client.get(reverse("admin:integrations_aiprovidersettings_changelist")).content.decode()
        assert_no_key(changelist)
        assert OR_KEY[-4:] in changelist

    def form_data(self, record, **changes):
        return settings_form_data(record, **changes)

    def test_replace_keep_and_clear(self, client, two_sites):
        record_a, _ = two_sites
        client.force_login(SuperUserFactory())
        url = reverse("admin:integrations_aiprovidersettings_change", args=[record_a.pk])
        new_key = "sk-or-v1-" + "9" * 48
        response = client.post(url, self.form_data(record_a, new_openrouter_api_key=new_key))
        assert response.status_code == 302
        assert stored(record_a, "openrouter", "api_key") == new_key
        client.post(url, self.form_data(record_a))  # empty field keeps the key
        assert stored(record_a, "openrouter", "api_key") == new_key
        client.post(url, self.form_data(record_a, clear_openrouter_api_key="on"))
        assert stored(record_a, "openrouter", "api_key") == ""

    def test_error_reports_hide_every_credential_key_being_typed(self, client, two_sites):
        """The inline's key fields are numbered; each is a sensitive POST parameter for Django's reporter."""
        from django.views.debug import SafeExceptionReporterFilter

        record_a, _ = two_sites
        client.force_login(SuperUserFactory())
        url = reverse("admin:integrations_aiprovidersettings_change", args=[record_a.pk])
        typed = "sk-proj-" + "5" * 48
        data = self.form_data(
            record_a, new_openrouter_api_key="", new_openai_api_key=typed, new_alert_webhook_secret="whsec-" + "4" * 20
        )
        request = client.post(url, data).wsgi_request
        cleansed = SafeExceptionReporterFilter().get_post_parameters(request)
        key_fields = [name for name in data if name.endswith("new_api_key")]
        assert len(key_fields) == 2  # the stored OpenRouter row and the new OpenAI row
        for name in (*key_fields, "new_alert_webhook_secret"):
            assert cleansed[name] == "********************", name
        assert typed not in repr(dict(cleansed))

    def test_invalid_form_echoes_no_key_and_saves_nothing(self, client, two_sites):
        record_a, _ = two_sites
        client.force_login(SuperUserFactory())
        url = reverse("admin:integrations_aiprovidersettings_change", args=[record_a.pk])
        typed = "sk-or-v1-" + "7" * 48
        response = client.post(
            url,
            self.form_data(
                record_a,
                new_openrouter_api_key=typed,
                clear_openrouter_api_key="on",
                fallback_chain=[{"provider": "x"}],
            ),
        )
        assert response.status_code == 200
        html = response.content.decode()
        assert typed not in html
        assert "Either enter a new key or remove the key" in html
        assert "Entry 1 needs a provider" in html
        record_a.refresh_from_db()
        assert record_a.api_key("openrouter") == OR_KEY and record_a.fallback_chain == []


class TestLiveTestScreen:
    def url(self, record):
        return reverse("admin:integrations_aiprovidersettings_test", args=[record.pk])

    def test_runs_the_prompt_and_shows_answer_model_latency_tokens_cost(self, client, two_sites, upstream):
        record_a, _ = two_sites
        client.force_login(site_admin_for(record_a.site))
        page = client.get(self.url(record_a)).content.decode()
        assert "anthropic/claude-3.5-sonnet (OpenRouter)" in page  # catalogue models offered
        assert "claude-3-5-sonnet" in page  # mapping names offered
        response = client.post(
            self.url(record_a),
            {
                "provider": "",
                "model": "claude-3-5-sonnet",
                "prompt": "Name a bakery",
                "max_tokens": 50,
                "temperature": 0.5,
            },
        )
        html = response.content.decode()
        assert "Emulated openrouter reply (anthropic/claude-3.5-sonnet): Name a bakery" in html
        assert '<td id="result-model">anthropic/claude-3.5-sonnet</td>' in html
        assert "3 prompt + 7 completion = 10" in html
        assert " ms (1 attempt)" in html
        assert "$0.000114" in html  # 3 x $3/M + 7 x $15/M, reported by OpenRouter
        assert upstream.requests[-1].json["model"] == "anthropic/claude-3.5-sonnet"
        assert upstream.requests[-1].headers["authorization"] == f"Bearer {OR_KEY}"
        assert_no_key(html)

    @pytest.mark.parametrize(
        ("script", "code"),
        [
            ({"status": 401}, "authentication_failed"),
            ({"status": 402}, "insufficient_credits"),
            ({"status": 429, "headers": {"Retry-After": "60"}}, "rate_limited"),
        ],
    )
    def test_shows_clear_errors(self, client, two_sites, upstream, settings, script, code):
        settings.AI_MAX_RETRIES = 0
        record_a, _ = two_sites
        upstream.script(flavor="openrouter", **script)
        client.force_login(SuperUserFactory())
        html = client.post(
            self.url(record_a),
            {
                "provider": "openrouter",
                "model": "",
                "prompt": "hi",
                "max_tokens": 10,
                "temperature": 0.5,
            },
        ).content.decode()
        assert f"{labels.error_label(code)}: " in html and f"<code>{code}</code>" in html  # words, then the code
        assert_no_key(html)

    def test_unknown_model_is_a_clear_error(self, client, two_sites, upstream):
        _, record_b = two_sites
        client.force_login(SuperUserFactory())
        html = client.post(
            self.url(record_b),
            {
                "provider": "anthropic",
                "model": "gpt-4o",
                "prompt": "hi",
                "max_tokens": 10,
                "temperature": 0.5,
            },
        ).content.decode()
        assert "Model not found: " in html and "<code>model_not_found</code>" in html and "cannot serve it" in html
        assert upstream.requests == []

    def test_streaming_variant_sends_deltas_then_totals(self, client, two_sites, upstream):
        record_a, _ = two_sites
        client.force_login(SuperUserFactory())
        url = reverse("admin:integrations_aiprovidersettings_test_stream", args=[record_a.pk])
        assert client.get(url).status_code == 405
        response = client.post(
            url, {"provider": "", "model": "", "prompt": "Stream me a line", "max_tokens": 50, "temperature": 0.5}
        )
        assert response["Content-Type"] == "text/event-stream"
        events = [
            json.loads(chunk.decode()[6:]) for chunk in b"".join(response.streaming_content).split(b"\n\n") if chunk
        ]
        deltas = [e["delta"] for e in events if "delta" in e]
        assert len(deltas) > 3 and "".join(deltas).endswith("Stream me a line")
        assert events[-1]["done"] and events[-1]["total_tokens"] > 0 and events[-1]["cost"]
        assert upstream.requests[-1].json["stream"] is True

    def test_under_asgi_the_streaming_variant_streams_from_the_async_driver(self, async_client, two_sites, upstream):
        record_a, _ = two_sites
        async_client.force_login(SuperUserFactory())
        url = reverse("admin:integrations_aiprovidersettings_test_stream", args=[record_a.pk])
        form = {"provider": "", "model": "", "prompt": "Stream me a line", "max_tokens": 50, "temperature": 0.5}

        async def post() -> tuple:
            response = await async_client.post(url, form)
            return response, b"".join([chunk async for chunk in response.streaming_content])

        response, body = async_to_sync(post)()
        assert response.is_async  # an async iterator: on an event loop the stream holds no worker thread
        events = [json.loads(chunk.decode()[6:]) for chunk in body.split(b"\n\n") if chunk]
        deltas = [e["delta"] for e in events if "delta" in e]
        assert len(deltas) > 3 and "".join(deltas).endswith("Stream me a line")
        assert events[-1]["done"] and events[-1]["total_tokens"] > 0


class TestCheckKey:
    def url(self, record, provider):
        return reverse("admin:integrations_aiprovidersettings_check_key", args=[record.pk, provider])

    def test_openrouter_key_reports_credit(self, client, two_sites, upstream):
        record_a, _ = two_sites
        client.force_login(SuperUserFactory())
        response = client.post(self.url(record_a, "openrouter"), follow=True)
        text = response.content.decode()
        assert "OpenRouter key works: used $0.0000, limit $10.00, remaining $10.0000." in text
        assert upstream.requests[-1].path == "/openrouter/api/v1/key"
        assert_no_key(text)

    def test_direct_provider_key_lists_models(self, client, two_sites, upstream):
        _, record_b = two_sites
        client.force_login(SuperUserFactory())
        text = client.post(self.url(record_b, "anthropic"), follow=True).content.decode()
        from integrations.ai.testing.upstream import ANTHROPIC_MODELS, OPENAI_MODELS

        assert f"Anthropic key works: {len(ANTHROPIC_MODELS)} models visible." in text  # the emulator's list
        text = client.post(self.url(record_b, "openai"), follow=True).content.decode()
        assert f"OpenAI key works: {len(OPENAI_MODELS)} models visible." in text  # the emulator's list

    def test_bad_key_is_reported_without_the_key(self, client, upstream, caplog):
        bad = "sk-proj-invalid-" + "5" * 40
        record = AIProviderSettingsFactory(
            provider_type="openai", openai_api_key=bad, openai_base_url=upstream.openai_base_url
        )
        client.force_login(SuperUserFactory())
        with caplog.at_level(logging.DEBUG):
            text = client.post(self.url(record, "openai"), follow=True).content.decode()
            from integrations.ai.providers.errors import AuthenticationFailed

            with pytest.raises(AuthenticationFailed) as caught:
                AIService(site=record.site).generate_content("hello")
        assert "OpenAI key check failed (authentication_failed)" in text
        for blob in (text, caplog.text, str(caught.value), repr(caught.value)):
            assert bad not in blob and bad[-12:] not in blob

    def test_get_is_not_allowed(self, client, two_sites):
        client.force_login(SuperUserFactory())
        assert client.get(self.url(two_sites[0], "openrouter")).status_code == 405


class TestTenancy:
    def test_site_admin_sees_only_their_sites(self, client, two_sites):
        record_a, record_b = two_sites
        client.force_login(site_admin_for(record_a.site))
        changelist = client.get(reverse("admin:integrations_aiprovidersettings_changelist")).content.decode()
        assert "a.example.test" in changelist and "b.example.test" not in changelist  # rows and filters
        for name, args in [("change", [record_b.pk]), ("test", [record_b.pk])]:
            url = reverse(f"admin:integrations_aiprovidersettings_{name}", args=args)
            assert client.get(url).status_code in (302, 404)
        assert client.get(reverse("admin:integrations_aiprovidersettings_test", args=[record_b.pk])).status_code == 404
        assert (
            client.post(
                reverse("admin:integrations_aiprovidersettings_check_key", args=[record_b.pk, "anthropic"])
            ).status_code
            == 404
        )

    def test_site_admin_cannot_move_a_record_to_another_site(self, client, two_sites):
        record_a, _record_b = two_sites
        client.force_login(site_admin_for(record_a.site))
        add = client.get(reverse("admin:integrations_aiprovidersettings_add")).content.decode()
        assert "a.example.test" in add and "b.example.test" not in add

    def test_mappings_global_rows_visible_read_only(self, client, two_sites):
        record_a, record_b = two_sites
        shared = ModelMappingFactory(logical_name="shared-model", provider="openai", provider_model_id="gpt-4o")
        own = ModelMappingFactory(
            site=record_a.site, logical_name="a-model", provider="openai", provider_model_id="gpt-4o-mini"
        )
        other = ModelMappingFactory(
            site=record_b.site, logical_name="b-model", provider="openai", provider_model_id="gpt-4.1"
        )
        client.force_login(site_admin_for(record_a.site))
        html = client.get(reverse("admin:integrations_modelmapping_changelist")).content.decode()
        assert "shared-model" in html and "a-model" in html and "b-model" not in html
        assert "b.example.test" not in html  # not even in the site filter
        change = reverse("admin:integrations_modelmapping_change", args=[shared.pk])
        page = client.get(change)
        assert page.status_code == 200 and 'name="logical_name"' not in page.content.decode()  # view only
        assert client.get(reverse("admin:integrations_modelmapping_change", args=[own.pk])).status_code == 200
        assert client.get(reverse("admin:integrations_modelmapping_change", args=[other.pk])).status_code == 302

    def test_superuser_sees_everything(self, client, two_sites):
        client.force_login(SuperUserFactory())
        html = client.get(reverse("admin:integrations_aiprovidersettings_changelist")).content.decode()
        assert "a.example.test" in html and "b.example.test" in html

    def test_usage_changelist_is_scoped(self, client, two_sites, upstream):
        record_a, record_b = two_sites
        AIService(site=record_a.site, service="svc-a").generate_content("a")
        AIService(site=record_b.site, service="svc-b").generate_content("b")
        usage.flush()
        client.force_login(site_admin_for(record_a.site))
        html = client.get(reverse("admin:integrations_aiusage_changelist")).content.decode()
        assert "svc-a" in html and "svc-b" not in html
        assert 'id="usage-totals"' in html


def test_usage_export_is_scoped_and_filterable(client, two_sites, upstream):
    record_a, record_b = two_sites
    AIService(site=record_a.site, service="svc-a").generate_content("a")
    AIService(site=record_b.site, service="svc-b").generate_content("b")
    usage.flush()
    client.force_login(site_admin_for(record_a.site))
    url = reverse("admin:integrations_aiusage_export")
    page = client.get(url)
    formats = {label.lower(): value for value, label in page.context["form"].fields["format"].choices}
    fields = ("site__domain", "service", "provider", "served_model", "total_tokens", "cost", "status")
    body = client.post(
        url, {"format": formats["csv"], "resource": "0", **{f"aiusageresource_{f}": "on" for f in fields}}
    ).content.decode()
    assert "svc-a" in body and "svc-b" not in body
    assert "a.example.test" in body and "openrouter" in body
    assert_no_key(body)
    filtered = client.get(reverse("admin:integrations_aiusage_changelist") + "?provider__exact=anthropic")
    assert filtered.context["usage_totals"]["rows"] == 0
