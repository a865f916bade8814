"""Which editor an AI call is made for, set on the Django side (issue 27).

The gateway reads the editor from a context variable (`integrations.ai.sites.callers.acting_for`);
this module sets it where a user is known: `AIEditorMiddleware` for the admin screens (the request's
user, resolved only when a call is made), `editor_of` for the JSON API's token user and a batch
job's starter (`integrations.jobs.runner.run_job`, which Celery tasks and in-process threads run).
The ledger then names the user on every row, and the user's `EditorQuota` of the site applies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from integrations.ai.sites.callers import Editor, acting_for

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse


def editor_of(user: Any) -> Editor | None:
    """The `Editor` for a user object or a user id (None for no user, or an anonymous one)."""
    if user is None:
        return None
    if isinstance(user, int):
        return Editor(user)
    if not getattr(user, "is_authenticated", False):
        return None
    return Editor(user.pk, user.get_username())


class AIEditorMiddleware:
    """AI calls made while handling a request are its logged-in user's. Place after AuthenticationMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        def editor() -> Editor | None:  # lazy: no query unless a call is made
            return editor_of(getattr(request, "user", None))

        with acting_for(editor):
            response = self.get_response(request)
        if getattr(response, "streaming", False) and not getattr(response, "is_async", False):
            # A streamed answer's generator runs after this returns (the test screen, editors' streaming
            # screens): each chunk is produced as the editor too, so their quota and the ledger hold there.
            response.streaming_content = carrying(response.streaming_content, editor)
        return response


def carrying(chunks: Iterable[Any], editor: Editor | Callable[[], Editor | None] | None) -> Iterator[Any]:
    """`chunks`, each produced inside `acting_for(editor)` (set and reset around every step, so the
    consumer may resume it from any context)."""
    iterator = iter(chunks)
    while True:
        with acting_for(editor):
            try:
                chunk = next(iterator)
            except StopIteration:
                return
        yield chunk
