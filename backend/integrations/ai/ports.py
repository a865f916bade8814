"""The one interface between the gateway and the Django side: what the gateway needs from the database.

The gateway (`integrations.ai`) never imports Django models. It reads a site's settings, credentials,
model mappings and prices, the spend recorded in the ledger, and hands ledger rows over, through
the `Store` below; the Django side implements it once (`integrations.store.DjangoStore`) and installs
it when the app is ready (`integrations.apps`). What crosses is plain values: the records here, and
ledger rows as dicts of `AIUsage` field values (`integrations.ai.ledger.rows.row_fields`).

May import only the standard library: this module is the bottom of the gateway, under everything but `providers`.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple, Protocol


class Price(NamedTuple):
    """USD per million tokens of one model; empty cache/reasoning prices mean the prompt/completion price."""

    prompt: Decimal
    completion: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None


PriceOverrides = dict[tuple[str, str], Price]  # (provider, model) -> the price a deployment set (ModelPrice)

# (content type id, object id, label) of the content a call is for (`ledger.usage.attributed_to`)
Attribution = tuple[int, int, str]


@dataclass(frozen=True)
class CredentialRecord:
    """One of a site's provider credential rows, as plain values."""

    provider: str
    label_name: str  # the provider for a direct provider's row, the endpoint's name for a named one
    api_key: str
    base_url: str
    default_model: str
    enabled: bool


@dataclass(frozen=True)
class SiteRecord:
    """A site's AI provider settings row, as plain values (what `sites.site_config` builds a snapshot from)."""

    enabled: bool
    provider_type: str
    monthly_budget: Decimal | None
    fallback_chain: Any
    openrouter_fallback_models: Any
    openrouter_routing: Any
    openrouter_http_referer: str
    openrouter_app_name: str
    allowed_providers: Any
    allowed_models: Any
    openrouter_deny_data_collection: bool
    openrouter_zero_retention: bool
    requests_per_minute: int | None
    tokens_per_minute: int | None
    daily_budget: Decimal | None
    weekly_budget: Decimal | None
    service_budgets: Any
    alert_thresholds: Any
    guard_mask_pii: bool = False
    guard_prompt_injection: str = "off"
    guard_moderate_output: bool = False
    guard_banned_terms: str = ""
    credentials: tuple[CredentialRecord, ...] = ()


class EditorQuotaRecord(NamedTuple):
    """One editor's quota on one site, resolved from the site's `EditorQuota` rows (own row, else groups')."""

    monthly_budget: Decimal | None
    requests_per_minute: int | None
    source: str  # "own quota" or "quota of the group “Editors”": what a refusal names


class BudgetRow(NamedTuple):
    """A site's budget period of one month as the database holds it (`BudgetPeriod`), after a change."""

    spent: Decimal
    reserved: Decimal  # worst cases of the calls reserved here (while Redis was unreachable) still in flight
    version: int  # bumped by every reservation and settlement made here
    ok: bool = True  # a conditional reservation was made (False: it would have passed the limit)


@dataclass(frozen=True)
class AlertTarget:
    """Who hears about a budget alert that was just recorded: the site's domain, its admins' e-mail
    addresses and its optional webhook."""

    domain: str
    recipients: tuple[str, ...]
    webhook_url: str
    webhook_secret: str


