"""The request's site, or None when its host names no site.

Django's `CurrentSiteMiddleware` raises `Site.DoesNotExist` for a host without a `Site` row, which
turns every request to such a host into a 500. Here that host gets `request.site = None`: the JSON
API answers it with its own error, the admin of a superuser still opens, and a view that needs the
site anyway (Django's login page asks for it) answers 404 instead of 500.

The host's site is remembered per process by the exact host the request named. Django's own cache
misses on every request whose host carries a port ("127.0.0.1:8000" for a site "127.0.0.1": it
queries the full host, fails, then strips the port), which cost a query and an exception per API
call. Saving or deleting any site forgets every remembered host in this process, as Django's cache
does; other processes re-read a host after `HOST_TTL` seconds (Django's own cache never does), so a
site renamed or deleted elsewhere stops answering for its old host within that time. While the
database is unreachable a remembered host keeps its site, so warm sites go on serving through an outage.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.contrib.sites import models as site_models
from django.contrib.sites.models import Site
from django.contrib.sites.shortcuts import get_current_site
from django.db import DatabaseError
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save
from django.http import Http404, HttpRequest, HttpResponse

MAX_HOSTS = 1000  # hosts remembered per process; a flood of port variants cannot grow it without bound
HOST_TTL = 30.0  # seconds a remembered host is trusted before it is looked up again
_site_by_host: dict[str, tuple[Site | None, float]] = {}  # None: the host names no site


def forget_hosts(**_kwargs: object) -> None:
    """Drop every remembered host: a site was saved or deleted (its domain may have changed)."""
    _site_by_host.clear()


for _signal in (pre_save, post_save, pre_delete, post_delete):
    _signal.connect(forget_hosts, sender=Site, dispatch_uid="panel.sites.forget_hosts")


def site_for(request: HttpRequest) -> Site:
    """The request's site (Django's rules: the host with its port, then without); Site.DoesNotExist if none."""
    host = request.get_host()
    now = time.monotonic()
    remembered = _site_by_host.get(host)
    if remembered is None or remembered[1] <= now:
        django_cache = site_models.SITE_CACHE  # read each time: Site.objects.clear_cache() rebinds it
        django_cache.pop(host, None)  # it would answer from its own copy forever
        django_cache.pop(host.rsplit(":", 1)[0], None)
        try:
            site: Site | None = get_current_site(request)
        except Site.DoesNotExist:
            site = None  # remembered too: a host with no site (a /v1 client's) costs no query per request
        except DatabaseError:
            if remembered is None:
                raise
            site = remembered[0]  # the database is unreachable: the host's site as last known, until it answers
        if len(_site_by_host) >= MAX_HOSTS:
            _site_by_host.clear()
        remembered = _site_by_host[host] = (site, now + HOST_TTL)
    if remembered[0] is None:
        raise Site.DoesNotExist(f"No site is configured for the host {host!r}.")
    return remembered[0]


class CurrentSiteMiddleware:
    """Set `request.site` to the host's site or None. Replaces Django's; place before AISiteMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            request.site = site_for(request)
        except Site.DoesNotExist:
            request.site = None
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """A view that looked the unknown host's site up itself gets a 404, not a server error."""
        if isinstance(exception, Site.DoesNotExist) and getattr(request, "site", None) is None:
            raise Http404("No site is configured for this host.")
        return None
