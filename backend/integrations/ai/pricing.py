"""Where a call's price comes from: one resolution for estimates, settlements and the ledger.

Order, per (provider name, model id the vendor answered with):

1. **override** - a `ModelPrice` row (the deployment's own price; reaches the gateway through the site
   settings snapshot, so this module imports no Django model);
2. **free** - a named OpenAI-compatible endpoint the deployment marked `"free": true` in `AI_ENDPOINTS`
   (a local Ollama);
3. **catalogue** - pydantic's `genai-prices` package (pinned; its bundled snapshot, no network): the
   provider's id, or for a named endpoint the provider its base URL belongs to (Together, Groq, ...),
   matched the way the package matches (dated snapshots, `-latest` aliases, `vendor/model` ids);
4. **unpriced** - none of these: never zero; the caller charges the call's worst-case estimate
   (`unpriced_estimate`) and the ledger says `unpriced`.

A vendor-reported cost (OpenRouter's `usage.cost`) wins over all of them (`usage.cost_of`).

The catalogue's flat per-token prices are evaluated here with the package's rules (cache reads and
writes and reasoning tokens are parts of the input and output totals, each priced by its own key when
the entry has one, else at the input/output price), checked once per entry against the package's own
evaluation; an entry with tiers, or where the two differ, is evaluated by the package itself
(`ModelPrice.calc_price`: ~0.3 ms, too slow for every call on the caller's thread).
"""

from __future__ import annotations

import datetime
import re
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from integrations.ai.ports import Price

MILLION = Decimal(1_000_000)
# Providers whose name is a genai-prices provider id as is.
CATALOGUE_IDS = {"openai": "openai", "anthropic": "anthropic", "openrouter": "openrouter"}
_FLAT_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok", "output_reasoning_mtok")
_MEMO_SECONDS = 3600.0
_SUFFIX = re.compile(
    r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-latest)$"
)  # catalogue entries change by date (conditional prices): re-resolve hourly


@dataclass(frozen=True)
class Resolution:
    """How one (provider, model) is priced: `source` override | free | catalogue | unpriced."""

    source: str
    entry: str = ""  # which entry: "ModelPrice openai:gpt-4o-mini", "genai-prices openai:gpt-4o-mini"
    price: Price | None = None  # per-million prices (the worst tier of a tiered entry): estimates, display
    exact: Any = None  # a catalogue entry the package must evaluate itself (tiers, other units)

    @property
    def priced(self) -> bool:
        return self.price is not None


UNPRICED = Resolution("unpriced")


def catalogue_version() -> str:
    from importlib.metadata import version

    return f"genai-prices {version('genai-prices')}"


def _snapshot() -> Any:
    from genai_prices.data_snapshot import get_snapshot

    return get_snapshot()


def _flat(model_price: Any) -> tuple[Price, bool]:
    """(per-million prices, whether this module's arithmetic gives the package's result for the entry).

    The arithmetic is checked once per entry against the package's own evaluation on a probe usage with
    every token kind we report; an entry with tiers, per-request fees or token kinds that change the result
    is left to the package.
    """
    from genai_prices.types import TieredPrices

    values: dict[str, Decimal | None] = {}
    exact = True
    for key in _FLAT_KEYS:
        value = getattr(model_price, key, None)
        if isinstance(value, TieredPrices):
            exact = False
            value = max([value.base, *(tier.price for tier in value.tiers)])  # worst case for estimates
        values[key] = value
    price = Price(
        values["input_mtok"] or Decimal(0),
        values["output_mtok"] or Decimal(0),
        values["cache_read_mtok"],
        values["cache_write_mtok"],
        values["output_reasoning_mtok"],
    )
    if exact:
        exact = _arithmetic(price, *_PROBE) == _package(model_price, *_PROBE)
    return price, exact


# input, output, cache read, cache write, reasoning tokens: distinct, so a price applied to the wrong kind shows
_PROBE = (100_003, 20_011, 30_013, 4_019, 5_021)


