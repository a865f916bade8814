"""Issue 10 (provider side): outbound URL policy, keys that can't escape through errors, text validation,
settings that follow every change. Each test replays what a hostile site admin did, through the admin or
the API, against real SDK clients and the loopback emulator."""

from __future__ import annotations

import socket
import sys

import pytest
from django.contrib.sites.models import Site
from django.urls import reverse
from django.views.debug import get_exception_reporter_class

from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.providers import errors
from integrations.ai.testing.upstream import Upstream
from integrations.models import AIProviderSettings, AIUsage

from .factories import AIProviderSettingsFactory, SiteFactory, SuperUserFactory
from .settings_forms import credential_errors, settings_form_data, stored
from .test_admin_settings import ANT_KEY, OAI_KEY, OR_KEY, site_admin_for

pytestmark = pytest.mark.django_db

DEPLOYMENT_KEY = "sk-or-v1-" + "deadbeefcafe0123" * 3
THROWAWAY = "sk-throwaway-" + "1234abcd" * 4


def form_data(record: AIProviderSettings, **changes: str) -> dict[str, object]:
    """The change page's POST; old column names (openai_base_url=…) go to the credentials inline."""
    return settings_form_data(record, **changes)


def run_test_screen(client, record, provider: str = "", prompt: str = "hi") -> str:
    response = client.post(
        reverse("admin:integrations_aiprovidersettings_test", args=[record.pk]),
        {
            "provider": provider,
            "model": "",
            "prompt": prompt,
            "max_tokens": 10,
            "temperature": 0.5,
        },
    )
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def other_server():
    """A second loopback service the deployment did NOT allowlist: stands for the server's own network."""
    server = Upstream().start()
    yield server
    server.stop()


