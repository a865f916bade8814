"""The admin of editors' AI quotas (issue 27): a site admin caps their own site's editors.

Tenancy: `SiteScopedAdminMixin` lists, creates and edits quotas of the sites the user manages only;
the user choices are the active staff users with a membership of those sites (never another site's
people), and the model's `clean` refuses a user who is not staff of the row's site, whatever the POST
says. The gateway applies the quota through the site's snapshot (`EditorQuota` saves invalidate it).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Q

from integrations.models import EditorQuota
from tenancy.access import SiteScopedAdminMixin, site_ids_for


@admin.register(EditorQuota)
class EditorQuotaAdmin(SiteScopedAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "site", "user", "group", "monthly_budget", "requests_per_minute", "updated_at")
    list_filter = ("site",)
    fields = ("site", "user", "group", "monthly_budget", "requests_per_minute")
    search_fields = ("user__username", "group__name")

    def formfield_for_foreignkey(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        if db_field.name == "user":
            staff = get_user_model().objects.filter(is_active=True, is_staff=True)
            ids = site_ids_for(request.user)
            if ids is not None:  # a site admin: their sites' staff only
                staff = staff.filter(Q(site_memberships__site_id__in=ids)).distinct()
            kwargs["queryset"] = staff.order_by("username")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
