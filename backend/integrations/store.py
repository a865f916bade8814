"""The Django side of `integrations.ai.ports`: the one place the gateway's reads and writes meet the ORM.

The gateway asks for a site's records, prices and ledger sums, and hands ledger rows over, through
`integrations.ai.ports.Store`; `DjangoStore` answers with the models of `integrations.models` and
is installed when the app is ready (`integrations.apps`). Nothing else of the gateway touches the database.
"""

from __future__ import annotations

import datetime
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import fields as dataclass_fields
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.contrib.sites.models import Site
from django.db import IntegrityError, InterfaceError, OperationalError, close_old_connections, connection, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from integrations.ai.ports import (
    AlertTarget,
    Attribution,
    BudgetRow,
    CredentialRecord,
    EditorQuotaRecord,
    Price,
    PriceOverrides,
    SiteRecord,
)
from integrations.models import (
    AIProviderSettings,
    AIUsage,
    BudgetAlert,
    BudgetPeriod,
    EditorQuota,
    LedgerDeadLetter,
    ModelMapping,
    ModelPrice,
)
from integrations.usage import rollups
from integrations.usage.insert import insert_rows

logger = logging.getLogger("integrations.ai")

_SITE_FIELDS = [f.name for f in dataclass_fields(SiteRecord) if f.name != "credentials"]


