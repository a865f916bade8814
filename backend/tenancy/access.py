"""Tenant scoping shared by every admin and view: a site admin sees and uses only their sites."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.sites.models import Site
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest


def site_ids_for(user: Any) -> set[int] | None:
    """The ids of the sites `user` manages, or None meaning all (superusers)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return set()
    if user.is_superuser:
        return None
    return set(user.site_memberships.values_list("site_id", flat=True))


def sites_for(user: Any) -> QuerySet[Site]:
    ids = site_ids_for(user)
    return Site.objects.all() if ids is None else Site.objects.filter(pk__in=ids)


def can_manage(user: Any, site_id: int | None) -> bool:
    ids = site_ids_for(user)
    return ids is None or (site_id is not None and site_id in ids)


def require_site(user: Any, site_id: int | None) -> None:
    """404 (not 403: do not confirm another tenant's record exists) unless `user` manages the site."""
    if not can_manage(user, site_id):
        raise Http404("No such record.")


class SiteScopedAdminMixin:
    """ModelAdmin mixin: rows filtered to the user's sites, site choices limited, saves checked.

    `site_field` names the path to the Site ("site" or "page__site"); `global_rows` lets rows with
    no site (shared defaults) be seen read-only by site admins.
    """

    site_field = "site"
    global_rows = False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        ids = site_ids_for(request.user)
        if ids is None:
            return qs
        condition = Q(**{f"{self.site_field}__in": ids})
        if self.global_rows:
            condition |= Q(**{f"{self.site_field}__isnull": True})
        return qs.filter(condition)

    def get_list_filter(self, request):
        # A plain "site" filter lists every site's domain; only offer the sites the rows belong to.
        return [
            (f, admin.RelatedOnlyFieldListFilter) if f == self.site_field else f
            for f in super().get_list_filter(request)
        ]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Site:
            kwargs["queryset"] = sites_for(request.user)
            if site_ids_for(request.user) is not None and not self.global_rows:
                kwargs.setdefault("required", True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _row_site_id(self, obj: Any) -> int | None:
        target = obj
        for part in self.site_field.split("__"):
            target = getattr(target, part, None)
            if target is None:
                return None
        return target.pk

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        if obj is None or not allowed:
            return allowed
        site_id = self._row_site_id(obj)
        if site_id is None:
            return request.user.is_superuser
        return can_manage(request.user, site_id)

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        if obj is None or not allowed:
            return allowed
        return self.has_change_permission(request, obj)


class SuperuserEditsMixin:
    """ModelAdmin mixin for deployment-wide tables: only superusers add, change or delete rows."""

    def has_add_permission(self, request, *args):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser
