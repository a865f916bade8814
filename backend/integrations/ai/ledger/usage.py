"""The usage ledger: one `AIUsage` row per upstream attempt, success or failure, and per cache hit.

Providers report each attempt into the current call's collector (a context variable, so threads
and concurrent requests never mix); after the call the service hands the record to the ledger
writer (`ledger_writer`), which builds and writes the rows on its own thread (or through Redis),
so the caller's thread makes no query. `flush()` waits until everything handed over is written.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from integrations.ai.governance.callers import current_id, current_user_id
from integrations.ai.ledger import pricing
from integrations.ai.ledger.journal import call_key
from integrations.ai.ledger.pricing import Price, PriceBook  # Price was defined here: callers import it from usage
from integrations.ai.observability import calls as observed

if TYPE_CHECKING:
    from integrations.ai.providers.base import Attempt, GenerationResult

logger = logging.getLogger("integrations.ai")

MILLION = Decimal(1_000_000)


# A PriceBook (overrides, then the genai-prices catalogue), or a plain {(provider, model): Price} table
Prices = PriceBook | dict[tuple[str, str], Price]


# (content type id, object id, label) of the content the current calls are for; see `attributed_to`
Attribution = tuple[int, int, str]
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
        from django.contrib.contenttypes.models import ContentType

        content_type = ContentType.objects.get_for_model(obj)
        text = label if label is not None else f"{obj._meta.verbose_name.capitalize()}: {obj}"
        attribution = (content_type.pk, int(obj.pk), text[:200])
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
    rows = [row for entry in entries for row in build_rows(*entry)]
    entries.clear()
    return save_rows(rows)


def submit_deferred(entries: list) -> Decimal:
    """Hand calls collected by `deferred` to the ledger writer; returns what they cost (for settling)."""
    from integrations.ai.ledger import writer as ledger_writer

    spent = sum((total_cost(record, prices) for record, prices, _ in entries), Decimal(0))
    for entry in entries:
        ledger_writer.submit(entry)
    entries.clear()
    return spent


def save_rows(rows: list) -> list:
    """Write ledger rows and their daily roll-ups; a failure is logged, never raised into a served answer."""
    from django.db import transaction

    from integrations.models import AIUsage
    from integrations.usage import rollups as usage_rollups

    if not rows:
        return []
    try:
        with transaction.atomic():
            saved = AIUsage.objects.bulk_create(rows)
            usage_rollups.add(saved)
        return saved
    except Exception:
        logger.exception("could not write %d AI usage rows", len(rows))
        return []


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


def record_attempt(attempt: Attempt) -> None:
    record = _current.get()
    if record is not None:
        record.attempts.append(attempt)


def price_cost(prices: Prices, result: GenerationResult) -> Decimal | None:
    """The price resolution's cost of one result (`pricing`), cache reads and writes at their own prices.

    prompt_tokens holds every input token, cached_tokens and cache_write_tokens are parts of it;
    reasoning tokens are part of completion_tokens (never added twice). None when unpriced.
    """
    return pricing.cost(
        pricing.resolve(prices, result.provider, result.model),
        result.prompt_tokens,
        result.completion_tokens,
        result.cached_tokens,
        result.cache_write_tokens,
        result.reasoning_tokens,
    )


def saved_by_cache(price: tuple | None, cached_tokens: int) -> Decimal:
    """What reading `cached_tokens` from the vendor's prompt cache saved against the prompt price."""
    if price is None or not cached_tokens:
        return Decimal(0)
    price = Price(*price)
    if price.cache_read is None:
        return Decimal(0)
    return (price.prompt - price.cache_read) * cached_tokens / MILLION


# ledger cost sources of a priced result: the resolution's source -> the ledger's word
SOURCES = {"override": "price_table", "catalogue": "catalogue", "free": "free"}


def cost_of(
    prices: Prices, result: GenerationResult, size: tuple[int, int] | None = None
) -> tuple[Decimal | None, str]:
    """The call's cost: what the provider reported, else the price resolution's (override, free endpoint,
    catalogue), else unpriced: with `size` (input characters, max_tokens) the worst-case estimate that is
    charged, never zero; without it None."""
    if result.cost is not None:
        return result.cost, "reported"
    resolution = pricing.resolve(prices, result.provider, result.model)
    if resolution.price is not None:
        priced = pricing.cost(
            resolution,
            result.prompt_tokens,
            result.completion_tokens,
            result.cached_tokens,
            result.cache_write_tokens,
            result.reasoning_tokens,
        )
        return priced, SOURCES[resolution.source]
    return (pricing.estimate(None, *size) if size is not None else None), "unpriced"


def total_cost(record: CallRecord, prices: Prices) -> Decimal:
    """What the call's successful attempts cost; an unpriced one counts its worst-case estimate."""
    total = Decimal(0)
    for attempt in record.attempts:
        if attempt.result is not None:
            cost, _ = cost_of(prices, attempt.result, record.size)
            total += cost or Decimal(0)
    return total


