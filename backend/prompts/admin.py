"""Prompt templates in the admin, with a run screen: fill the variables, preview, then keep it."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from integrations.ai.providers.errors import AIProviderError
from tenancy.access import SiteScopedAdminMixin, can_manage, require_site, sites_for

from .models import PromptRun, PromptTemplate
from .services.ai_service import AIContentService


def variables_form(template: PromptTemplate, user, data=None) -> forms.Form:
    fields = {
        name: forms.CharField(label=name.replace("_", " ").capitalize(), widget=forms.Textarea(attrs={"rows": 2}))
        for name in template.variables
    }
    fields["site"] = forms.ModelChoiceField(
        queryset=sites_for(user) if template.site_id is None else sites_for(user).filter(pk=template.site_id),
        help_text="Whose provider settings and budget to use.",
    )
    fields["model"] = forms.CharField(required=False, help_text=f"Empty: {template.default_model or 'site default'}.")
    return type("VariablesForm", (forms.Form,), fields)(data)


@admin.register(PromptTemplate)
class PromptTemplateAdmin(SiteScopedAdminMixin, admin.ModelAdmin):
    global_rows = True
    list_display = ("name", "slug", "site", "default_model", "max_tokens", "temperature")
    list_filter = ("site",)
    search_fields = ("name", "slug", "template")
    prepopulated_fields = {"slug": ("name",)}
    change_form_template = "admin/prompts/prompttemplate/change_form.html"

    def get_urls(self):
        return [
            path("<int:pk>/run/", self.admin_site.admin_view(self.run_view), name="prompts_prompttemplate_run"),
            *super().get_urls(),
        ]

    def run_view(self, request, pk: int):
        template = get_object_or_404(PromptTemplate, pk=pk)
        if template.site_id is not None:
            require_site(request.user, template.site_id)
        form = variables_form(template, request.user, request.POST or None)
        service = AIContentService()
        preview = result = None
        if request.method == "POST" and "_save" in request.POST:
            variables = json.loads(request.POST.get("variables_json") or "{}")
            site_id = int(request.POST.get("site_id") or 0)
            output = request.POST.get("output", "").strip()
            if not can_manage(request.user, site_id) or not output:
                self.message_user(request, "Nothing saved: the output is empty or the site is not yours.",
                                  messages.ERROR)
            else:
                service.save_run(template, site_id, variables, output, user=request.user)
                self.message_user(request, "Output saved.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:prompts_promptrun_changelist"))
        elif request.method == "POST" and form.is_valid():
            data = dict(form.cleaned_data)
            site, model = data.pop("site"), data.pop("model")
            try:
                result = service.generate(template, data, model=model or None, site=site.pk)
            except AIProviderError as exc:
                self.message_user(request, f"No output — {exc.code}: {exc.message}", messages.ERROR)
            else:
                preview = {"variables_json": json.dumps(data), "site_id": site.pk}
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "original": template,
            "title": f"Run “{template}”", "form": form, "result": result, "preview": preview,
        }
        return TemplateResponse(request, "admin/prompts/prompttemplate/run.html", context)


@admin.register(PromptRun)
class PromptRunAdmin(SiteScopedAdminMixin, admin.ModelAdmin):
    list_display = ("template", "site", "model", "total_tokens", "created_by", "created_at")
    list_filter = ("site", "template")
    readonly_fields = ("template", "site", "variables", "model", "provider", "total_tokens", "created_by", "created_at")

    def has_add_permission(self, request):
        return False