class DjangoStore:
    """`integrations.ai.ports.Store` over the `integrations` models."""

    def prices(self) -> PriceOverrides:
        return {
            (p.provider, p.model_id): Price(
                p.prompt_per_million, p.completion_per_million, p.cache_read_per_million, p.cache_write_per_million
            )
            for p in ModelPrice.objects.all()
        }

    def mappings(self, site_id: int | None) -> dict[str, dict[str, str]]:
        mappings: dict[str, dict[str, str]] = {}
        rows = ModelMapping.objects.filter(is_active=True, site__isnull=True)
        if site_id:
            rows = ModelMapping.objects.filter(is_active=True, site__isnull=True) | ModelMapping.objects.filter(
                is_active=True, site_id=site_id
            )
        # Global rows first so a site's own row wins.
        for row in sorted(rows, key=lambda r: r.site_id is not None):
            mappings.setdefault(row.logical_name, {})[row.provider] = row.provider_model_id
        return mappings

    def site_record(self, site_id: int) -> SiteRecord | None:
        record = AIProviderSettings.objects.filter(site_id=site_id).prefetch_related("credentials").first()
        if record is None:
            return None
        credentials = tuple(
            CredentialRecord(
                provider=row.provider,
                label_name=row.label_name,
                api_key=row.api_key or "",
                base_url=row.base_url,
                default_model=row.default_model,
                enabled=row.enabled,
            )
            for row in record.credentials.all()
        )
        return SiteRecord(**{name: getattr(record, name) for name in _SITE_FIELDS}, credentials=credentials)

    def write_rows(self, fields: list[dict[str, Any]]) -> None:
        """Insert ledger rows, add them to their daily roll-ups and their cost to this month's budget
        periods, in one transaction (so the dashboard's roll-ups always match the ledger).

        A row whose site was deleted meanwhile is kept with no site (as deleting a site does to its rows).
        """
        if not fields:
            return
        settled = {row["ledger_key"] for row in fields if row.get("budget_settled") and row.get("ledger_key")}
        if any("budget_settled" in row for row in fields):
            fields = [{k: v for k, v in row.items() if k != "budget_settled"} for row in fields]
        try:
            with transaction.atomic():
                keys = [row["ledger_key"] for row in fields if row.get("ledger_key")]
                if keys:  # rows from Redis: skip any a drainer wrote before it died unacknowledged
                    done = set(AIUsage.objects.filter(ledger_key__in=keys).values_list("ledger_key", flat=True))
                    if done:
                        logger.warning(
                            "skipped %d AI usage row(s) already written by a drainer that stopped "
                            "before acknowledging them",
                            len(done),
                        )
                        fields = [row for row in fields if row.get("ledger_key") not in done]
                rows = insert_rows(AIUsage, fields)
                rollups.add(rows)
                spend: dict[tuple[int, datetime.date], Decimal] = defaultdict(Decimal)
                zone = timezone.get_default_timezone()
                for row in rows:  # each row's cost to the month it was made in (a batch may straddle two)
                    if row.site_id is not None and row.cost and row.ledger_key not in settled:
                        spend[row.site_id, timezone.localdate(row.created_at, zone).replace(day=1)] += Decimal(row.cost)
                for (site_id, month), amount in sorted(spend.items()):  # one lock order for every writer
                    BudgetPeriod.objects.filter(site_id=site_id, month=month).update(spent=F("spent") + amount)
        except IntegrityError:
            known = set(Site.objects.filter(pk__in={r["site_id"] for r in fields}).values_list("pk", flat=True))
            if all(r.get("site_id") in known or r.get("site_id") is None for r in fields):
                raise
            self.write_rows(
                [
                    {**r, "site_id": r["site_id"] if r.get("site_id") in known else None}
                    | ({"budget_settled": True} if r.get("ledger_key") in settled else {})
                    for r in fields
                ]
            )

    def save_rows(self, fields: list[dict[str, Any]]) -> list[Any]:
        if not fields:
            return []
        fields = [{k: v for k, v in row.items() if k != "budget_settled"} for row in fields]
        try:
            with transaction.atomic():
                saved = AIUsage.objects.bulk_create([AIUsage(**row) for row in fields])
                rollups.add(saved)
            return saved
        except Exception:
            logger.exception("could not write %d AI usage rows", len(fields))
            return []

    def spend_since(
        self,
        site_id: int,
        start: datetime.datetime,
        service: str | None = None,
        api_key: int | None = None,
        user: int | None = None,
    ) -> Decimal:
        rows = AIUsage.objects.filter(site_id=site_id, created_at__gte=start)
        if service:
            rows = rows.filter(service=service)
        if api_key is not None:
            rows = rows.filter(api_key_id=api_key)
        if user is not None:
            rows = rows.filter(user_id=user)
        return rows.aggregate(total=Sum("cost"))["total"] or Decimal(0)

    def month_spend(self, site_id: int, month: datetime.date, month_start: datetime.datetime) -> Decimal:
        period = BudgetPeriod.objects.filter(site_id=site_id, month=month).first()
        if period is None:
            try:
                with transaction.atomic():
                    # Seed from the ledger so spend recorded before the row existed still counts.
                    period = BudgetPeriod.objects.create(
                        site_id=site_id, month=month, spent=self.spend_since(site_id, month_start)
                    )
            except IntegrityError:  # another process created it first
                period = BudgetPeriod.objects.get(site_id=site_id, month=month)
        return period.spent

    def budget_row(self, site_id: int, month: datetime.date, month_start: datetime.datetime) -> BudgetRow:
        self.month_spend(site_id, month, month_start)  # created from the ledger if missing
        spent, reserved, version = BudgetPeriod.objects.values_list("spent", "reserved", "version").get(
            site_id=site_id, month=month
        )
        return BudgetRow(Decimal(spent), Decimal(reserved), version)

    def reserve_budget(
        self, site_id: int, month: datetime.date, month_start: datetime.datetime, amount: Decimal, limit: Decimal
    ) -> BudgetRow:
        self.month_spend(site_id, month, month_start)  # created from the ledger if missing
        period = BudgetPeriod.objects.filter(site_id=site_id, month=month)
        with transaction.atomic():
            # one conditional UPDATE: the row lock (PostgreSQL) or the write lock (SQLite) orders every
            # process's reservation, so two can never pass the limit together
            done = period.filter(spent__lte=limit - amount - F("reserved")).update(
                reserved=F("reserved") + amount, version=F("version") + 1, updated_at=timezone.now()
            )
            spent, reserved, version = period.values_list("spent", "reserved", "version").get()
        return BudgetRow(Decimal(spent), Decimal(reserved), version, ok=bool(done))

    def settle_budget(self, site_id: int, month: datetime.date, release: Decimal, spent: Decimal) -> BudgetRow:
        period = BudgetPeriod.objects.filter(site_id=site_id, month=month)
        with transaction.atomic():
            period.update(
                reserved=F("reserved") - release,
                spent=F("spent") + spent,
                version=F("version") + 1,
                updated_at=timezone.now(),
            )
            now_spent, reserved, version = period.values_list("spent", "reserved", "version").get()
        return BudgetRow(Decimal(now_spent), Decimal(reserved), version)

    def claim_alert(
        self, site_id: int, window: str, period_start: datetime.date, threshold: int, cap: Decimal, spent: Decimal
    ) -> AlertTarget | None:
        try:
            with transaction.atomic():
                BudgetAlert.objects.create(
                    site_id=site_id, window=window, period_start=period_start, threshold=threshold, cap=cap, spent=spent
                )
        except IntegrityError:
            return None
        record = AIProviderSettings.objects.select_related("site").filter(site_id=site_id).first()
        recipients = tuple(
            get_user_model()
            .objects.filter(site_memberships__site_id=site_id, is_active=True)
            .exclude(email="")
            .values_list("email", flat=True)
            .distinct()
        )
        return AlertTarget(
            domain=record.site.domain if record else str(site_id),
            recipients=recipients,
            webhook_url=record.alert_webhook_url if record is not None else "",
            webhook_secret=record.alert_webhook_secret if record is not None else "",
        )

    def attribution(self, obj: Any, label: str | None) -> Attribution:
        content_type = ContentType.objects.get_for_model(obj)
        text = label if label is not None else f"{obj._meta.verbose_name.capitalize()}: {obj}"
        return (content_type.pk, int(obj.pk), text[:200])

    def known_keys(self, keys: list[str]) -> set[str]:
        done = set(AIUsage.objects.filter(ledger_key__in=keys).values_list("ledger_key", flat=True))
        done.update(LedgerDeadLetter.objects.filter(ledger_key__in=keys).values_list("ledger_key", flat=True))
        return done

    def set_aside(self, row: dict[str, Any], error: str, payload: str, cost: Decimal | None) -> bool:
        key = str(row.get("ledger_key") or "")
        if key and AIUsage.objects.filter(ledger_key=key).exists():
            return False
        site_id = row.get("site_id")
        LedgerDeadLetter.objects.create(
            site_id=site_id if isinstance(site_id, int) and 0 < site_id < 2**63 else None,
            ledger_key=key[:40],
            cost=cost,
            error=error,
            payload=payload,
        )
        return True

    def budget_remaining(self, month: datetime.date) -> list[tuple[int, Decimal]]:
        caps = dict(
            AIProviderSettings.objects.filter(monthly_budget__isnull=False).values_list("site_id", "monthly_budget")
        )
        spent = dict(BudgetPeriod.objects.filter(site_id__in=caps, month=month).values_list("site_id", "spent"))
        return [(site_id, cap - spent.get(site_id, 0)) for site_id, cap in sorted(caps.items())]

    def configured_sites(self) -> list[int]:
        return list(AIProviderSettings.objects.values_list("site_id", flat=True))

    def database_identity(self) -> tuple[str, str, str, str]:
        db = connection.settings_dict
        return (str(db["ENGINE"]), str(db.get("HOST") or ""), str(db.get("PORT") or ""), str(db.get("NAME") or ""))

    def is_outage(self, exc: BaseException) -> bool:
        return isinstance(exc, OperationalError | InterfaceError)

    def release_connection(self) -> None:
        connection.close()

    def refresh_connections(self) -> None:
        close_old_connections()

    def ping(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    def in_transaction(self) -> bool:
        return connection.in_atomic_block

    def on_commit(self, callback: Callable[[], None]) -> None:
        transaction.on_commit(callback, robust=True)

    def pending_on_commit(self) -> list[Callable[[], None]]:
        return [func for _, func, _ in connection.run_on_commit]

    def editor_quotas(self, site_id: int) -> dict[int, EditorQuotaRecord]:
        """The site's `EditorQuota` rows as one limit per user: a user's own row wins over their groups';
        of several groups, the lowest cap and the lowest rate apply; a group's row reaches its members who
        are active staff of the site (a membership of it, or superusers)."""
        rows = list(EditorQuota.objects.filter(site_id=site_id).select_related("group", "user"))
        quotas: dict[int, EditorQuotaRecord] = {}
        by_group: dict[int, list[Any]] = {}
        for row in rows:
            if row.user_id is not None:
                quotas[row.user_id] = EditorQuotaRecord(
                    row.monthly_budget, row.requests_per_minute or None, "own quota"
                )
            else:
                by_group.setdefault(row.group_id, []).append(row)
        if by_group:
            members = (
                get_user_model()
                .objects.filter(groups__in=list(by_group), is_active=True, is_staff=True)
                .filter(Q(is_superuser=True) | Q(site_memberships__site_id=site_id))
                .values_list("pk", "groups")
                .distinct()
            )
            found: dict[int, list[Any]] = {}
            for user_id, group_id in members:
                if group_id in by_group and user_id not in quotas:
                    found.setdefault(user_id, []).extend(by_group[group_id])
            for user_id, group_rows in found.items():
                caps = [r for r in group_rows if r.monthly_budget is not None]
                rates = [r for r in group_rows if r.requests_per_minute]
                cap = min(caps, key=lambda r: r.monthly_budget) if caps else None
                rate = min(rates, key=lambda r: r.requests_per_minute) if rates else None
                names = sorted({r.group.name for r in (cap, rate) if r is not None})
                quotas[user_id] = EditorQuotaRecord(
                    cap.monthly_budget if cap is not None else None,
                    rate.requests_per_minute if rate is not None else None,
                    "quota of the group " + " and ".join(f"“{n}”" for n in names),
                )
        return quotas