def _package(model_price: Any, prompt: int, completion: int, read: int, written: int, reasoning: int) -> Decimal | None:
    from genai_prices import Usage

    usage = Usage(
        input_tokens=prompt,
        cache_read_tokens=read,
        cache_write_tokens=written,
        output_tokens=completion,
        output_reasoning_tokens=reasoning,
    )
    try:
        return Decimal(model_price.calc_price(usage)["total_price"])
    except ValueError:  # usage the entry cannot price (the package's own validation)
        return None


def _arithmetic(price: Price, prompt: int, completion: int, read: int, written: int, reasoning: int) -> Decimal:
    read_price = price.prompt if price.cache_read is None else price.cache_read
    write_price = price.prompt if price.cache_write is None else price.cache_write
    if price.reasoning is None:
        output = price.completion * completion
    else:
        output = price.completion * (completion - reasoning) + price.reasoning * reasoning
    return (price.prompt * (prompt - read - written) + read_price * read + write_price * written + output) / MILLION


def lookup(provider_id: str | None, model: str, api_url: str | None = None) -> Resolution:
    """The catalogue's entry for a model (by provider id, else by the provider's API URL), or UNPRICED."""
    snapshot = _snapshot()
    try:
        provider, info = snapshot.find_provider_model(model, None, provider_id, None if provider_id else api_url)
    except LookupError:
        return UNPRICED
    model_price = info.get_prices(datetime.datetime.now(tz=datetime.UTC))
    price, exact = _flat(model_price)
    return Resolution("catalogue", f"genai-prices {provider.id}:{info.id}", price, None if exact else model_price)


@dataclass
class PriceBook:
    """The prices a site's calls resolve through: overrides, free endpoints, the catalogue.

    Built with the site snapshot; `resolve` is memoised, so after the first call of a model it is a dict
    lookup. `get((provider, model))` keeps the old price-table reading (the per-million prices or None).
    """

    overrides: dict[tuple[str, str], Price] = field(default_factory=dict)
    # named endpoints: name -> (kind, base URL, free)
    endpoints: dict[str, tuple[str, str, bool]] = field(default_factory=dict)
    _memo: dict[tuple[str, str], tuple[float, Resolution]] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def resolve(self, provider: str, model: str) -> Resolution:
        key = (provider, model)
        hit = self._memo.get(key)
        now = time.monotonic()
        if hit is not None and now < hit[0]:
            return hit[1]
        resolution = self._resolve(provider, model)
        with self._lock:
            if len(self._memo) > 4096:
                self._memo.clear()
            self._memo[key] = (now + _MEMO_SECONDS, resolution)
        return resolution

    def _resolve(self, provider: str, model: str) -> Resolution:
        override = self._override(provider, model)
        if override is not None:
            return override
        endpoint = self.endpoints.get(provider)
        if endpoint is not None:
            kind, base_url, free = endpoint
            if free:
                return Resolution("free", f"AI_ENDPOINTS {provider} (free)", Price(Decimal(0), Decimal(0)))
            return lookup(CATALOGUE_IDS.get(kind), model, base_url or None) if base_url else UNPRICED
        return self._catalogue(provider, model)

    def _catalogue(self, provider: str, model: str) -> Resolution:
        kind, base_url, _ = self.endpoints.get(provider, (provider, "", False))
        if kind in CATALOGUE_IDS and provider not in self.endpoints:
            return lookup(CATALOGUE_IDS[kind], model)
        return lookup(None, model, base_url) if base_url else UNPRICED

    def _override(self, provider: str, model: str) -> Resolution | None:
        """The deployment's price for this id, or for the id it is a snapshot or alias of: an override of
        `gpt-4o-mini` also prices `gpt-4o-mini-2024-07-18` (the same catalogue entry, or the id without
        its date or `-latest` suffix)."""
        for candidate in (model, _SUFFIX.sub("", model)):
            price = self.overrides.get((provider, candidate))
            if price is not None:
                return Resolution("override", f"ModelPrice {provider}:{candidate}", Price(*price))
        entry = self._catalogue(provider, model).entry
        if entry:
            for (other_provider, other_model), price in self.overrides.items():
                if other_provider == provider and self._catalogue(provider, other_model).entry == entry:
                    return Resolution("override", f"ModelPrice {provider}:{other_model}", Price(*price))
        return None

    def get(self, key: tuple[str, str], default: Price | None = None) -> Price | None:
        price = self.resolve(*key).price
        return default if price is None else price

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and self.resolve(*key).priced


