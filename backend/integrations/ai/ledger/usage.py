"""The usage ledger: one `AIUsage` row per upstream attempt, success or failure, and per cache hit.

Providers report each attempt into the current call's collector (a context variable, so threads
and concurrent requests never mix); after the call the service hands the record to the ledger
writer (`ledger_writer`), which builds and writes the rows on its own thread (or through Redis),
so the caller's thread makes no query. `flush()` waits until everything handed over is written.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from integrations.ai.ledger.journal import call_key
from integrations.ai.ledger.rows import (  # noqa: F401  (re-exported: the ledger's API in one import)
    MILLION,
    SOURCES,
    Prices,
    cost_of,
    price_cost,
    price_results,
    row_fields,
    saved_by_cache,
    storable_text,
    total_cost,
)
from integrations.ai.ports import Attribution, Price, store  # noqa: F401  (Price re-exported)
from integrations.ai.sites.callers import current_id, current_user_id

if TYPE_CHECKING:
    from integrations.ai.providers.base import Attempt, GenerationResult

logger = logging.getLogger("integrations.ai")

_attribution: ContextVar[Attribution | None] = ContextVar("integrations_ai_attribution", default=None)


@contextlib.contextmanager
def attributed_to(obj: Any, label: str | None = None) -> Iterator[Attribution | None]:
    """Ledger rows of the AI calls made inside this block carry `obj` (a page, a template, ...).

    Callers keep their signatures: the gateway reads the attribution when it starts a call record.
    A saved model instance only; None (or an unsaved object) attributes nothing. Batch workers run
    on their own threads and do not inherit it.
    """
    attribution = None
    if obj is not None and getattr(obj, "pk", None) is not None:
        attribution = store().attribution(obj, label)
    token = _attribution.set(attribution)
    try:
        yield attribution
    finally:
        _attribution.reset(token)


def current_attribution() -> Attribution | None:
    return _attribution.get()


@contextlib.contextmanager
def carrying(attribution: Attribution | None) -> Iterator[None]:
    """Re-enter an attribution read on another thread (batch workers do not inherit context variables)."""
    token = _attribution.set(attribution)
    try:
        yield
    finally:
        _attribution.reset(token)


_item_attributions: ContextVar[tuple[Attribution | None, ...] | None] = ContextVar(
    "integrations_ai_item_attributions", default=None
)


@contextlib.contextmanager
def attributed_each(objs: Any) -> Iterator[tuple[Attribution | None, ...]]:
    """A batch started inside this block attributes its item i to `objs[i]` (a page per prompt, ...).

    `generate_batch` keeps its signature: it reads these when it starts, and each worker carries
    its own item's attribution (an item past the end, or a None, falls back to `attributed_to`'s).
    """
    attributions = []
    for obj in objs:
        with attributed_to(obj) as attribution:
            attributions.append(attribution)
    token = _item_attributions.set(tuple(attributions))
    try:
        yield tuple(attributions)
    finally:
        _item_attributions.reset(token)


def item_attributions() -> tuple[Attribution | None, ...]:
    """The per-item attributions set by `attributed_each` (empty outside one)."""
    return _item_attributions.get() or ()


@dataclass
class CallRecord:
    site_id: int | None
    service: str
    requested_model: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    # (provider, error) of a call the gateway refused before any upstream request (governance.refuse)
    refusal: tuple[str, Any] | None = None
    # the content the call was for (`attributed_to`), read when the record is made
    content: Attribution | None = field(default_factory=current_attribution)
    # when the call ended (`time.time()`, set when it is handed to the ledger): the rows' created_at
    ended_at: float | None = None
    # the virtual API key that made the call (`callers.acting_as`), read when the record is made
    api_key_id: int | None = field(default_factory=current_id)
    # the user the call was made for (`callers.acting_for`; a /v1 call: its key's creator), read when the record is made
    user_id: int | None = field(default_factory=current_user_id)
    # made with the record, before any attempt to hand it over: row i's ledger_key is f"{key}:{i}" on every
    # path (Redis, in-process, a direct write after a Redis push that timed out), so a row that reached the
    # database once is never written again (ledger_writer.write_rows skips keys it holds)
    key: str = field(default_factory=call_key)
    # the validated request (an AIRequest): an unpriced attempt is charged its worst-case estimate
    request: Any = None
    # what the site's guardrails did to the call ([{guardrail, outcome, detail}], `guardrails.actions`)
    guardrails: list[dict[str, str]] = field(default_factory=list)
    # the call settles its cost into the month's budget period itself (reserved there while Redis was down,
    # `governance.budget`): its rows are marked so the writer does not add their cost there again
    budget_settled: bool = False

    @property
    def size(self) -> tuple[int, int]:
        """(input characters, max_tokens) of the request, what a worst-case estimate is made of."""
        request = self.request
        if request is None:
            return 0, 0
        from integrations.ai.providers.conversation import for_estimate  # tools, tool results and images counted too

        messages = for_estimate(request, "", "")  # no vendor named: each image at the dearer vendor's rule
        chars = sum(len(m["content"]) for m in messages) + len(request.system_prompt or "")
        return chars, request.max_tokens


# Called with (record, prices, cached) as each call ends; observability adds its hook here when it is on,
# so the ledger imports nothing above it and costs nothing when nothing observes.
CALL_LISTENERS: list[Callable[[CallRecord, Prices, GenerationResult | None], None]] = []

_current: ContextVar[CallRecord | None] = ContextVar("integrations_ai_call", default=None)
_sink: ContextVar[list | None] = ContextVar("integrations_ai_ledger_sink", default=None)


@contextlib.contextmanager
def deferred(entries: list) -> Iterator[list]:
    """Collect calls into `entries` instead of writing them; `flush(entries)` writes them in one query.

    Batch workers use it so only the calling thread touches the database, and the row objects are
    only built when they are written.
    """
    token = _sink.set(entries)
    try:
        yield entries
    finally:
        _sink.reset(token)


def flush(entries: list | None = None, timeout: float | None = None) -> Any:
    """Without arguments: block until every call handed to the ledger so far is in the database.

    Tests and management commands call it before reading the ledger or exiting. Returns True when
    everything was written within `timeout` seconds (default `AI_LEDGER_FLUSH_TIMEOUT`).
    With `entries` (calls collected by `deferred`), the older form: build and write them now, on
    this thread, and return the saved rows.
    """
    if entries is None:
        from integrations.ai.ledger import writer as ledger_writer

        return ledger_writer.flush(timeout)
    rows = [row for entry in entries for row in row_fields(*entry)]
    entries.clear()
    return store().save_rows(rows)


def submit_deferred(entries: list, budget_settled: bool = False) -> Decimal:
    """Hand calls collected by `deferred` to the ledger writer; returns what they cost (for settling).
    `budget_settled`: their settlement adds the cost to the budget period (`CallRecord.budget_settled`)."""
    from integrations.ai.ledger import writer as ledger_writer

    spent = sum((total_cost(record, prices) for record, prices, _ in entries), Decimal(0))
    for entry in entries:
        entry[0].budget_settled = budget_settled
        ledger_writer.submit(entry)
    entries.clear()
    return spent


@contextlib.contextmanager
def collecting(
    site_id: int | None, service: str, requested_model: str = "", request: Any = None
) -> Iterator[CallRecord]:
    record = CallRecord(site_id=site_id, service=service, requested_model=requested_model, request=request)
    token = _current.set(record)
    try:
        yield record
    finally:
        _current.reset(token)


class recording:  # lower case: read as the function it replaced, `with usage.recording(record):`
    """Attempts made in the block go to `record` (set and reset in one context). A stream binds its record
    around each step it takes, so it records correctly whichever context resumes it (a WSGI server's
    thread, an event loop's task) — `collecting` held across yields would not. A class, not a generator
    context manager: a stream enters it once per chunk."""

    __slots__ = ("record", "token")

    def __init__(self, record: CallRecord) -> None:
        self.record = record

    def __enter__(self) -> CallRecord:
        self.token = _current.set(self.record)
        return self.record

    def __exit__(self, *exc: object) -> None:
        _current.reset(self.token)


def record_attempt(attempt: Attempt) -> None:
    record = _current.get()
    if record is not None:
        record.attempts.append(attempt)


def write_ledger(record: CallRecord, prices: Prices, cached: GenerationResult | None = None) -> list[Any]:
    """Hand the collected attempts (or one cache-hit row) to the ledger writer; no query, never raises."""
    if record.ended_at is None:
        record.ended_at = time.time()
    price_results(record, prices)
    for listener in CALL_LISTENERS:  # observability's hook when it is on (`observability.refresh`)
        listener(record, prices, cached)
    sink = _sink.get()
    if sink is not None:
        sink.append((record, prices, cached))
        return []
    from integrations.ai.ledger import writer as ledger_writer

    ledger_writer.submit((record, prices, cached))
    return []
