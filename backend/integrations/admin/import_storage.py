"""The admin import's uploaded file is only ever read back by the session that uploaded it.

django-import-export keeps an uploaded file between the preview and the confirm step under the
name `import_file_name`, a form field the browser posts back. Its default storage is the temp
folder, so a site admin who posted another name could have a file of the server's temp directory
read and deleted. The deployment stores these files in the cache (`IMPORT_EXPORT_TMP_STORAGE_CLASS`,
panel/settings.py: no file system path at all), and this mixin only accepts a name the same
session was given by its own preview step.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest

SESSION_KEY = "integrations_import_files"
KEPT = 10  # previews a session may have open at once


class SessionBoundImportMixin:
    """For an `ImportMixin` admin: the confirm step takes only a file name this session's preview made."""

    def import_action(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        response = super().import_action(request, **kwargs)  # type: ignore[misc]
        form = (getattr(response, "context_data", None) or {}).get("confirm_form")
        if form is not None and form.initial.get("import_file_name"):
            names = [*request.session.get(SESSION_KEY, [])[-(KEPT - 1) :], form.initial["import_file_name"]]
            request.session[SESSION_KEY] = names
        return response

    def process_import(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        name = request.POST.get("import_file_name", "")
        names = request.session.get(SESSION_KEY, [])
        if not self.has_import_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied  # first, as django-import-export's own view does
        if request.method == "POST" and name not in names:
            return HttpResponseBadRequest(
                "This import file was not uploaded in this session, or its preview has expired: upload it again."
            )
        response = super().process_import(request, **kwargs)  # type: ignore[misc]
        if name in names:
            request.session[SESSION_KEY] = [n for n in names if n != name]
        return response
