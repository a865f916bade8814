""" "Run template over a CSV of variables": upload, check, estimate, confirm, then a BatchJob.

The upload is checked whole (`csv_variables`); any problem is listed and nothing starts. A good
file is kept server-side (the session, under a one-time token, like every preview) while the
person reads the estimate, so the confirm request carries only that token: the rows that run are
the rows that were checked and priced.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from integrations.jobs.estimate import Call, estimate
from tenancy.access import can_manage, offer_sites, site_object_or_404, sites_for

from . import run_previews
from .csv_variables import MAX_ROWS, CSVVariablesError, read_variables
from .models import PromptTemplate
from .tasks import start_template_batch

BATCH_KIND = "template_batch"


def can_run_batch(user: Any, template: PromptTemplate) -> bool:
    """Like running once: view the template, add runs, and a site to run on."""
    if not (user.has_perm("prompts.view_prompttemplate") and user.has_perm("prompts.add_promptrun")):
        return False
    return can_manage(user, template.site_id) if template.site_id is not None else sites_for(user).exists()


class UploadForm(forms.Form):
    csv_file = forms.FileField(
        label="CSV file", help_text=f"Header row: the template's variables. At most {MAX_ROWS} rows, one run each."
    )
    site = forms.ModelChoiceField(queryset=None, help_text="Whose provider settings and budget to use.")

    def __init__(self, *args: Any, template: PromptTemplate, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sites = sites_for(user)
        offer_sites(self.fields["site"], user, sites if template.site_id is None else sites.filter(pk=template.site_id))
        if template.site_id is not None:
            self.fields["site"].initial = template.site_id
        self.template = template
        self.rows = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        upload = cleaned.get("csv_file")
        if upload is not None:
            try:
                self.rows = read_variables(upload.read(), self.template.variables)
            except CSVVariablesError as exc:
                for problem in exc.problems:
                    self.add_error("csv_file", problem)
        return cleaned


def runnable_template(request: HttpRequest, pk: int) -> PromptTemplate:
    # another tenant's template: 404, not 403; a global one passes the site check
    return site_object_or_404(request, PromptTemplate, pk, lambda t: can_run_batch(request.user, t), global_ok=True)


def template_batch_view(model_admin: Any, request: HttpRequest, pk: int) -> HttpResponse:
    template = runnable_template(request, pk)
    form = UploadForm(template=template, user=request.user)
    estimates, token, count = [], None, 0
    if request.method == "POST" and "_start" in request.POST:
        started = _start(model_admin, request, template)
        if started is not None:
            return started
    elif request.method == "POST":
        form = UploadForm(request.POST, request.FILES, template=template, user=request.user)
        if form.is_valid():
            site, rows = form.cleaned_data["site"], form.rows
            calls = [
                Call(
                    [{"role": "user", "content": template.render(row)}],
                    template.system_prompt or None,
                    template.max_tokens,
                )
                for row in rows.rows
            ]
            estimates = [estimate(site, calls, template.default_model or None)]
            count = len(rows.rows)
            if not estimates[0].blocked:
                token = run_previews.keep(
                    request,
                    {
                        "kind": BATCH_KIND,
                        "template_id": template.pk,
                        "site_id": site.pk,
                        "rows": rows.rows,
                        "row_numbers": rows.row_numbers,
                    },
                )
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "original": template,
        "title": f"Run “{template}” over a CSV of variables",
        "form": form,
        "estimates": estimates,
        "token": token,
        "count": count,
        "variables": template.variables,
        "max_rows": MAX_ROWS,
    }
    return TemplateResponse(request, "admin/prompts/prompttemplate/batch.html", context)


def _start(model_admin: Any, request: HttpRequest, template: PromptTemplate) -> HttpResponse | None:
    token = request.POST.get("token", "")
    payload = run_previews.fetch(request, token, kind=BATCH_KIND, template_id=template.pk)
    if payload is None:
        model_admin.message_user(
            request, "This upload is unknown, expired or already started: upload the file again.", messages.ERROR
        )
        return None
    if not can_manage(request.user, payload["site_id"]):
        model_admin.message_user(request, "You do not manage the site this upload was for.", messages.ERROR)
        return None
    site = sites_for(request.user).get(pk=payload["site_id"])
    job = start_template_batch(
        template, site, payload["rows"], request.user, background=True, row_numbers=payload["row_numbers"], chunk=8
    )
    run_previews.forget(request, token)
    model_admin.message_user(
        request, f"Started batch job #{job.pk}: {len(payload['rows'])} run(s) of “{template}”.", messages.SUCCESS
    )
    # The starter always follows the job (integrations.jobs.admin: an editor sees the jobs they start).
    return HttpResponseRedirect(reverse("admin:integrations_batchjob_change", args=[job.pk]))
