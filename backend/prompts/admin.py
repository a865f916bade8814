"""Prompt templates in the admin, with a run screen: fill the variables, preview, then keep it."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.sites.models import Site
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from integrations.admin import streaming
from integrations.admin.forms import PROVIDER_LABELS
from integrations.ai.gateway.service import AIService
from integrations.ai.governance.money import usd
from integrations.ai.providers.errors import AIProviderError
from tenancy.access import (
    SiteScopedAdminMixin,
    can_manage,
    offer_sites,
    require_site,
    site_object_or_404,
    sites_for,
)

from . import batch_views, run_previews, template_versions, trials
from .models import PromptRun, PromptTemplate, PromptTemplateVersion
from .services.ai_service import AIContentService


class PromptTemplateForm(forms.ModelForm):
    save_as_draft = forms.BooleanField(
        required=False,
        label="Save as draft",
        help_text="Keep the running (production) version; this save becomes the draft to try and promote.",
    )

    class Meta:
        model = PromptTemplate
        fields = ("site", "name", "slug", "system_prompt", "template", "default_model", "max_tokens", "temperature")


def variables_form(template: PromptTemplate, user, data=None) -> forms.Form:
    fields = {
        name: forms.CharField(label=name.replace("_", " ").capitalize(), widget=forms.Textarea(attrs={"rows": 2}))
        for name in template.variables
    }
    fields["site"] = forms.ModelChoiceField(
        queryset=sites_for(user), help_text="Whose provider settings and budget to use."
    )
    fields["model"] = forms.CharField(required=False, help_text=f"Empty: {template.default_model or 'site default'}.")
    form = type("VariablesForm", (forms.Form,), fields)(data)
    sites = sites_for(user)
    offer_sites(form.fields["site"], user, sites if template.site_id is None else sites.filter(pk=template.site_id))
    return form


class SaveRunForm(forms.Form):
    """The save step: the (edited) output and the token of a preview kept server-side.

    Nothing else is read from the request: the site, variables, model and numbers come from the
    preview (`run_previews`), so a tampered or stale hidden field is a form error, not a 500.
    """

    preview_token = forms.CharField(widget=forms.HiddenInput, max_length=100)
    output = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10, "cols": 90}),
        strip=True,
        error_messages={"required": "The output is empty: write or generate something to save."},
    )

    def __init__(self, *args, request, template: PromptTemplate, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.request, self.template = request, template
        self.preview: run_previews.RunPreview | None = None

    def clean_preview_token(self) -> str:
        token = self.cleaned_data["preview_token"]
        preview = run_previews.peek(self.request, self.template.pk, token)
        if preview is None:
            raise forms.ValidationError("This preview is unknown, expired or already saved: preview again.")
        if not can_manage(self.request.user, preview.site_id):
            raise forms.ValidationError("You do not manage the site this preview ran for.")
        self.preview = preview
        return token


class TrialForm(forms.Form):
    """Which version to try, on which site's saved runs, and on how many of them."""

    version = forms.ModelChoiceField(queryset=PromptTemplateVersion.objects.none(), empty_label=None)
    site = forms.ModelChoiceField(queryset=None, empty_label=None)
    items = forms.IntegerField(
        min_value=1,
        max_value=trials.MAX_TRIAL_ITEMS,
        initial=5,
        help_text=f"The most recent saved runs (or pages), at most {trials.MAX_TRIAL_ITEMS}.",
    )
    source = forms.ChoiceField(choices=[("runs", "recent saved runs")], initial="runs", label="Over", required=False)

    def __init__(self, *args, user, template: PromptTemplate, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        labelled = [v for v in (template.draft_version, template.production_version) if v is not None]
        if trials.fillable_from_pages(template, *labelled):  # every variable comes from a page: title, body, ...
            self.fields["source"].choices = [
                ("runs", "recent saved runs"),
                ("pages", "recent pages of the site (production beside it)"),
            ]
        self.fields["version"].queryset = template.versions.order_by("-number")
        draft = template.draft_version
        if draft is not None:
            self.fields["version"].initial = draft.pk
        sites = sites_for(user)
        offer_sites(self.fields["site"], user, sites if template.site_id is None else sites.filter(pk=template.site_id))


def can_run(user, template: PromptTemplate) -> bool:
    """Running a template spends a site's budget and keeps a run: it takes both permissions and a site."""
    if not (user.has_perm("prompts.view_prompttemplate") and user.has_perm("prompts.add_promptrun")):
        return False
    if template.site_id is not None:
        return can_manage(user, template.site_id)
    return sites_for(user).exists()


@admin.register(PromptTemplate)
class PromptTemplateAdmin(SiteScopedAdminMixin, admin.ModelAdmin):
    global_rows = True
    list_display = ("name", "slug", "site", "default_model", "max_tokens", "temperature")
    list_filter = ("site",)
    search_fields = ("name", "slug", "template")
    prepopulated_fields = {"slug": ("name",)}
    change_form_template = "admin/prompts/prompttemplate/change_form.html"
    form = PromptTemplateForm
    readonly_fields = ("production_label", "draft_label")

    actions = ["run_over_csv"]

    @admin.action(description="Run template over a CSV of variables")
    def run_over_csv(self, request, queryset):
        """Pick one template, then upload its CSV on the batch screen (estimate and confirm there)."""
        templates = [t for t in queryset[:2] if batch_views.can_run_batch(request.user, t)]
        if len(templates) != 1 or queryset.count() != 1:
            self.message_user(request, "Select exactly one template you may run.", messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:prompts_prompttemplate_batch", args=[templates[0].pk]))

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/run/", wrap(self.run_view), name="prompts_prompttemplate_run"),
            path("<int:pk>/run/stream/", wrap(self.stream_run_view), name="prompts_prompttemplate_run_stream"),
            path(
                "<int:pk>/batch/",
                wrap(lambda request, pk: batch_views.template_batch_view(self, request, pk)),
                name="prompts_prompttemplate_batch",
            ),
            path("<int:pk>/versions/", wrap(self.versions_view), name="prompts_prompttemplate_versions"),
            path(
                "<int:pk>/versions/<int:version_id>/rollback/",
                wrap(self.rollback_view),
                name="prompts_prompttemplate_rollback",
            ),
            path("<int:pk>/draft/", wrap(self.draft_view), name="prompts_prompttemplate_draft"),
            path("<int:pk>/trial/", wrap(self.trial_start_view), name="prompts_prompttemplate_trial"),
            path("<int:pk>/trial/<int:job_id>/", wrap(self.trial_view), name="prompts_prompttemplate_trial_result"),
            *super().get_urls(),
        ]

    @admin.display(description="Production version")
    def production_label(self, obj: PromptTemplate) -> str:
        version = obj.production_version if obj else None
        return f"v{version.number}" if version else "—"

    @admin.display(description="Draft version")
    def draft_label(self, obj: PromptTemplate) -> str:
        version = obj.draft_version if obj else None
        return f"v{version.number}" if version else "—"

    def save_model(self, request, obj, form, change):
        obj.version_author = request.user
        obj.save_as_draft = bool(form.cleaned_data.get("save_as_draft")) and change
        super().save_model(request, obj, form, change)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["can_run"] = obj is not None and can_run(request.user, obj)
        context["can_run_batch"] = obj is not None and batch_views.can_run_batch(request.user, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _template_for(self, request, pk: int, change: bool) -> PromptTemplate:
        """The template if this user may see it (404 for another site's), and change it when `change`."""

        def allowed(template: PromptTemplate) -> bool:
            return (
                self.has_change_permission(request, template) if change else self.has_view_permission(request, template)
            )

        return site_object_or_404(request, self.get_queryset(request), pk, allowed, global_ok=True)

    def versions_view(self, request, pk: int):
        """Every version, newest first, each with its diff against the one before and a rollback button."""
        template = self._template_for(request, pk, change=False)
        versions = list(template.versions.select_related("created_by", "restored_from").order_by("number"))
        rows, previous = [], None
        for version in versions:
            rows.append(
                {
                    "version": version,
                    "diff": template_versions.diff(previous, version),
                    "production": version.label == PromptTemplateVersion.PRODUCTION,
                    "draft": version.label == PromptTemplateVersion.DRAFT,
                }
            )
            previous = version
        can_change = self.has_change_permission(request, template)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": template,
            "title": f"Versions of “{template}”",
            "rows": list(reversed(rows)),
            "can_change": can_change,
            "trial_form": TrialForm(user=request.user, template=template)
            if can_change and can_run(request.user, template)
            else None,
        }
        return TemplateResponse(request, "admin/prompts/prompttemplate/versions.html", context)

    def rollback_view(self, request, pk: int, version_id: int):
        template = self._template_for(request, pk, change=True)
        version = get_object_or_404(PromptTemplateVersion, pk=version_id, template=template)
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:prompts_prompttemplate_versions", args=[template.pk]))
        new = template_versions.rollback(template, version, user=request.user)
        self.message_user(
            request, f"Rolled back: {new.display} (a copy of {version.display}) is now production.", messages.SUCCESS
        )
        return HttpResponseRedirect(reverse("admin:prompts_prompttemplate_versions", args=[template.pk]))

    def draft_view(self, request, pk: int):
        """Promote or discard the draft (POST `action`)."""
        template = self._template_for(request, pk, change=True)
        back = HttpResponseRedirect(reverse("admin:prompts_prompttemplate_versions", args=[template.pk]))
        action = request.POST.get("action")
        if request.method != "POST" or action not in ("promote", "discard"):
            return back
        if template.draft_version is None:
            self.message_user(request, "This template has no draft.", messages.ERROR)
        elif action == "promote":
            version = template_versions.promote_draft(template)
            self.message_user(request, f"{version.display} is now production.", messages.SUCCESS)
        else:
            template_versions.discard_draft(template)
            self.message_user(request, "The draft was discarded; it stays in the history.", messages.SUCCESS)
        return back

    def trial_start_view(self, request, pk: int):
        """Try the draft (or any version) on the site's recent saved runs; it spends budget, so it takes
        the run permissions, the change permission and the site."""
        template = self._template_for(request, pk, change=True)
        if not can_run(request.user, template):
            raise PermissionDenied
        back = HttpResponseRedirect(reverse("admin:prompts_prompttemplate_versions", args=[template.pk]))
        if request.method != "POST":
            return back
        form = TrialForm(request.POST, user=request.user, template=template)
        if not form.is_valid():
            self.message_user(
                request,
                "No trial: " + " ".join(str(e) for errors in form.errors.values() for e in errors),
                messages.ERROR,
            )
            return back
        version = form.cleaned_data["version"]
        try:
            job = trials.start_trial(
                version,
                form.cleaned_data["site"],
                form.cleaned_data["items"],
                request.user,
                source=form.cleaned_data["source"] or "runs",
            )
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return back
        return HttpResponseRedirect(reverse("admin:prompts_prompttemplate_trial_result", args=[template.pk, job.pk]))

    def trial_view(self, request, pk: int, job_id: int):
        """Old and new output side by side, with tokens, cost and latency per item and in total."""
        from integrations.models import BatchJob

        template = self._template_for(request, pk, change=False)
        job = get_object_or_404(BatchJob, pk=job_id, kind=trials.KIND, params__template_id=template.pk)
        require_site(request.user, job.site_id)
        items = list(job.trial_items.select_related("version", "run__version").order_by("id"))
        version = template.versions.filter(pk=job.params.get("version_id")).first()
        jobs_admin = self.admin_site._registry.get(BatchJob)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": template,
            "title": f"Trial of {version.display if version else 'a version'} of “{template}”",
            "job": job,
            "items": items,
            "totals": trials.totals(items),
            "version": version,
            "is_draft": version is not None and version.label == PromptTemplateVersion.DRAFT,
            "can_change": self.has_change_permission(request, template),
            # the batch job's own cancel (and its permission): change_batchjob on this site's job
            "can_cancel": not job.finished and bool(jobs_admin and jobs_admin.has_change_permission(request, job)),
        }
        return TemplateResponse(request, "admin/prompts/prompttemplate/trial.html", context)

    def run_view(self, request, pk: int):
        template = get_object_or_404(PromptTemplate, pk=pk)
        if template.site_id is not None:
            require_site(request.user, template.site_id)  # another tenant's template: 404, not 403
        if not can_run(request.user, template):
            raise PermissionDenied
        preview = result = save_form = None
        form = variables_form(template, request.user)
        if request.method == "POST" and "_save" in request.POST:
            save_form = SaveRunForm(request.POST, request=request, template=template)
            if save_form.is_valid():
                token, preview = save_form.cleaned_data["preview_token"], save_form.preview
                run = AIContentService().save_run(
                    template,
                    preview.site_id,
                    preview.variables,
                    save_form.cleaned_data["output"],
                    result=run_previews.as_result(preview, save_form.cleaned_data["output"]),
                    user=request.user,
                    version=template.versions.filter(pk=preview.version_id).first() if preview.version_id else None,
                )
                run_previews.forget(request, token)
                self.message_user(request, "Output saved.", messages.SUCCESS)
                if request.user.has_perm("prompts.view_promptrun") or request.user.has_perm("prompts.change_promptrun"):
                    return HttpResponseRedirect(reverse("admin:prompts_promptrun_change", args=[run.pk]))
                return HttpResponseRedirect(reverse("admin:prompts_prompttemplate_run", args=[template.pk]))
            self.message_user(
                request,
                "Nothing saved: " + " ".join(str(e) for errors in save_form.errors.values() for e in errors),
                messages.ERROR,
            )
        elif request.method == "GET" and request.GET.get("token"):  # the review step of a streamed run
            token = request.GET["token"]
            kept = run_previews.peek(request, template.pk, token)
            if kept is None or kept.output is None:
                self.message_user(
                    request, "This output is unknown, expired or already saved: run again.", messages.ERROR
                )
            else:
                result = run_previews.as_result(kept, kept.output)
                form.initial.update({**kept.variables, "site": kept.site_id})  # what was run, shown again
                save_form = SaveRunForm(
                    initial={"preview_token": token, "output": kept.output}, request=request, template=template
                )
                cost = kept.cost_decimal
                preview = {
                    "cost": usd(cost) if cost is not None else "not known",
                    "site": Site.objects.filter(pk=kept.site_id).first(),
                    "provider": PROVIDER_LABELS.get(kept.provider, kept.provider),
                }
        elif request.method == "POST":
            form = variables_form(template, request.user, request.POST)
            if form.is_valid():
                data = dict(form.cleaned_data)
                site, model = data.pop("site"), data.pop("model")
                content_service = AIContentService()
                try:
                    result = content_service.generate(template, data, model=model or None, site=site.pk)
                except AIProviderError as exc:
                    self.message_user(request, f"No output — {exc.code}: {exc.message}", messages.ERROR)
                else:
                    cost = run_previews.call_cost(site.pk, result)
                    token = run_previews.remember(
                        request,
                        template.pk,
                        site.pk,
                        data,
                        result,
                        cost,
                        version_id=content_service.last_version.pk if content_service.last_version else None,
                    )
                    save_form = SaveRunForm(
                        initial={"preview_token": token, "output": result.content}, request=request, template=template
                    )
                    preview = {
                        "cost": usd(cost) if cost is not None else "not known",
                        "site": site,
                        "provider": PROVIDER_LABELS.get(result.provider, result.provider),
                    }
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": template,
            "title": f"Run “{template}”",
            "form": form,
            "result": result,
            "preview": preview,
            "save_form": save_form,
        }
        return TemplateResponse(request, "admin/prompts/prompttemplate/run.html", context)

    def stream_run_view(self, request, pk: int):
        """Run, streamed: the output as it arrives (Cancel stops the provider's stream), then the usual save
        step (the `done` event's `review_url`); nothing is saved here. The same checks as `run_view`."""
        template = get_object_or_404(PromptTemplate, pk=pk)
        if template.site_id is not None:
            require_site(request.user, template.site_id)
        if not can_run(request.user, template):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        form = variables_form(template, request.user, request.POST)
        if not form.is_valid():
            message = form.errors.as_text()
            return JsonResponse({"error": {"code": "invalid_request", "message": message}}, status=400)
        data = dict(form.cleaned_data)
        site, model = data.pop("site"), data.pop("model")
        version = template.active_version()
        source = version if version is not None else template
        try:
            prompt = AIContentService().render(source, data)
        except AIProviderError as exc:
            return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=400)
        params = {
            "model": model or source.default_model or None,
            "max_tokens": source.max_tokens,
            "temperature": source.temperature,
            "system_prompt": source.system_prompt or None,
        }
        service = AIService(site=site.pk, service="prompts.template")

        def finish(text: str, result) -> dict:
            cost = run_previews.call_cost(site.pk, result)
            version_id = version.pk if version is not None else None
            token = run_previews.remember(
                request, template.pk, site.pk, data, result, cost, version_id=version_id, output=text
            )
            request.session.save()  # the response's headers are gone: the session middleware saved it already
            url = reverse("admin:prompts_prompttemplate_run", args=[template.pk])
            return {"review_url": f"{url}?{urlencode({'token': token})}"}

        label = f"Prompt template: {template} {version.display if version else ''}".strip()
        return streaming.stream_answer(request, service, prompt, params, finish, attribute_to=template, label=label)


