"""Refusals inside the admin: what was refused, what it needs, and whom to ask.

Every `PermissionDenied` under /admin/ (Django's own checks and ours) is rendered by `permission_denied`
(panel/urls.py's handler403) in the admin's layout, with status 403, instead of a bare "403 Forbidden".
A view that knows exactly what is missing raises `refuse(needed)`; otherwise the need is read from the
admin URL that was refused (`pages_page_add` -> "permission to add pages"). The people to ask are the
site admins of the user's sites (`tenancy.access.site_admins`), never another tenant's.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.apps import apps
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import Resolver404, resolve
from django.views import defaults

from tenancy.access import site_admins, site_ids_for

VERBS = {"add": "add", "change": "change", "delete": "delete", "changelist": "view", "history": "view"}
# Admin screens of their own, not a model's add/change/list, and what they take.
NEEDS = {
    "integrations_aiprovidersettings_test": "permission to change this site's AI provider settings "
    "(the test screen uses the site's keys and spends its budget)",
    "integrations_aiprovidersettings_test_stream": "permission to change this site's AI provider settings "
    "(the test screen uses the site's keys and spends its budget)",
    "integrations_aiusage_dashboard": "permission to view AI usage",
    "integrations_aiusage_dashboard_csv": "permission to view AI usage",
    "integrations_batchjob_cancel": "to have started this batch, or to be an admin of its site",
    "integrations_batchjob_retry": "to have started this batch (with the permissions its work needs), "
    "or to be an admin of its site",
}


class Refused(PermissionDenied):
    """A refusal that says what it needs ("permission to add pages")."""

    def __init__(self, needed: str) -> None:
        super().__init__(needed)
        self.needed = needed


def refuse(needed: str) -> NoReturn:
    """Refuse the request, saying what it needs; rendered in the admin's layout with status 403."""
    raise Refused(needed)


def needed_for(request: HttpRequest, exception: Exception | None = None) -> str:
    """What the refused request needed: the refusal's own words, else read from the admin URL's name."""
    if isinstance(exception, Refused):
        return exception.needed
    try:
        name = resolve(request.path_info).url_name or ""
    except Resolver404:
        return "a permission you do not have"
    if name in NEEDS:
        return NEEDS[name]
    for model in apps.get_models():
        prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
        if name.startswith(prefix):
            action = name[len(prefix) :]
            verb = VERBS.get(action, "change")
            return f"permission to {verb} {model._meta.verbose_name_plural}"
    return "a permission you do not have"


def is_admin_request(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return (
        request.path_info.startswith("/admin/")
        and user is not None
        and user.is_authenticated
        and user.is_active
        and user.is_staff
    )


def whom_to_ask(user: Any) -> list[Any]:
    """The admins of the user's own sites (not the user); empty for superusers and users of no site."""
    ids = site_ids_for(user)
    if not ids:
        return []
    return [admin_user for admin_user in site_admins(ids) if admin_user.pk != user.pk]


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler403: under /admin/ for a staff user, the refusal page in the admin's layout; else Django's."""
    if not is_admin_request(request):
        return defaults.permission_denied(request, exception)
    context = {
        **admin.site.each_context(request),
        "title": "You cannot do this here",
        "needed": needed_for(request, exception),
        # a plain PermissionDenied("...") of a check that says why (e.g. saving into another site)
        "detail": "" if isinstance(exception, Refused) or exception is None else str(exception),
        "ask": whom_to_ask(request.user),
        "refused_path": request.path,
    }
    return render(request, "admin/refused.html", context, status=403)