class TestOutboundPolicy:
    @pytest.mark.parametrize(
        "url_of",
        [
            lambda s: f"{s.url}/anything?x=",  # the issue's attack: any port, path and query
            lambda s: s.openai_base_url,  # plain loopback http
            lambda s: "https://127.0.0.1/v1",  # loopback over https
            lambda s: "https://169.254.169.254/latest",  # cloud metadata (link-local)
            lambda s: "https://10.0.0.5/v1",  # private
            lambda s: "https://100.64.0.1/v1",  # shared (CGNAT)
            lambda s: "https://[::ffff:127.0.0.1]/v1",  # loopback in IPv6 clothing
            lambda s: "https://localhost/v1",
            lambda s: "https://api.example.com:8443/v1",  # public host, non-standard port
            lambda s: "http://api.example.com/v1",  # public host, plain http
        ],
    )
    def test_site_admin_cannot_save_a_url_outside_the_policy(self, client, upstream, other_server, url_of):
        record = AIProviderSettingsFactory(
            provider_type="openai", openai_api_key=OAI_KEY, openai_base_url=upstream.openai_base_url
        )
        client.force_login(site_admin_for(record.site))
        url = url_of(other_server)
        response = client.post(
            reverse("admin:integrations_aiprovidersettings_change", args=[record.pk]),
            form_data(record, openai_base_url=url, new_openai_api_key=THROWAWAY),
        )
        assert response.status_code == 200, "a refused URL is a form error, not a save"
        assert "base_url" in credential_errors(response)["openai"]
        record.refresh_from_db()
        assert stored(record, "openai", "base_url") == upstream.openai_base_url and record.api_key("openai") == OAI_KEY
        assert other_server.connections == 0

    def test_a_public_https_url_and_the_allowlisted_emulator_are_accepted(self, client, upstream):
        record = AIProviderSettingsFactory(provider_type="openai", openai_api_key=OAI_KEY)
        client.force_login(site_admin_for(record.site))
        change = reverse("admin:integrations_aiprovidersettings_change", args=[record.pk])
        for url in ("https://api.together.xyz/v1", upstream.openai_base_url):
            response = client.post(change, form_data(record, openai_base_url=url))
            assert response.status_code == 302, response.content.decode()[:2000]
            assert stored(record, "openai", "base_url") == url

    def test_a_row_saved_before_the_policy_is_refused_at_request_time_with_no_connection(
        self, client, upstream, other_server
    ):
        # e.g. written before this release, or by a script that skipped validation
        record = AIProviderSettingsFactory(
            provider_type="openai", openai_api_key=THROWAWAY, openai_base_url=f"{other_server.url}/anything?x="
        )
        client.force_login(site_admin_for(record.site))
        html = run_test_screen(client, record)
        assert "url_not_allowed" in html
        with pytest.raises(errors.URLNotAllowed):
            AIService(site=record.site).generate_content("hi")
        check = client.post(
            reverse("admin:integrations_aiprovidersettings_check_key", args=[record.pk, "openai"]), follow=True
        ).content.decode()
        assert "url_not_allowed" in check
        assert other_server.connections == 0 and other_server.requests == []
        usage.flush()
        assert not AIUsage.objects.filter(status="error", error_class="ProviderUnavailable").exists()

    def test_dns_rebinding_is_refused_at_connect_time(self, upstream, monkeypatch):
        """The name passes the static check (public-looking, https:443) but resolves to loopback when we connect."""
        record = AIProviderSettingsFactory(
            provider_type="openai", openai_api_key=THROWAWAY, openai_base_url="https://api.rebind.example/v1"
        )
        resolved: list[str] = []
        real = socket.getaddrinfo

        def fake_dns(host, *args, **kwargs):  # the network boundary: a DNS answer pointing home
            if host == "api.rebind.example":
                resolved.append(host)
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 443))]
            return real(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
        with pytest.raises(errors.URLNotAllowed) as caught:
            AIService(site=record.site).generate_content("hi")
        assert resolved == ["api.rebind.example"]  # checked when connecting, on the resolved address
        assert "private, loopback" in caught.value.message
        assert caught.value.code == "url_not_allowed"

    def test_closed_and_unreachable_ports_read_the_same(self, upstream, settings):
        settings.AI_MAX_RETRIES = 0
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
        probe.close()
        settings.AI_OUTBOUND_ALLOWLIST = [*settings.AI_OUTBOUND_ALLOWLIST, f"127.0.0.1:{closed_port}"]
        record = AIProviderSettingsFactory(
            provider_type="openai", openai_api_key=THROWAWAY, openai_base_url=f"http://127.0.0.1:{closed_port}/v1"
        )
        with pytest.raises(errors.ProviderUnavailable) as caught:
            AIService(site=record.site).generate_content("hi", failover=False)
        assert (
            caught.value.message == f"Could not reach http://127.0.0.1:{closed_port}/v1 (connection failed or "
            "was dropped)."
        )

    def test_a_non_json_error_body_is_never_echoed(self, upstream, settings):
        settings.AI_MAX_RETRIES = 0
        record = AIProviderSettingsFactory(
            provider_type="openai", openai_api_key=OAI_KEY, openai_base_url=upstream.openai_base_url
        )
        upstream.script(flavor="openai", status=500, body="<html>internal admin panel: db password hunter2</html>")
        with pytest.raises(errors.ProviderUnavailable) as caught:
            AIService(site=record.site).generate_content("hi", failover=False)
        assert "hunter2" not in str(caught.value) and "html" not in str(caught.value)

    def test_a_vendor_message_is_kept_but_truncated(self, upstream, settings):
        settings.AI_MAX_RETRIES = 0
        record = AIProviderSettingsFactory(
            provider_type="openai", openai_api_key=OAI_KEY, openai_base_url=upstream.openai_base_url
        )
        upstream.script(flavor="openai", status=400, body={"error": {"message": "bad parameter " + "x" * 5000}})
        with pytest.raises(errors.InvalidRequest) as caught:
            AIService(site=record.site).generate_content("hi")
        assert "Provider said: bad parameter" in caught.value.message
        assert len(caught.value.message) < 500


class TestKeysCannotEscape:
    def test_non_ascii_app_name_with_the_deployment_key_no_500_no_key_on_the_debug_page(
        self, client, ai_settings, upstream
    ):
        """The issue's path: the site's own key removed, app name `Café ☕ Panel`, DEBUG on."""
        ai_settings.OPENROUTER_API_KEY = DEPLOYMENT_KEY
        ai_settings.DEBUG = True
        record = AIProviderSettingsFactory(provider_type="openrouter", openrouter_app_name="Café ☕ Panel")
        client.force_login(site_admin_for(record.site))
        client.raise_request_exception = False
        html = run_test_screen(client, record)
        assert DEPLOYMENT_KEY not in html
        assert "Emulated openrouter reply" in html  # served, with a header-safe title
        assert upstream.requests[-1].headers["x-title"] == "Cafe Panel"
        check = client.post(
            reverse("admin:integrations_aiprovidersettings_check_key", args=[record.pk, "openrouter"]), follow=True
        )
        assert check.status_code == 200 and DEPLOYMENT_KEY not in check.content.decode()

    def test_the_admin_refuses_header_values_that_cannot_be_sent(self, client, upstream):
        record = AIProviderSettingsFactory(
            provider_type="openrouter", openrouter_api_key=OR_KEY, openrouter_base_url=upstream.openrouter_base_url
        )
        client.force_login(site_admin_for(record.site))
        change = reverse("admin:integrations_aiprovidersettings_change", args=[record.pk])
        response = client.post(change, form_data(record, openrouter_app_name="Café ☕ Panel"))
        assert response.status_code == 200 and "plain ASCII" in response.content.decode()
        response = client.post(change, form_data(record, openrouter_app_name="Cafe\r\nX-Injected: 1"))
        assert response.status_code == 200
        record.refresh_from_db()
        assert record.openrouter_app_name == ""

    def test_the_debug_page_scrubs_keys_from_every_frame(self, rf, settings, upstream):
        """Django's own reporter, with the project's filter, on a real traceback whose frames hold keys."""
        settings.DEBUG = True
        settings.OPENROUTER_API_KEY = DEPLOYMENT_KEY
        AIProviderSettingsFactory(provider_type="anthropic", anthropic_api_key=ANT_KEY)

        def vendor_call(api_key: str) -> None:
            headers = {"Authorization": f"Bearer {api_key}", "X-Title": "Panel"}  # noqa: F841 - shown by the page
            site_key = ANT_KEY  # noqa: F841
            harmless = "visible-local-value"  # noqa: F841
            raise RuntimeError(f"failed with {api_key}")

        try:
            vendor_call(DEPLOYMENT_KEY)
        except RuntimeError:
            exc_info = sys.exc_info()
        request = rf.get("/")
        reporter = get_exception_reporter_class(request)
        html = reporter(request, *exc_info).get_traceback_html()
        text = reporter(request, *exc_info).get_traceback_text()
        for page in (html, text):
            assert DEPLOYMENT_KEY not in page and ANT_KEY not in page
        assert "visible-local-value" in html  # the filter scrubs secrets, not everything
        assert "scrubbed: holds an API key" in html


class TestTextValidation:
    def test_lone_surrogates_never_reach_the_provider_nor_cool_it_down(self, client, upstream, settings):
        from integrations.models import APIToken
        from tests.factories import SiteMembershipFactory, UserFactory, may_use_ai

        site = Site.objects.get(domain="testserver")
        AIProviderSettingsFactory(
            site=site,
            provider_type="openrouter",
            openrouter_api_key=OR_KEY,
            openrouter_base_url=upstream.openrouter_base_url,
        )
        user = UserFactory()
        SiteMembershipFactory(user=user, site=site)
        may_use_ai(user)
        _, token = APIToken.issue(user, "t")
        auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
        for _ in range(4):  # more than AI_COOLDOWN_AFTER_FAILURES
            response = client.post(
                "/api/ai/generate/", '{"prompt": "hello \\ud800 world"}', content_type="application/json", **auth
            )
            assert response.status_code == 400
            assert response.json()["error"]["code"] == "invalid_request"
            assert "unpaired surrogate" in response.json()["error"]["message"]
        response = client.post(
            "/api/ai/generate/", '{"prompt": "nul \\u0000 byte"}', content_type="application/json", **auth
        )
        assert response.status_code == 400 and "NUL" in response.json()["error"]["message"]
        assert upstream.requests == []
        usage.flush()
        assert not AIUsage.objects.exists()  # nothing counted as a provider failure
        ok = client.post("/api/ai/generate/", '{"prompt": "hello world"}', content_type="application/json", **auth)
        assert ok.status_code == 200, ok.content  # no cooldown was triggered

    @pytest.mark.parametrize("where", ["system_prompt", "message"])
    def test_every_text_field_is_checked(self, upstream, where):
        record = AIProviderSettingsFactory(
            provider_type="openai", openai_api_key=OAI_KEY, openai_base_url=upstream.openai_base_url
        )
        service = AIService(site=record.site)
        with pytest.raises(errors.InvalidRequest):
            if where == "system_prompt":
                service.generate_content("fine", system_prompt="bad \udfff")
            else:
                service.complete([{"role": "user", "content": "ok"}, {"role": "assistant", "content": "\ud83d"}])
        assert upstream.requests == []


class TestSettingsFollowChanges:
    def test_a_long_lived_service_follows_a_provider_switch(self, upstream):
        record = AIProviderSettingsFactory(
            provider_type="openrouter",
            openrouter_api_key=OR_KEY,
            openrouter_base_url=upstream.openrouter_base_url,
            anthropic_api_key=ANT_KEY,
            anthropic_base_url=upstream.anthropic_base_url,
        )
        service = AIService(site=record.site)  # e.g. kept at module level
        assert service.generate_content("one").provider == "openrouter"
        record.provider_type = "anthropic"
        record.save()
        assert service.generate_content("two").provider == "anthropic"
        for row in record.credentials.all():
            row.api_key = ""
            row.save()
        with pytest.raises(errors.ProviderNotConfigured):
            service.generate_content("three")  # a removed key is not used again
        assert [r.flavor for r in upstream.requests] == ["openrouter", "anthropic"]

    def test_moving_a_record_to_another_site_stops_the_old_site_using_its_key(self, upstream):
        record = AIProviderSettingsFactory(
            provider_type="openai", openai_api_key=OAI_KEY, openai_base_url=upstream.openai_base_url
        )
        old_site, new_site = record.site, SiteFactory()
        assert AIService(site=old_site).generate_content("before").provider == "openai"
        record.site = new_site
        record.save()
        with pytest.raises(errors.ProviderNotConfigured):
            AIService(site=old_site).generate_content("after the move")
        assert AIService(site=new_site).generate_content("new home").provider == "openai"

    def test_deleting_a_record_stops_its_key(self, upstream):
        record = AIProviderSettingsFactory(
            provider_type="openai", openai_api_key=OAI_KEY, openai_base_url=upstream.openai_base_url
        )
        site = record.site
        AIService(site=site).generate_content("before")
        record.delete()
        with pytest.raises(errors.ProviderNotConfigured):
            AIService(site=site).generate_content("after")


def test_superuser_sees_the_same_policy(client, upstream, other_server):
    """The allowlist is a deployment setting: even a superuser's site record can't point at a loopback port."""
    record = AIProviderSettingsFactory(
        provider_type="openai", openai_api_key=OAI_KEY, openai_base_url=upstream.openai_base_url
    )
    client.force_login(SuperUserFactory())
    response = client.post(
        reverse("admin:integrations_aiprovidersettings_change", args=[record.pk]),
        form_data(record, openai_base_url=other_server.openai_base_url),
    )
    assert response.status_code == 200
    assert other_server.connections == 0