def write_ledger(record: CallRecord, prices: Prices, cached: GenerationResult | None = None) -> list[Any]:
    """Hand the collected attempts (or one cache-hit row) to the ledger writer; no query, never raises."""
    if record.ended_at is None:
        record.ended_at = time.time()
    observed.call_ended(record, prices, cached)
    sink = _sink.get()
    if sink is not None:
        sink.append((record, prices, cached))
        return []
    from integrations.ai.ledger import writer as ledger_writer

    ledger_writer.submit((record, prices, cached))
    return []


def _utc(timestamp: float | None) -> datetime.datetime | None:
    """An aware UTC datetime for a `time.time()` value; None (a record never handed over) means "now"."""
    return None if timestamp is None else datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)


def row_fields(record: CallRecord, prices: Prices, cached: GenerationResult | None = None) -> list[dict[str, Any]]:
    """The ledger rows of one call as plain field values (what the writer saves or Redis carries)."""
    rows: list[dict[str, Any]] = []
    link: dict[str, Any] = {"created_at": _utc(record.ended_at)}
    if record.api_key_id is not None:
        link["api_key_id"] = record.api_key_id
    if record.user_id is not None:
        link["user_id"] = record.user_id
    if record.content is not None:
        link |= {
            "content_type_id": record.content[0],
            "object_id": record.content[1],
            "content_label": record.content[2],
        }
    if cached is not None:
        rows.append(
            {
                "site_id": record.site_id,
                "service": record.service,
                "provider": cached.provider,
                "requested_model": record.requested_model or (cached.requested_model or ""),
                "served_model": cached.model,
                "prompt_tokens": cached.prompt_tokens,
                "completion_tokens": cached.completion_tokens,
                "total_tokens": cached.total_tokens,
                "reasoning_tokens": cached.reasoning_tokens,
                "cost": Decimal(0),
                "cost_source": "cache",
                "saved_cost": cost_of(prices, cached)[0] or Decimal(0),
                "latency_ms": int(cached.latency_ms),
                "status": "cached",
                "cache_hit": True,
                "request_id": (cached.request_id or "")[:200],
                **link,
            }
        )
    if record.refusal is not None:
        provider, error = record.refusal
        rows.append(
            {
                "site_id": record.site_id,
                "service": record.service,
                "provider": provider,
                "requested_model": record.requested_model,
                "served_model": "",
                "attempt": 0,
                "cost": Decimal(0),
                "status": "refused",
                "error_class": type(error).__name__,
                "error_message": str(error)[:500],
                **link,
            }
        )
    for attempt in record.attempts:
        result, error = attempt.result, attempt.error
        row: dict[str, Any] = {
            "site_id": record.site_id,
            "service": record.service,
            "provider": attempt.provider,
            "requested_model": record.requested_model or attempt.model,
            "served_model": attempt.model,
            "attempt": attempt.number,
            "latency_ms": int(attempt.latency_ms),
            **link,
        }
        if result is not None:  # a success, or the part of a stream delivered before it broke
            cost, source = cost_of(prices, result, record.size)
            row.update(
                served_model=result.model,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                total_tokens=result.total_tokens,
                cached_tokens=result.cached_tokens,
                cache_write_tokens=result.cache_write_tokens,
                reasoning_tokens=result.reasoning_tokens,
                cost=cost,
                cost_source=source,
                status="ok",
                saved_cost=saved_by_cache(
                    pricing.resolve(prices, result.provider, result.model).price, result.cached_tokens
                ),
                request_id=(result.request_id or "")[:200],
            )
        if error is not None:
            row.update(
                status="error",
                error_class=type(error).__name__,
                error_message=str(error)[:500],
                request_id=(getattr(error, "request_id", None) or row.get("request_id") or "")[:200],
            )
        rows.append(row)
    for index, row in enumerate(rows):
        row["ledger_key"] = f"{record.key}:{index}"
        for name, value in row.items():  # vendor-supplied text (served model, request id, error message) too
            if isinstance(value, str) and not (value.isascii() and "\x00" not in value):
                row[name] = storable_text(value)
    return rows


def storable_text(text: str) -> str:
    """`text` as every database stores it: NUL (PostgreSQL refuses it) and unpaired surrogates (not
    encodable as UTF-8) replaced by U+FFFD. Callers' input is refused before this (`check_text`); this
    keeps what a vendor sent back from making a row unstorable."""
    text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def build_rows(record: CallRecord, prices: Prices, cached: GenerationResult | None = None) -> list[Any]:
    """Unsaved `AIUsage` objects for one call."""
    from integrations.models import AIUsage

    return [AIUsage(**fields) for fields in row_fields(record, prices, cached)]
