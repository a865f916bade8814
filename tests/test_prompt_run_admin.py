"""The prompt template "Run with AI" screen: saved runs keep their numbers (issue 13, deliverable 2),
need the permissions the action implies, and treat tampered save requests as form errors (issue 10).

Everything goes through the admin with the test client against the loopback emulator.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from integrations.ai.ledger import usage
from integrations.models import AIUsage
from prompts.models import PromptRun

from .factories import SiteFactory, SiteMembershipFactory, SuperUserFactory, UserFactory
from .factories_cms import PromptTemplateFactory

pytestmark = pytest.mark.django_db

RUN_PERMS = ("view_prompttemplate", "add_promptrun")


def staff(site=None, perms=RUN_PERMS):
    user = UserFactory()
    if site is not None:
        SiteMembershipFactory(user=user, site=site)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="prompts", codename__in=perms))
    return user


def run_url(template) -> str:
    return reverse("admin:prompts_prompttemplate_run", args=[template.pk])


def preview(client, template, site, **variables):
    data = {"product": "rye", "audience": "students", "site": site.pk, "model": "", **variables}
    response = client.post(run_url(template), data)
    assert response.status_code == 200
    assert 'id="save-form"' in response.content.decode(), response.content.decode()[:2000]
    return response


def token_of(response) -> str:
    return response.context["save_form"].initial["preview_token"]


@pytest.mark.parametrize("provider", ["openrouter", "openai", "anthropic"])
def test_saved_run_keeps_model_provider_tokens_cost_and_links_its_ledger_rows(
    client, emulated_site, upstream, provider
):
    site = emulated_site(provider)
    template = PromptTemplateFactory(site=site, default_model="")
    client.force_login(SuperUserFactory())

    response = preview(client, template, site)
    result = response.context["result"]
    html = response.content.decode()
    label = {"openrouter": "OpenRouter", "openai": "OpenAI", "anthropic": "Anthropic"}[provider]
    assert f"{label} · {result.model} · " in html and f"= {result.total_tokens} tokens" in html
    assert result.total_tokens > 0 and result.request_id
    usage.flush()
    ledger = AIUsage.objects.get(site=site, status=AIUsage.STATUS_OK)
    assert ledger.request_id == result.request_id

    saved = client.post(
        run_url(template),
        {
            "_save": "1",
            "output": "Rye, edited by hand.",
            "preview_token": token_of(response),
            # numbers a client might try to slip in are not read
            "total_tokens": "999999",
            "cost": "0",
            "model": "free-model",
            "site_id": "1",
        },
    )
    assert saved.status_code == 302
    run = PromptRun.objects.get()
    assert run.output == "Rye, edited by hand."
    assert (run.provider, run.model) == (provider, result.model) and run.model
    assert (run.prompt_tokens, run.completion_tokens, run.total_tokens) == (
        result.prompt_tokens,
        result.completion_tokens,
        result.total_tokens,
    )
    assert run.cost == ledger.cost
    assert run.request_id == result.request_id
    assert run.site == site and run.variables == {"product": "rye", "audience": "students"}

    page = client.get(saved["Location"])
    text = page.content.decode()
    assert "Output saved." in text and result.model in text
    usage_url = reverse("admin:integrations_aiusage_changelist") + f"?request_id={run.request_id}"
    assert usage_url in text.replace("&amp;", "&")
    usage_page = client.get(usage_url)
    assert usage_page.status_code == 200
    assert list(usage_page.context["cl"].result_list) == [ledger]


def test_openrouter_reported_cost_is_kept(client, emulated_site, upstream):
    site = emulated_site("openrouter")
    template = PromptTemplateFactory(site=site, default_model="")
    client.force_login(SuperUserFactory())
    response = preview(client, template, site)
    assert response.context["result"].cost is not None
    client.post(run_url(template), {"_save": "1", "output": "x", "preview_token": token_of(response)})
    run = PromptRun.objects.get()
    assert run.cost == response.context["result"].cost and run.cost > Decimal(0)


def test_a_preview_saves_once_and_only_for_its_template_and_session(client, emulated_site, upstream):
    site = emulated_site("openai")
    template = PromptTemplateFactory(site=site)
    other_template = PromptTemplateFactory(site=site)
    user = SuperUserFactory()
    client.force_login(user)
    token = token_of(preview(client, template, site))

    wrong = client.post(run_url(other_template), {"_save": "1", "output": "x", "preview_token": token})
    assert wrong.status_code == 200 and "preview is unknown, expired or already saved" in wrong.content.decode()
    assert client.post(run_url(template), {"_save": "1", "output": "x", "preview_token": token}).status_code == 302
    again = client.post(run_url(template), {"_save": "1", "output": "x", "preview_token": token})
    assert again.status_code == 200 and "already saved" in again.content.decode()
    assert PromptRun.objects.count() == 1

    from django.test import Client

    other_session = Client()
    other_session.force_login(user)
    token = token_of(preview(client, template, site))
    stolen = other_session.post(run_url(template), {"_save": "1", "output": "x", "preview_token": token})
    assert stolen.status_code == 200 and PromptRun.objects.count() == 1


@pytest.mark.parametrize(
    "tampered",
    [
        {"variables_json": "{not json", "site_id": "1"},
        {"variables_json": json.dumps({"product": "rye"}), "site_id": "abc"},
        {"variables_json": "[]", "site_id": "99999999999999999999"},
        {"preview_token": "forged"},
        {"preview_token": ""},
        {"preview_token": "x" * 5000},
    ],
)
def test_tampered_save_request_is_a_form_error_not_a_500(client, emulated_site, upstream, tampered):
    site = emulated_site("openai")
    template = PromptTemplateFactory(site=site)
    client.force_login(staff(site))
    data = {"_save": "1", "output": "Kept text"}
    data.update(tampered)
    response = client.post(run_url(template), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Nothing saved:" in html and 'id="save-errors"' in html
    assert "Kept text" in html  # the person's text is not lost
    assert PromptRun.objects.count() == 0


def test_empty_output_is_a_form_error(client, emulated_site, upstream):
    site = emulated_site("openai")
    template = PromptTemplateFactory(site=site)
    client.force_login(staff(site))
    token = token_of(preview(client, template, site))
    response = client.post(run_url(template), {"_save": "1", "output": "  ", "preview_token": token})
    assert response.status_code == 200 and "The output is empty" in response.content.decode()
    assert PromptRun.objects.count() == 0


def test_a_site_admin_with_both_permissions_runs_and_saves(client, emulated_site, upstream):
    site = emulated_site("openai")
    template = PromptTemplateFactory(site=None)  # a global template, run on their own site
    client.force_login(staff(site))
    response = preview(client, template, site)
    saved = client.post(run_url(template), {"_save": "1", "output": "ok", "preview_token": token_of(response)})
    assert saved.status_code == 302 and saved["Location"] == run_url(template)  # no view_promptrun: back here
    assert PromptRun.objects.get().site == site


@pytest.mark.parametrize("perms", [(), ("view_prompttemplate",), ("add_promptrun",)])
def test_staff_without_the_run_permissions_gets_403(client, emulated_site, upstream, perms):
    site = emulated_site("openai")
    template = PromptTemplateFactory(site=site)
    client.force_login(staff(site, perms=perms))
    assert client.get(run_url(template)).status_code == 403
    response = client.post(run_url(template), {"product": "rye", "audience": "x", "site": site.pk, "model": ""})
    assert response.status_code == 403
    assert upstream.requests == [] and not AIUsage.objects.exists()
    change = client.get(reverse("admin:prompts_prompttemplate_change", args=[template.pk]))
    assert "Run with AI" not in change.content.decode()


def test_no_membership_means_no_run(client, emulated_site, upstream):
    site = emulated_site("openai")
    mine = SiteFactory()
    client.force_login(staff(mine))
    other_sites_template = PromptTemplateFactory(site=site)
    assert client.get(run_url(other_sites_template)).status_code == 404
    # a global template on a site they do not manage: the choice is refused, nothing is called
    response = client.post(
        run_url(PromptTemplateFactory(site=None)), {"product": "rye", "audience": "x", "site": site.pk, "model": ""}
    )
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert upstream.requests == []
    client.force_login(staff(None))  # permissions but no site at all
    assert client.get(run_url(PromptTemplateFactory(site=None))).status_code == 403


def test_run_link_shown_to_those_who_may_run(client, emulated_site):
    site = emulated_site("openai")
    template = PromptTemplateFactory(site=site)
    client.force_login(staff(site, perms=(*RUN_PERMS, "change_prompttemplate")))
    change = client.get(reverse("admin:prompts_prompttemplate_change", args=[template.pk]))
    assert "Run with AI" in change.content.decode()
