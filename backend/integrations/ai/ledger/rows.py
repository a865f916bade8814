"""Where a ledger row is built: what a call cost (reported by the provider, else the price resolution's:
overrides, free endpoints, the genai-prices catalogue; unpriced calls at their worst case) and the rows of
one call as plain `AIUsage` field values, which the writer queues, journals or carries through Redis and the
Django side's store (`integrations.ai.ports.Store`) inserts.

May import ports, pricing and providers only (no Django): the rows are dicts, not model instances.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from integrations.ai import pricing
from integrations.ai.ports import Price, PriceOverrides
from integrations.ai.pricing import PriceBook

if TYPE_CHECKING:
    from integrations.ai.ledger.usage import CallRecord
    from integrations.ai.providers.base import GenerationResult

MILLION = Decimal(1_000_000)

# A PriceBook (overrides, then the genai-prices catalogue), or a plain {(provider, model): Price} table
Prices = PriceBook | PriceOverrides


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
        return result.cost, result.cost_source or "reported"
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


def price_results(record: CallRecord, prices: Prices) -> None:
    """Give each attempt's result the cost (and its source) its ledger row records, before the record is
    handed over: callers read the ledger's figure from the result (`GenerationResult.cost`), and the
    writer, on its own thread, reads the same one."""
    for attempt in record.attempts:
        result = attempt.result
        if result is not None and result.cost_source is None:
            cost, source = cost_of(prices, result)
            if cost is None:  # unpriced: its worst case (the request's size is only counted for these)
                cost, source = cost_of(prices, result, record.size)
            result.cost, result.cost_source = cost, source


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
    if record.guardrails:
        link["guardrails"] = list(record.guardrails)
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
                # StreamCancelled: the caller went away mid-stream
                status="cancelled" if getattr(error, "code", "") == "cancelled" else "error",
                error_class=type(error).__name__,
                error_message=str(error)[:500],
                request_id=(getattr(error, "request_id", None) or row.get("request_id") or "")[:200],
            )
        rows.append(row)
    for index, row in enumerate(rows):
        row["ledger_key"] = f"{record.key}:{index}"
        if record.budget_settled:  # not a column: the store adds no cost of it to the budget period
            row["budget_settled"] = True
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
