"""The admin of a site's virtual keys: site admins create them for their own sites, limit and revoke them.

A new key is shown once, on the page that answers the form (never stored in a message, the
session or a log); afterwards only its last four characters are. Revoking sets `revoked_at`
(saved row by row, so every process forgets the key: `keys.bump`); a revoked key's ledger rows
stay. Tenancy comes from `SiteScopedAdminMixin`: a site admin lists, creates and edits keys of the
sites they manage only.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from integrations.models import VirtualKey
from tenancy.access import SiteScopedAdminMixin, site_label

from .keys import PREFIX, new_key


class PatternsField(forms.CharField):
    """A list of model names or patterns, typed comma- or line-separated."""

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, list | tuple) else value

    def to_python(self, value: Any) -> list[str]:
        text = super().to_python(value) or ""
        return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


class VirtualKeyForm(forms.ModelForm):
    allowed_models = PatternsField(
        required=False,
        help_text=VirtualKey._meta.get_field("allowed_models").help_text,
        widget=forms.TextInput(attrs={"size": 60}),
    )

    class Meta:
        model = VirtualKey
        fields = (
            "site",
            "name",
            "expires_at",
            "monthly_budget",
            "requests_per_minute",
            "tokens_per_minute",
            "allowed_models",
        )


@admin.register(VirtualKey)
class VirtualKeyAdmin(SiteScopedAdminMixin, admin.ModelAdmin):
    form = VirtualKeyForm
    list_display = (
        "name",
        "site",
        "shown_key",
        "created_at",
        "expires_at",
        "monthly_budget",
        "requests_per_minute",
        "tokens_per_minute",
        "status",
    )
    list_filter = ("site",)
    search_fields = ("name",)
    actions = ("revoke",)
    readonly_fields = ("shown_key", "created_at", "revoked_at")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(VirtualKeyForm.Meta.fields)
        return fields if obj is None else ["shown_key", *fields, "created_at", "revoked_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # A key stays on its site: moving it would hand one tenant's key (and ledger) to another.
        return [*self.readonly_fields, "site"] if obj is not None else list(self.readonly_fields)

    @admin.display(description="Key")
    def shown_key(self, obj: VirtualKey) -> str:
        return f"{PREFIX}…{obj.last4}"

    @admin.display(description="Status")
    def status(self, obj: VirtualKey) -> str:
        if obj.revoked_at is not None:
            return "revoked"
        if obj.expires_at is not None and obj.expires_at <= timezone.now():
            return "expired"
        return "active"

    def save_model(self, request: HttpRequest, obj: VirtualKey, form: Any, change: bool) -> None:
        if not change:
            raw, stored = new_key()
            obj.user = request.user
            for name, value in stored.items():
                setattr(obj, name, value)
            request._new_virtual_key = raw  # shown once by response_add, kept nowhere else
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: VirtualKey, post_url_continue: str | None = None) -> HttpResponse:
        raw = getattr(request, "_new_virtual_key", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        response = TemplateResponse(
            request,
            "admin/integrations/virtualkey/created.html",
            {
                **self.admin_site.each_context(request),
                "title": "API key created",
                "key": obj,
                "raw_key": raw,
                "site_label": site_label(obj.site),
                "base_url": request.build_absolute_uri("/v1"),
                "back_url": reverse("admin:integrations_virtualkey_changelist"),
            },
        )
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        now, count = timezone.now(), 0
        for key in queryset.filter(revoked_at__isnull=True):  # the changelist's queryset: the user's sites only
            key.revoked_at = now
            key.save(update_fields=["revoked_at"])  # post_save: every process forgets the key
            count += 1
        self.message_user(request, f"{count} key(s) revoked.", messages.SUCCESS)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)
