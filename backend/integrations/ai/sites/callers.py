"""Who is calling: a site's virtual API key, and the editor (user), each one more governance scope.

The `/v1` endpoints run each call `acting_as(key)`. The gateway then treats the key like the site,
with the same mechanisms: `governance.admit` counts the call against the key's own requests and
tokens per minute (`ratelimit`, keyed by the key) and its monthly budget (one more budget window,
`budget_windows`); `governance.candidate_refusal` refuses a model outside the key's allowed models;
and every ledger row of the call carries the key's id (`usage.CallRecord.api_key_id`). A context
variable, like the ledger's content attribution, so `AIService` keeps its signatures.

The editor works the same way (issue 27): the Django side runs a user's calls `acting_for(Editor(...))`
(the admin's middleware, the JSON API's token user, a batch job's starter; `integrations.usage.editors`),
every ledger row carries the user's id (`usage.CallRecord.user_id`; a /v1 call carries its key's creator),
and `governance.admit` applies the editor's quota of the call's site: its requests per minute (`ratelimit`,
scope `EditorLimits.rate_scope`) and its monthly cap (a `budget_windows` window of the user's spend). The
quota itself comes with the site's snapshot (`SiteSnapshot.editor_quotas`, built from the `EditorQuota`
rows on the Django side), so admission reads no table and this module stays free of models.

This module imports nothing of Django's: the gateway imports it on every call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from integrations.ai.providers.errors import PolicyViolation
from integrations.ai.sites import policy


@dataclass(frozen=True)
class KeyScope:
    """The limits of one virtual key, frozen when its row was read (see integrations.api.v1.keys)."""

    id: int
    site_id: int
    name: str
    last4: str
    monthly_budget: Decimal | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    allowed_models: tuple[str, ...] = ()
    user_id: int | None = None  # the user who made the key: its calls' ledger rows name them

    @property
    def label(self) -> str:
        """How messages name the key: its name and last four characters, never more of it."""
        return f"“{self.name}” (…{self.last4})" if self.name else f"…{self.last4}"

    @property
    def rate_scope(self) -> str:
        """The key's rate-limit counters' scope (a site's are its id)."""
        return f"key{self.id}"

    def model_allowed(self, *names: str | None) -> bool:
        return policy.model_allowed(self.allowed_models, *names)

    def refusal(self, provider: Any, model: str | None) -> PolicyViolation | None:
        """Why this key may not call `model` on `provider`, or None (the site's matching rule, `policy`)."""
        return policy.model_refusal(
            self.allowed_models,
            provider,
            model,
            who=f"The API key {self.label}",
            rule="api_key.allowed_models",
            listed="its allowed models",
        )


_current: ContextVar[KeyScope | None] = ContextVar("integrations_ai_caller", default=None)


@contextlib.contextmanager
def acting_as(key: KeyScope | None) -> Iterator[KeyScope | None]:
    """AI calls made inside this block are the key's: its limits apply and the ledger names it."""
    token = _current.set(key)
    try:
        yield key
    finally:
        _current.reset(token)


def current() -> KeyScope | None:
    return _current.get()


def current_id() -> int | None:
    key = _current.get()
    return key.id if key is not None else None


@dataclass(frozen=True)
class Editor:
    """The user an AI call is made for (an admin screen's user, an API token's user, a batch's starter)."""

    user_id: int
    name: str = ""

    @property
    def label(self) -> str:
        return f"“{self.name}”" if self.name else f"#{self.user_id}"


@dataclass(frozen=True)
class EditorLimits:
    """One editor's quota on one site (`EditorQuota`, resolved per user in the site's snapshot)."""

    monthly_budget: Decimal | None = None
    requests_per_minute: int | None = None
    source: str = ""  # "own quota" or "quota of the group “Editors”": what a refusal names

    def rate_scope(self, site_id: int | None, user_id: int) -> str:
        """The editor's rate-limit counters on this site (a site's are its id, a key's `key<id>`)."""
        return f"site{site_id}:user{user_id}"


# An Editor, or a zero-argument callable giving one (or None): the admin's middleware hands over
# `request.user` lazily, so a request that makes no AI call never loads its user for this.
_editor: ContextVar[Editor | Callable[[], Editor | None] | None] = ContextVar("integrations_ai_editor", default=None)


@contextlib.contextmanager
def acting_for(editor: Editor | Callable[[], Editor | None] | None) -> Iterator[None]:
    """AI calls made inside this block are `editor`'s: their quota applies and the ledger names them."""
    token = _editor.set(editor)
    try:
        yield
    finally:
        _editor.reset(token)


def current_editor() -> Editor | None:
    """The calling editor (a lazy one resolved now, once), or None."""
    editor = _editor.get()
    if editor is None or isinstance(editor, Editor):
        return editor
    resolved = editor()
    _editor.set(resolved)
    return resolved


def current_user_id() -> int | None:
    """The user the ledger names: the editor, else the calling virtual key's creator, else None."""
    editor = current_editor()
    if editor is not None:
        return editor.user_id
    key = _current.get()
    return key.user_id if key is not None else None
