"""Issue 13 (3): the settings' JSON columns are edited as form fields, not JSON textareas.

The columns keep their JSON; the page posts rows, checkboxes and plain text, and what they save is
exactly what the old JSON textareas saved. Bad values get an error on the field naming the problem,
and nothing is saved.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from integrations.models import AIProviderSettings

from .factories import AIProviderSettingsFactory, SiteFactory, SiteMembershipFactory, UserFactory
from .settings_forms import settings_form_data
from .test_admin_settings import OR_KEY, site_admin_for

pytestmark = pytest.mark.django_db

STORED = {
    "fallback_chain": [{"provider": "anthropic", "model": "claude-3-5-haiku"}, {"provider": "openai", "model": ""}],
    "openrouter_fallback_models": ["anthropic/claude-3.5-haiku", "openai/gpt-4o-mini"],
    "openrouter_routing": {
        "order": ["anthropic", "openai"],
        "allow_fallbacks": False,
        "sort": "price",
        "data_collection": "deny",
        "only": ["anthropic", "openai", "together"],
        "ignore": ["deepinfra"],
        "require_parameters": True,
    },
    "allowed_providers": ["openrouter", "anthropic", "openai"],
    "allowed_models": ["gpt-4o-mini", "claude-3-5-haiku*", "*/llama-*"],
    "service_budgets": {"pages.meta": "5.00", "pages.blocks": "20"},
    "alert_thresholds": [50, 80, 100],
}


@pytest.fixture
def record(upstream):
    site = SiteFactory(domain="bakery.example.test", name="Bakery")
    return AIProviderSettingsFactory(
        site=site,
        provider_type="openrouter",
        openrouter_api_key=OR_KEY,
        openrouter_base_url=upstream.openrouter_base_url,
    )


def change_url(record: AIProviderSettings) -> str:
    return reverse("admin:integrations_aiprovidersettings_change", args=[record.pk])


def typed_fields() -> dict[str, object]:
    """What a person types into the structured fields for STORED (rows out of index order, spare rows)."""
    return {
        "fallback_chain": "rows",
        "fallback_chain-0-provider": "openai",
        "fallback_chain-0-model": "",
        "fallback_chain-0-order": "2",
        "fallback_chain-1-provider": "",
        "fallback_chain-1-model": "",
        "fallback_chain-1-order": "3",  # spare
        "fallback_chain-2-provider": "anthropic",
        "fallback_chain-2-model": " claude-3-5-haiku ",
        "fallback_chain-2-order": "1",
        "openrouter_fallback_models": "anthropic/claude-3.5-haiku\r\n\r\n  openai/gpt-4o-mini\r\n",
        "openrouter_routing_order": "anthropic, openai",
        "openrouter_routing_sort": "price",
        "openrouter_routing_data_collection": "deny",
        "openrouter_routing_only": "anthropic,openai , together",
        "openrouter_routing_ignore": "deepinfra",
        "openrouter_routing_require_parameters": "on",
        # allow_fallbacks unticked: not posted at all, as a browser does
        "allowed_providers": ["openrouter", "anthropic", "openai"],
        "allowed_models": "gpt-4o-mini\nclaude-3-5-haiku*\n*/llama-*",
        "service_budgets": "rows",
        "service_budgets-0-service": "pages.meta",
        "service_budgets-0-amount": "5.00",
        "service_budgets-1-service": "",
        "service_budgets-1-amount": "",
        "service_budgets-2-service": "pages.blocks",
        "service_budgets-2-amount": "20",
        "alert_thresholds": "50, 80,100",
    }


def post(client, record, fields: dict[str, object]):
    data = settings_form_data(record)
    for name in list(data):  # the structured fields are replaced wholesale by `fields`
        if name.split("-")[0].split("_routing_")[0] in {*STORED, "openrouter"} and not name.startswith("credentials"):
            del data[name]
    data.update(fields)
    return client.post(change_url(record), data)


def test_typed_fields_save_the_json_the_textareas_saved(client, record):
    client.force_login(site_admin_for(record.site))
    response = post(client, record, typed_fields())
    assert response.status_code == 302, response.context["adminform"].form.errors
    record.refresh_from_db()
    assert {name: getattr(record, name) for name in STORED} == STORED


def test_the_page_shows_stored_values_in_fields_and_saves_them_back_unchanged(client, record):
    AIProviderSettings.objects.filter(pk=record.pk).update(**STORED)
    record.refresh_from_db()
    client.force_login(site_admin_for(record.site))
    html = client.get(change_url(record)).content.decode()
    textareas = re.findall(r"<textarea[^>]*>\s*(.*?)</textarea>", html, re.S)
    assert textareas and not [t for t in textareas if t.lstrip().startswith(("[", "{", "&quot;"))]
    assert re.search(
        r'name="fallback_chain-0-provider".*?<option value="anthropic" selected>Anthropic</option>', html, re.S
    )
    assert re.search(r'name="fallback_chain-1-model" id="id_fallback_chain_1_model" value=""', html)
    assert 'name="fallback_chain-0-order" value="1"' in html
    assert '<option value="gpt-4o-mini">' in html  # the site's mapped model names, offered as a datalist
    assert 'name="openrouter_routing_order" id="id_openrouter_routing_order" value="anthropic, openai"' in html
    assert '<option value="price" selected>' in html
    assert re.search(r'name="openrouter_routing_allow_fallbacks"[^>]*>', html)[0].find("checked") == -1
    assert 'value="50, 80, 100"' in html
    assert 'name="service_budgets-1-service" id="id_service_budgets_1_service" value="pages.blocks"' in html
    assert "Bakery (bakery.example.test)" in html  # the site by name, in the select and the title

    response = client.post(change_url(record), settings_form_data(record))  # what the page posts back
    assert response.status_code == 302
    record.refresh_from_db()
    assert {name: getattr(record, name) for name in STORED} == STORED


BAD = [
    (
        {"fallback_chain-0-provider": "", "fallback_chain-0-model": "gpt-4o"},
        "fallback_chain",
        "Row 1 (model gpt-4o): choose a provider",
    ),
    ({"fallback_chain-0-order": "first"}, "fallback_chain", "the order “first” is not a whole number"),
    ({"fallback_chain-0-provider": "acme"}, "fallback_chain", "Entry 2 needs a provider, one of openrouter"),
    (
        {"openrouter_fallback_models": "anthropic/claude-3.5-haiku\ngpt-4o"},
        "openrouter_fallback_models",
        "Line 2 (“gpt-4o”) is not a vendor/model id",
    ),
    (
        {"openrouter_fallback_models": '["anthropic/claude-3.5-haiku"]'},
        "openrouter_fallback_models",
        "without quotes, brackets",
    ),
    (
        {"openrouter_routing_order": "anthropic, {openai}"},
        "openrouter_routing",
        "Provider order: “{openai}” is not a provider name",
    ),
    ({"openrouter_routing_sort": "fastest"}, "openrouter_routing", "Sort: “fastest” is not price"),
    ({"openrouter_routing_data_collection": "maybe"}, "openrouter_routing", "“maybe” is not allow or deny"),
    ({"allowed_providers": ["openrouter", "acme"]}, "allowed_providers", "A list of providers among: openrouter"),
    ({"allowed_models": "gpt-4o-mini, claude-*"}, "allowed_models", "Line 1 (“gpt-4o-mini, claude-*”)"),
    ({"service_budgets-0-amount": "five"}, "service_budgets", "Row 1 (pages.meta): “five” is not an amount"),
    ({"service_budgets-0-amount": "-1"}, "service_budgets", "Row 1 (pages.meta): the cap cannot be negative"),
    ({"service_budgets-0-service": ""}, "service_budgets", "Row 1: name the service the 5.00 USD cap is for"),
    ({"service_budgets-2-service": "pages.meta"}, "service_budgets", "pages.meta has two rows"),
    ({"alert_thresholds": "50, eighty"}, "alert_thresholds", "“eighty” is not a whole percentage"),
    ({"alert_thresholds": "50, 0"}, "alert_thresholds", "0% is out of range"),
]


@pytest.mark.parametrize(("change", "field", "message"), BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_values_are_refused_on_their_field_and_nothing_is_saved(client, record, change, field, message):
    client.force_login(site_admin_for(record.site))
    before = {name: getattr(record, name) for name in STORED}
    response = post(client, record, {**typed_fields(), **change, "monthly_budget": "99"})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field], errors
    assert message in " ".join(errors[field]), errors[field]
    assert message.split("“")[0] in response.content.decode()  # shown on the page, next to the field
    record.refresh_from_db()
    assert {name: getattr(record, name) for name in STORED} == before and record.monthly_budget is None


def test_a_view_only_site_admin_reads_the_settings_not_json(client, record):
    AIProviderSettings.objects.filter(pk=record.pk).update(**STORED)
    user = UserFactory()
    SiteMembershipFactory(user=user, site=record.site)
    user.user_permissions.set(Permission.objects.filter(codename="view_aiprovidersettings"))
    client.force_login(user)
    html = client.get(change_url(record)).content.decode()
    assert "<li>Anthropic — claude-3-5-haiku</li><li>OpenAI — provider default</li>" in html
    assert "<tr><th>Sort</th><td>price</td></tr>" in html and "<tr><th>Allow fallbacks</th><td>no</td></tr>" in html
    assert "<tr><th>pages.meta</th><td>$5.00 a month</td></tr>" in html
    assert "50%, 80%, 100%" in html
    assert "[{" not in html and "&quot;provider&quot;" not in html and '{"' not in html


def test_a_saved_run_shows_its_variables_as_a_table(client):
    from .factories_cms import PromptRunFactory, PromptTemplateFactory

    site = SiteFactory(domain="runs.example.test", name="Runs")
    run = PromptRunFactory(
        site=site,
        template=PromptTemplateFactory(site=site, name="Blurb"),
        variables={"product": "Rye <loaf>", "tone": "warm"},
    )
    user = UserFactory()
    SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_promptrun", "change_promptrun"]))
    client.force_login(user)
    html = client.get(reverse("admin:prompts_promptrun_change", args=[run.pk])).content.decode()
    assert "<tr><th>product</th><td>Rye &lt;loaf&gt;</td></tr><tr><th>tone</th><td>warm</td></tr>" in html
    assert "{&quot;" not in html and '{"product"' not in html
