"""Tenant scoping shared by every admin and view: a site admin sees and uses only their sites."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.sites.models import Site
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404


def site_ids_for(user: Any) -> set[int] | None:
    """The ids of the sites `user` manages, or None meaning all (superusers)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return set()
    if user.is_superuser:
        return None
    # order_by(): the model's ordering (by site domain, username) would join two tables for a set of ids.
    return set(user.site_memberships.order_by().values_list("site_id", flat=True))


def sites_for(user: Any) -> QuerySet[Site]:
    ids = site_ids_for(user)
    return Site.objects.all() if ids is None else Site.objects.filter(pk__in=ids)


def site_label(site: Site) -> str:
    """How a site is shown in a choice: its name, with the domain to tell similar names apart."""
    if not site.name or site.name == site.domain:
        return site.domain
    return f"{site.name} ({site.domain})"


def offer_sites(field: forms.ModelChoiceField, user: Any, sites: QuerySet[Site] | None = None) -> None:
    """A form's site choice on the user's sites (or `sites`), named by `site_label`.

    A site admin or editor with exactly one site is not asked: it is chosen and the field hidden.
    Superusers always choose (their "all sites" grows as sites are added).
    """
    field.queryset = sites if sites is not None else sites_for(user)
    field.label_from_instance = site_label
    if user.is_superuser:
        return
    only = list(field.queryset.order_by("pk")[:2])
    if len(only) == 1:
        field.initial = only[0].pk
        field.widget = forms.HiddenInput()


def only_site(user: Any) -> Site | None:
    """The one site a non-superuser manages, or None (several, none, or a superuser)."""
    if site_ids_for(user) is None:
        return None
    only = list(sites_for(user)[:2])
    return only[0] if len(only) == 1 else None


def can_manage(user: Any, site_id: int | None) -> bool:
    ids = site_ids_for(user)
    return ids is None or (site_id is not None and site_id in ids)


def require_site(user: Any, site_id: int | None) -> None:
    """404 (not 403: do not confirm another tenant's record exists) unless `user` manages the site."""
    if not can_manage(user, site_id):
        raise Http404("No such record.")


def site_object_or_404(
    request: HttpRequest,
    queryset: Any,
    pk: Any,
    allowed: Callable[[Any], bool] | None = None,
    *,
    global_ok: bool = False,
) -> Any:
    """The object `pk` of `queryset` (a model or a queryset) for a tenant-scoped screen.

    404 when it does not exist or belongs to a site the user does not manage (not 403: do not confirm
    another tenant's record exists); 403 when `allowed(obj)` says no (a permission the screen needs).
    `global_ok`: an object of no site (a global template) passes the site check.
    """
    obj = get_object_or_404(queryset, pk=pk)
    if not (global_ok and obj.site_id is None):
        require_site(request.user, obj.site_id)
    if allowed is not None and not allowed(obj):
        raise PermissionDenied
    return obj


