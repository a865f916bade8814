from django.contrib import admin
from django.contrib.sites.admin import SiteAdmin
from django.contrib.sites.models import Site

from .access import SuperuserEditsMixin, site_ids_for
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


admin.site.unregister(Site)


@admin.register(Site)
class ScopedSiteAdmin(SiteAdmin):
    """Sites themselves: a site admin given access sees (and may rename) only the sites they manage.

    Adding or deleting a site creates or destroys a tenant: superusers only.
    """

    def get_queryset(self, request):
        ids = site_ids_for(request.user)
        queryset = super().get_queryset(request)
        return queryset if ids is None else queryset.filter(pk__in=ids)

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser
