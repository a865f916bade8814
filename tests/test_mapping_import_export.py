"""ModelMapping import/export through the admin (django-import-export), validated row by row."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from integrations.models import ModelMapping

from .factories import ModelMappingFactory, SiteFactory, SiteMembershipFactory, SuperUserFactory, UserFactory

pytestmark = pytest.mark.django_db

HEADER = "site,logical_name,provider,provider_model_id,is_active\n"


def import_file(client, content: str, name: str = "mappings.csv", fmt: str = "0"):
    url = reverse("admin:integrations_modelmapping_import")
    upload = SimpleUploadedFile(name, content.encode(), content_type="text/csv")
    return client.post(url, {"import_file": upload, "format": fmt, "resource": "0"})


def confirm(client, response):
    form = response.context["confirm_form"]
    data = {name: form.initial[name] for name in form.initial}
    return client.post(reverse("admin:integrations_modelmapping_process_import"), data)


def test_a_good_file_imports(client):
    SiteFactory(domain="shop.example.test")
    client.force_login(SuperUserFactory())
    content = (
        HEADER + ",house-fast,openrouter,mistralai/mistral-large,1\n"
        "shop.example.test,house-fast,openai,gpt-4o-mini,1\n"
    )
    response = import_file(client, content)
    assert response.status_code == 200 and response.context["confirm_form"] is not None
    confirm(client, response)
    assert set(ModelMapping.objects.values_list("logical_name", "provider", "provider_model_id")) == {
        ("house-fast", "openrouter", "mistralai/mistral-large"), ("house-fast", "openai", "gpt-4o-mini")
    }


def test_one_bad_row_saves_nothing_and_names_row_and_reason(client):
    client.force_login(SuperUserFactory())
    content = (
        HEADER
        + ",good-one,openai,gpt-4o,1\n"
        + ",bad-provider,cohere,command-r,1\n"
        + ",bad-id,openrouter,no-vendor-prefix,1\n"
    )
    response = import_file(client, content)
    html = response.content.decode()
    assert response.context.get("confirm_form") is None  # nothing to confirm: the file is refused
    invalid = {row.number: row.field_specific_errors for row in response.context["result"].invalid_rows}
    assert set(invalid) == {2, 3}  # the rows, numbered as in the file (header excluded)
    assert "Unknown provider 'cohere'" in " ".join(invalid[2]["provider"])
    assert "OpenRouter ids are vendor/model" in " ".join(invalid[3]["provider_model_id"])
    assert "Unknown provider &#x27;cohere&#x27;" in html and "OpenRouter ids are vendor/model" in html
    assert not ModelMapping.objects.exists()


def test_unknown_site_domain_is_a_row_error(client):
    client.force_login(SuperUserFactory())
    html = import_file(client, HEADER + "nowhere.example,x,openai,gpt-4o,1\n").content.decode()
    assert "No site with domain" in html and "nowhere.example" in html
    assert not ModelMapping.objects.exists()


def test_a_site_admin_may_import_only_for_their_sites(client):
    mine = SiteFactory(domain="mine.example.test")
    SiteFactory(domain="theirs.example.test")
    user = UserFactory()
    SiteMembershipFactory(user=user, site=mine)
    user.user_permissions.set(Permission.objects.filter(codename__in=[
        "view_modelmapping", "add_modelmapping", "change_modelmapping"]))
    client.force_login(user)
    html = import_file(client, HEADER + "mine.example.test,a,openai,gpt-4o,1\ntheirs.example.test,b,openai,gpt-4o,1\n"
                       ",c,openai,gpt-4o,1\n").content.decode()
    assert "You do not manage that site." in html
    assert "Only a superuser may import global mappings" in html
    assert not ModelMapping.objects.exists()


@pytest.mark.parametrize("fmt_name", ["csv", "json"])
def test_export_lists_mappings_and_nothing_secret(client, fmt_name):
    from .factories import AIProviderSettingsFactory

    site = SiteFactory(domain="exp.example.test")
    AIProviderSettingsFactory(site=site, openai_api_key="sk-proj-" + "e" * 48)
    ModelMappingFactory(site=site, logical_name="exp-model", provider="openai", provider_model_id="gpt-4o")
    client.force_login(SuperUserFactory())
    url = reverse("admin:integrations_modelmapping_export")
    page = client.get(url)
    formats = dict((label.lower(), value) for value, label in page.context["form"].fields["format"].choices)
    response = client.post(url, {"format": formats[fmt_name], "resource": "0",
                                 **{f"modelmappingresource_{f}": "on" for f in
                                    ("site", "logical_name", "provider", "provider_model_id", "is_active")}})
    body = response.content.decode()
    assert "exp-model" in body and "exp.example.test" in body
    assert "sk-proj-" not in body
    if fmt_name == "json":
        assert json.loads(body)[0]["logical_name"] == "exp-model"
