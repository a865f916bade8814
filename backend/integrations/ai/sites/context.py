"""The site the AI layer is working for, when a caller does not pass one.

`CurrentSiteMiddleware` (Django's) puts `request.site` on the request; our middleware copies it
into a context variable for the request's duration, so services deep in a call stack resolve
the right tenant without threading `site` through every signature.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from integrations.ai.runtime import conf

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

_current_site_id: ContextVar[int | None] = ContextVar("integrations_ai_site_id", default=None)


def site_id_of(site: Any) -> int | None:
    """Accept a Site, a site id, or None (the current site, else SITE_ID, else none)."""
    if site is None:
        current = _current_site_id.get()
        if current is not None:
            return current
        return conf.default_site_id()
    if isinstance(site, int):
        return site
    return site.pk


@contextlib.contextmanager
def use_site(site: Any) -> Iterator[None]:
    token = _current_site_id.set(site_id_of(site) if site is not None else None)
    try:
        yield
    finally:
        _current_site_id.reset(token)


class AISiteMiddleware:
    """Make the request's site the AI layer's current site. Place after CurrentSiteMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        site = getattr(request, "site", None)
        token = _current_site_id.set(getattr(site, "pk", None))
        try:
            return self.get_response(request)
        finally:
            _current_site_id.reset(token)
