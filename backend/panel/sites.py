"""The request's site, or None when its host names no site.

Django's `CurrentSiteMiddleware` raises `Site.DoesNotExist` for a host without a `Site` row, which
turns every request to such a host into a 500. Here that host gets `request.site = None`: the JSON
API answers it with its own error, the admin of a superuser still opens, and a view that needs the
site anyway (Django's login page asks for it) answers 404 instead of 500.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.sites.models import Site
from django.contrib.sites.shortcuts import get_current_site
from django.http import Http404, HttpRequest, HttpResponse


class CurrentSiteMiddleware:
    """Set `request.site` to the host's site or None. Replaces Django's; place before AISiteMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            request.site = get_current_site(request)
        except Site.DoesNotExist:
            request.site = None
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """A view that looked the unknown host's site up itself gets a 404, not a server error."""
        if isinstance(exception, Site.DoesNotExist) and getattr(request, "site", None) is None:
            raise Http404("No site is configured for this host.")
        return None