class Store(Protocol):
    """What the gateway asks of the database; implemented by the Django side (`integrations.store`)."""

    # -- a site's configuration (read when its snapshot is built) --
    def prices(self) -> PriceOverrides: ...

    def mappings(self, site_id: int | None) -> dict[str, dict[str, str]]:
        """logical name -> {provider: provider model id}: the global rows, overridden by the site's own."""
        ...

    def site_record(self, site_id: int) -> SiteRecord | None: ...

    def editor_quotas(self, site_id: int) -> dict[int, EditorQuotaRecord]:
        """user id -> that editor's quota on the site: a user's own row wins over their groups'; of several
        groups, the lowest cap and the lowest rate apply; a group's row reaches its members who are active
        staff of the site (a membership of it, or superusers)."""
        ...

    # -- the ledger --
    def write_rows(self, fields: list[dict[str, Any]]) -> None:
        """Insert ledger rows (skipping any `ledger_key` already written), add them to their daily
        roll-ups and their cost to the month's budget periods, in one transaction. A row marked
        `budget_settled` (not a column: its call settled into the budget period already) adds no cost there."""
        ...

    def save_rows(self, fields: list[dict[str, Any]]) -> list[Any]:
        """Insert ledger rows and their roll-ups now, returning the saved rows (the deferred batch path)."""
        ...

    def spend_since(
        self,
        site_id: int,
        start: datetime.datetime,
        service: str | None = None,
        api_key: int | None = None,
        user: int | None = None,
    ) -> Decimal:
        """What the site's ledger rows since `start` cost (of one service, virtual key or editor, when given)."""
        ...

    def month_spend(self, site_id: int, month: datetime.date, month_start: datetime.datetime) -> Decimal:
        """The spend of the site's budget period of `month`, created from the ledger if it has none yet."""
        ...

    def budget_row(self, site_id: int, month: datetime.date, month_start: datetime.datetime) -> BudgetRow:
        """The site's budget period of `month` (created from the ledger if missing), read in one query."""
        ...

    def reserve_budget(
        self, site_id: int, month: datetime.date, month_start: datetime.datetime, amount: Decimal, limit: Decimal
    ) -> BudgetRow:
        """Add `amount` to the period's `reserved` only if spent + reserved + amount stays <= `limit`, atomically
        across processes (one conditional UPDATE); the row after it (`ok` False: refused, nothing changed)."""
        ...

    def settle_budget(self, site_id: int, month: datetime.date, release: Decimal, spent: Decimal) -> BudgetRow:
        """Take `release` off the period's `reserved` and add `spent` to its `spent` in one UPDATE; the row after."""
        ...

    def claim_alert(
        self, site_id: int, window: str, period_start: datetime.date, threshold: int, cap: Decimal, spent: Decimal
    ) -> AlertTarget | None:
        """Record a budget alert once; who to tell when it was recorded now, None when it already was."""
        ...

    def attribution(self, obj: Any, label: str | None) -> Attribution:
        """(content type id, object id, label) of a saved model instance."""
        ...

    def known_keys(self, keys: list[str]) -> set[str]:
        """Which of these ledger keys the database holds: written rows, or rows set aside as dead letters."""
        ...

    def set_aside(self, row: dict[str, Any], error: str, payload: str, cost: Decimal | None) -> bool:
        """Keep a ledger row the database refused in the dead-letter table; False when a row with its
        `ledger_key` turns out to be written already (a concurrent writer had it: nothing is lost)."""
        ...

    # -- what the metrics read --
    def budget_remaining(self, month: datetime.date) -> list[tuple[int, Decimal]]:
        """(site id, monthly cap minus the spend of `month`'s budget period) for every capped site."""
        ...

    def configured_sites(self) -> list[int]:
        """The ids of the sites that have AI settings."""
        ...

    # -- the database connection of the calling thread (the ledger writer's threads, health checks) --
    def database_identity(self) -> tuple[str, str, str, str]:
        """(engine, host, port, name) of the default database: what the Redis list and journals are keyed by."""
        ...

    def is_outage(self, exc: BaseException) -> bool:
        """True when `exc` says the database itself is away (connection, lock, shutdown): retry, set nothing aside."""
        ...

    def release_connection(self) -> None:
        """Close this thread's connection (an idle writer holds none)."""
        ...

    def refresh_connections(self) -> None:
        """Drop this thread's connection if it is broken or too old (before a batch)."""
        ...

    def ping(self) -> None:
        """Run a trivial query; raises when the database does not answer."""
        ...

    def in_transaction(self) -> bool:
        """True when this thread is inside an open transaction (its rows must wait for the commit)."""
        ...

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` when this thread's open transaction commits (never if it rolls back)."""
        ...

    def pending_on_commit(self) -> list[Callable[[], None]]:
        """The callbacks this thread's open transaction will run when it commits."""
        ...


_store: Store | None = None


def install(store: Store) -> None:
    """Make `store` the one the gateway uses (the Django app does this when it is ready)."""
    global _store
    _store = store


def store() -> Store:
    """The installed store; raises when the Django side has not installed one (Django not set up)."""
    if _store is None:
        raise RuntimeError(
            "integrations.ai has no store: call django.setup() (the integrations app installs "
            "integrations.store.DjangoStore when it is ready) or integrations.ai.ports.install(...)"
        )
    return _store
