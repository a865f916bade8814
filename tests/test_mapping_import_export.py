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
        HEADER + ",house-fast,openrouter,mistralai/mistral-large,1\nshop.example.test,house-fast,openai,gpt-4o-mini,1\n"
    )
    response = import_file(client, content)
    assert response.status_code == 200 and response.context["confirm_form"] is not None
    confirm(client, response)
    assert set(ModelMapping.objects.values_list("logical_name", "provider", "provider_model_id")) == {
        ("house-fast", "openrouter", "mistralai/mistral-large"),
        ("house-fast", "openai", "gpt-4o-mini"),
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
    assert "integrations/import_inline_errors.css" in html  # the errors show in the table, not only on hover
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
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_modelmapping", "add_modelmapping", "change_modelmapping"])
    )
    client.force_login(user)
    html = import_file(
        client,
        HEADER + "mine.example.test,a,openai,gpt-4o,1\ntheirs.example.test,b,openai,gpt-4o,1\n,c,openai,gpt-4o,1\n",
    ).content.decode()
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
    response = client.post(
        url,
        {
            "format": formats[fmt_name],
            "resource": "0",
            **{
                f"modelmappingresource_{f}": "on"
                for f in ("site", "logical_name", "provider", "provider_model_id", "is_active")
            },
        },
    )
    body = response.content.decode()
    assert "exp-model" in body and "exp.example.test" in body
    assert "sk-proj-" not in body
    if fmt_name == "json":
        assert json.loads(body)[0]["logical_name"] == "exp-model"


def invalid_rows(response) -> dict[int, str]:
    """Row number (header excluded) -> all its error texts, from the admin's import result."""
    result = response.context["result"]
    return {
        row.number: " ".join(str(m) for messages in row.error_dict.values() for m in messages)
        for row in result.invalid_rows
    }


@pytest.mark.parametrize("value", ["maybe", "2", "nope", "tru", "on"])
def test_a_boolean_that_is_not_one_is_a_row_error_naming_it(client, value):
    client.force_login(SuperUserFactory())
    response = import_file(client, HEADER + ",good,openai,gpt-4o,1\n" + f",vague,openai,gpt-4o-mini,{value}\n")
    assert response.context.get("confirm_form") is None
    errors = invalid_rows(response)
    assert set(errors) == {2}
    assert f"'{value}'" in errors[2] and "is_active" in errors[2]
    assert "true/false/1/0/yes/no" in errors[2]
    assert "must be one of true/false/1/0/yes/no" in response.content.decode()
    assert not ModelMapping.objects.exists()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("TRUE", True),
        ("yes", True),
        ("Yes", True),
        ("1", True),
        ("false", False),
        ("No", False),
        ("0", False),
        (" no ", False),
    ],
)
def test_the_boolean_spellings_import(client, value, expected):
    client.force_login(SuperUserFactory())
    confirm(client, import_file(client, HEADER + f",m,openai,gpt-4o,{value}\n"))
    assert ModelMapping.objects.get().is_active is expected


def test_json_booleans_are_strict_too(client):
    client.force_login(SuperUserFactory())
    row = {"site": "", "provider": "openai", "provider_model_id": "gpt-4o"}
    rows = [{**row, "logical_name": "a", "is_active": False}, {**row, "logical_name": "b", "is_active": "maybe"}]
    page = client.get(reverse("admin:integrations_modelmapping_import"))
    formats = {label.lower(): value for value, label in page.context["form"].fields["format"].choices}
    response = import_file(client, json.dumps(rows), name="mappings.json", fmt=formats["json"])
    assert set(invalid_rows(response)) == {2} and "'maybe'" in invalid_rows(response)[2]
    assert not ModelMapping.objects.exists()


def test_two_rows_for_the_same_key_are_a_row_error_naming_both(client):
    SiteFactory(domain="shop.example.test")
    client.force_login(SuperUserFactory())
    content = (
        HEADER
        + "shop.example.test,house-fast,openai,gpt-4o-mini,1\n"
        + ",house-fast,openai,gpt-4o,1\n"  # global: a different key
        + "shop.example.test,house-fast,anthropic,claude-3-5-haiku,1\n"  # another provider: a different key
        + "shop.example.test,house-fast,openai,gpt-4o,1\n"  # the same key as row 1
    )
    response = import_file(client, content)
    assert response.context.get("confirm_form") is None
    errors = invalid_rows(response)
    assert set(errors) == {4}
    assert "row 1" in errors[4].lower() and "row 4" in errors[4].lower()
    assert "Row 4 repeats row 1" in response.content.decode()  # shown on the import screen
    assert "house-fast" in errors[4] and "openai" in errors[4]
    assert not ModelMapping.objects.exists()


def test_a_repeated_global_key_is_an_error_too(client):
    client.force_login(SuperUserFactory())
    response = import_file(client, HEADER + ",m,openai,gpt-4o,1\n,m,openai,gpt-4o-mini,0\n")
    assert set(invalid_rows(response)) == {2} and "row 1" in invalid_rows(response)[2].lower()
    assert not ModelMapping.objects.exists()


def test_updating_an_existing_mapping_once_is_still_fine(client):
    ModelMappingFactory(site=None, logical_name="m", provider="openai", provider_model_id="gpt-4o")
    client.force_login(SuperUserFactory())
    confirm(client, import_file(client, HEADER + ",m,openai,gpt-4o-mini,no\n"))
    mapping = ModelMapping.objects.get()
    assert (mapping.provider_model_id, mapping.is_active) == ("gpt-4o-mini", False)


def test_an_export_imports_back_unchanged(client):
    ModelMappingFactory(
        site=SiteFactory(domain="rt.example.test"),
        logical_name="m",
        provider="openai",
        provider_model_id="gpt-4o",
        is_active=False,
    )
    client.force_login(SuperUserFactory())
    url = reverse("admin:integrations_modelmapping_export")
    formats = {label.lower(): value for value, label in client.get(url).context["form"].fields["format"].choices}
    exported = client.post(
        url,
        {
            "format": formats["csv"],
            "resource": "0",
            **{
                f"modelmappingresource_{f}": "on"
                for f in ("site", "logical_name", "provider", "provider_model_id", "is_active")
            },
        },
    ).content.decode()
    response = import_file(client, exported)
    assert response.context["confirm_form"] is not None, invalid_rows(response)
    confirm(client, response)
    assert ModelMapping.objects.get().is_active is False