def resolve(prices: Any, provider: str, model: str) -> Resolution:
    """`prices` is a PriceBook, or a plain {(provider, model): Price} table (overrides only)."""
    if isinstance(prices, PriceBook):
        return prices.resolve(provider, model)
    price = prices.get((provider, model)) if prices else None
    return Resolution("override", f"ModelPrice {provider}:{model}", Price(*price)) if price is not None else UNPRICED


def cost(
    resolution: Resolution,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> Decimal | None:
    """What the tokens cost at this resolution (None when unpriced).

    `prompt_tokens` is every input token, cache reads and writes are parts of it; reasoning tokens are
    part of `completion_tokens` (never added twice).
    """
    price = resolution.price
    if price is None:
        return None
    read = min(max(cached_tokens, 0), prompt_tokens)
    written = min(max(cache_write_tokens, 0), prompt_tokens - read)
    reasoning = min(max(reasoning_tokens, 0), completion_tokens)
    if resolution.exact is not None:
        exact = _package(resolution.exact, prompt_tokens, completion_tokens, read, written, reasoning)
        if exact is not None:
            return exact
    return _arithmetic(price, prompt_tokens, completion_tokens, read, written, reasoning)


def estimate(price: Price | tuple[Decimal, ...] | None, input_chars: int, max_tokens: int) -> Decimal:
    """Worst case of one call at `price` (None: the deployment's price for unpriced models):
    ~1 token per 3 characters of input, every allowed output token."""
    if price is None:
        price = unpriced_price()
    prompt_tokens = input_chars // 3 + 16
    return (Decimal(price[0]) * prompt_tokens + Decimal(price[1]) * max_tokens) / MILLION


def unpriced_price() -> Price:
    """Per-million prices an unpriced call is estimated (and charged) at: `AI_UNPRICED_PRICE`."""
    from integrations.ai.runtime.conf import unpriced_price as configured

    prompt, completion = configured()
    return Price(prompt, completion)


def _num(value: Decimal) -> str:
    """1.000000 -> 1, 0.150 -> 0.15 (stored overrides carry six places)."""
    text = f"{Decimal(value).normalize():f}"
    return text


def describe(resolution: Resolution) -> str:
    """One line for people: the source, the entry and the per-million prices."""
    price = resolution.price
    if price is None:
        return "unpriced: no override, no catalogue entry (calls are charged their worst-case estimate)"
    parts = [f"prompt ${_num(price.prompt)}/M", f"completion ${_num(price.completion)}/M"]
    for name, value in (
        ("cache read", price.cache_read),
        ("cache write", price.cache_write),
        ("reasoning", price.reasoning),
    ):
        if value is not None:
            parts.append(f"{name} ${_num(value)}/M")
    tiers = " (evaluated by genai-prices itself: tiers or other units; the highest tier shown)"
    tiers = tiers if resolution.exact is not None else ""
    return f"{resolution.source}: {resolution.entry}; {', '.join(parts)}{tiers}"


def catalogue_entries(
    provider_ids: tuple[str, ...] = tuple(CATALOGUE_IDS.values()),
) -> list[tuple[str, str, str, Price]]:
    """(provider id, model id, name, per-million prices) of the catalogue's models of these providers."""
    now = datetime.datetime.now(tz=datetime.UTC)
    rows = []
    for provider in _snapshot().providers:
        if provider.id not in provider_ids:
            continue
        for info in provider.models:
            price, _ = _flat(info.get_prices(now))
            rows.append((provider.id, info.id, info.name or info.id, price))
    return rows