@admin.register(PromptRun)
class PromptRunAdmin(SiteScopedAdminMixin, admin.ModelAdmin):
    list_display = (
        "template",
        "version",
        "site",
        "provider_name",
        "model",
        "total_tokens",
        "cost_usd",
        "created_by",
        "created_at",
    )
    list_filter = ("site", "template")
    fields = (
        "template",
        "version",
        "site",
        "variable_values",
        "output",
        "provider_name",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost_usd",
        "usage",
        "created_by",
        "created_at",
    )
    readonly_fields = tuple(f for f in fields if f != "output")  # the text can be corrected, the facts not

    def has_add_permission(self, request):
        return False

    @admin.display(description="Variables")
    def variable_values(self, obj: PromptRun) -> str:
        """The values the run was made with, as a table (name, value), not a JSON dump."""
        values = obj.variables if isinstance(obj.variables, dict) else {}
        if not values:
            return "none"
        # In the template's own order (PostgreSQL's jsonb does not keep the order keys were written in).
        order = {name: n for n, name in enumerate(obj.template.variables if obj.template_id else [])}
        names = sorted(values, key=lambda name: (order.get(name, len(order)), name))
        return format_html(
            '<table class="kv-table run-variables">{}</table>',
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", ((name, values[name]) for name in names)),
        )

    @admin.display(description="Provider", ordering="provider")
    def provider_name(self, obj: PromptRun) -> str:
        return PROVIDER_LABELS.get(obj.provider, obj.provider) or "—"

    @admin.display(description="Cost", ordering="cost")
    def cost_usd(self, obj: PromptRun) -> str:
        return usd(obj.cost) if obj.cost is not None else "not known"

    @admin.display(description="Usage ledger")
    def usage(self, obj: PromptRun) -> str:
        """The run's rows in the AI usage ledger, found by the provider's request id."""
        if not obj.request_id:
            return "—"
        url = reverse("admin:integrations_aiusage_changelist") + "?" + urlencode({"request_id": obj.request_id})
        return format_html('<a href="{}" class="usage-link">Usage rows for request {}</a>', url, obj.request_id)
