from django.contrib import admin

from .access import SuperuserEditsMixin
from .models import SiteMembership


@admin.register(SiteMembership)
class SiteMembershipAdmin(SuperuserEditsMixin, admin.ModelAdmin):
    """Who manages which site: superusers only, since it grants access to tenants."""

    list_display = ("user", "site", "created_at")
    list_filter = ("site",)
    search_fields = ("user__username", "site__domain")

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