class SiteNameFilter(admin.RelatedOnlyFieldListFilter):
    """The related-only site filter, with sites by name."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> list[tuple[Any, str]]:
        pks = model_admin.get_queryset(request).distinct().values_list(f"{self.field_path}__pk", flat=True)
        return [(site.pk, site_label(site)) for site in Site.objects.filter(pk__in=pks).order_by("name", "domain")]


class ExportSelectedMixin:
    """ModelAdmin mixin for django-import-export's "export selected" action: the rows a POST may name are the
    ones it names that this user's queryset holds.

    Why: the library's default (`get_valid_export_item_pks`, deprecated in 4.x and warning on every use) lists
    the key of every row of the whole table, every site's, to validate the POST: millions for the usage
    ledger, on each export. Its export queryset was scoped, so another site's row was never exported, but
    the validation still read them all."""

    def get_valid_export_item_pks(self, request: HttpRequest) -> list[Any]:
        pk = self.model._meta.pk  # type: ignore[attr-defined]
        wanted = []
        for raw in request.POST.getlist("export_items"):
            try:
                wanted.append(pk.to_python(raw))
            except ValidationError:
                continue  # not a key: the form then refuses it as an invalid choice
        return list(self.get_queryset(request).filter(pk__in=wanted).values_list("pk", flat=True))  # type: ignore[attr-defined]


class SiteScopedAdminMixin(ExportSelectedMixin):
    """ModelAdmin mixin: rows filtered to the user's sites, site choices limited, saves checked.

    `site_field` names the path to the Site ("site" or "page__site"); `global_rows` lets rows with
    no site (shared defaults) be seen read-only by site admins. Only superusers write global rows:
    for anyone else the site is required and must be one they manage, checked in the form (a clear
    error on the field, whatever the POST says) and again in `save_model`.
    """

    site_field = "site"
    global_rows = False

    def _scope(self, request: HttpRequest, qs: QuerySet) -> QuerySet:
        ids = site_ids_for(request.user)
        if ids is None:
            return qs
        condition = Q(**{f"{self.site_field}__in": ids})
        if self.global_rows:
            condition |= Q(**{f"{self.site_field}__isnull": True})
        return qs.filter(condition)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self._scope(request, super().get_queryset(request))

    def get_search_results(self, request, queryset, search_term):
        # Changelist search and autocomplete: never more than the user's rows, whatever queryset came in.
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        return self._scope(request, queryset), may_have_duplicates

    def get_list_filter(self, request):
        # A plain relation filter lists every row of the related table (every site's domains,
        # templates, pages...); offer only the related rows that the user's own rows point at.
        return [self._scoped_filter(f) for f in super().get_list_filter(request)]

    def _scoped_filter(self, spec: Any) -> Any:
        if isinstance(spec, str):
            name, filter_class = spec, None
        elif isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
            name, filter_class = spec
        else:
            return spec  # a SimpleListFilter: it must scope its own lookups
        if "__" in name:
            return spec
        try:
            model_field = self.model._meta.get_field(name)
        except FieldDoesNotExist:
            return spec
        if not model_field.is_relation:
            return spec
        if filter_class is None or (
            issubclass(filter_class, admin.RelatedFieldListFilter)
            and not issubclass(filter_class, admin.RelatedOnlyFieldListFilter)
        ):
            return (name, SiteNameFilter if model_field.related_model is Site else admin.RelatedOnlyFieldListFilter)
        return spec

    def get_list_display(self, request):
        # Sites by name in the list ("Bakery (bakery.example.test)"), not Django's bare domain.
        return [self._site_column if name == self.site_field else name for name in super().get_list_display(request)]

    @admin.display(description="Site", ordering="site__name")
    def _site_column(self, obj: Any) -> str:
        site = getattr(obj, "site", None)
        return site_label(site) if site is not None else "— all sites —"

    def _site_form_field(self) -> str:
        """The form field that carries the row's site: the first step of `site_field`."""
        return self.site_field.split("__")[0]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        scoped_user = site_ids_for(request.user) is not None
        if db_field.related_model is Site:
            kwargs["queryset"] = sites_for(request.user)
            if scoped_user:
                kwargs["required"] = True
                single = only_site(request.user)
                if single is not None:  # nothing to choose: preselected
                    kwargs.setdefault("initial", single.pk)
        elif scoped_user:
            related_admin = self.admin_site._registry.get(db_field.related_model)
            if isinstance(related_admin, SiteScopedAdminMixin):
                # A choice of pages, templates...: only those the user may see (and so may link to).
                kwargs["queryset"] = related_admin.get_queryset(request)
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.related_model is Site and formfield is not None:
            formfield.label_from_instance = site_label  # sites by name, not by domain
        return formfield

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        if site_ids_for(request.user) is None:
            return form_class
        admin_self, user, field_name = self, request.user, self._site_form_field()

        class SiteCheckedForm(form_class):
            def clean(self):
                cleaned = super().clean()
                if field_name in self.fields:
                    target = admin_self._site_id_of_value(cleaned.get(field_name))
                    if not can_manage(user, target) and field_name not in self.errors:
                        self.add_error(field_name, "Choose one of the sites you manage.")
                return cleaned

        SiteCheckedForm.__name__ = form_class.__name__
        return SiteCheckedForm

    def _site_id_of_value(self, value: Any) -> int | None:
        """The site id a form value for the site-carrying field stands for (a Site, or e.g. a Page)."""
        if value is None:
            return None
        if isinstance(value, Site):
            return value.pk
        rest = self.site_field.split("__")[1:]
        for part in rest:
            value = getattr(value, part, None)
            if value is None:
                return None
        return value.pk

    def save_model(self, request, obj, form, change):
        # The last line: whatever a form or a subclass did, a non-superuser writes only into their sites.
        if not can_manage(request.user, self._row_site_id(obj)):
            raise PermissionDenied("You can only save records of the sites you manage.")
        super().save_model(request, obj, form, change)

    def has_import_permission(self, request, *args, **kwargs):
        # django-import-export allows anyone by default; importing writes rows, so it needs add and change.
        return self.has_add_permission(request) and self.has_change_permission(request)

    def has_export_permission(self, request, *args, **kwargs):
        return self.has_view_permission(request)

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


class SuperuserEditsMixin(ExportSelectedMixin):
    """ModelAdmin mixin for deployment-wide tables: only superusers add, change or delete rows."""

    def has_add_permission(self, request, *args):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_import_permission(self, request, *args, **kwargs):
        return request.user.is_superuser

    def has_export_permission(self, request, *args, **kwargs):
        return self.has_view_permission(request)


# Who a site's admins are: its members who may change its AI settings (the demo's "Site admins" group;
# editors are members without it). They are whom a refusal names, and they control the site's batches.
SITE_ADMIN_PERMISSION = "integrations.change_aiprovidersettings"


def is_site_admin(user: Any, site_id: int | None) -> bool:
    """Whether `user` administers the site: a superuser, or a member holding SITE_ADMIN_PERMISSION."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return can_manage(user, site_id) and user.has_perm(SITE_ADMIN_PERMISSION)


def site_admins(site_ids: Any) -> QuerySet:
    """The active staff members of any of `site_ids` who hold SITE_ADMIN_PERMISSION (directly or by group),
    superusers not included: a tenant's own admins."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    app_label, codename = SITE_ADMIN_PERMISSION.split(".")
    permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename)
    return (
        get_user_model()
        .objects.filter(site_memberships__site_id__in=list(site_ids), is_active=True, is_staff=True)
        .filter(Q(user_permissions__in=permission) | Q(groups__permissions__in=permission))
        .distinct()
        .order_by("last_name", "first_name", "username")
    )
