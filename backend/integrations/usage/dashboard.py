"""The numbers of the usage dashboard, for the sites one user may see.

Everything the page and its CSV export show comes from `Dashboard.build()`: daily series of spend,
requests, tokens and error rate broken down by provider, model and service; latency percentiles per
provider and model; cache hits and what they saved; the month's budget burn-down with a month-end
forecast; refusals by reason. The scope (`site_ids`) is applied to every query first, so a site
admin's page cannot contain another site's numbers, not even in a total.

It reads the daily roll-ups (`UsageDaily`, kept by the ledger writer), never raw ledger rows: the
page costs the same on a ledger of a million rows, and pruning raw rows changes nothing on it.
Latency percentiles come from the roll-ups' histograms, to two significant digits (rounded down;
see `usage_rollups.bucket`).
"""

from __future__ import annotations

import calendar
import csv
import datetime
import io
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.sites.models import Site
from django.db.models import Sum
from django.utils import timezone

from integrations.usage.rollups import histogram_percentile, merge_histograms
from tenancy.access import site_label

DIMENSIONS = ("provider", "model", "service")
METRICS = ("cost", "requests", "tokens")
TOP_KEYS = 8  # series per stacked chart; the rest are summed as "other"
MAX_DAYS = 366
SUMMED = (
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost",
    "saved_cost",
    "latency_sum",
    "unpriced",
)


class DashboardError(ValueError):
    """A dashboard parameter that cannot be used; the message names it."""


def parse_range(
    start: str | None,
    end: str | None,
    today: datetime.date | None = None,
) -> tuple[datetime.date, datetime.date]:
    """The inclusive day range from `start`/`end` (YYYY-MM-DD); default the last 30 days."""
    today = today or timezone.localdate()
    try:
        last = datetime.date.fromisoformat(end) if end else today
    except ValueError as exc:
        raise DashboardError(f"end: {end!r} is not a date (YYYY-MM-DD).") from exc
    try:
        first = datetime.date.fromisoformat(start) if start else last - datetime.timedelta(days=29)
    except ValueError as exc:
        raise DashboardError(f"start: {start!r} is not a date (YYYY-MM-DD).") from exc
    if first > last:
        raise DashboardError("start must not be after end.")
    if (last - first).days >= MAX_DAYS:
        raise DashboardError(f"The range may span at most {MAX_DAYS} days.")
    return first, last


def percentile(sorted_values: list[int], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None for no values)."""
    if not sorted_values:
        return None
    rank = max(int(-(-fraction * len(sorted_values) // 1)), 1)  # ceil, at least the first
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


@dataclass
class Dashboard:
    """The dashboard for `site_ids` (None = every site, superusers only) over [first, last]."""

    site_ids: set[int] | None
    first: datetime.date
    last: datetime.date
    today: datetime.date = field(default_factory=timezone.localdate)

    # -- sources ---------------------------------------------------------------------------------------
    def _rollups(self) -> Any:
        """The daily roll-ups in range and scope (never raw ledger rows: they may have been pruned)."""
        from integrations.models import UsageDaily

        rows = UsageDaily.objects.filter(day__gte=self.first, day__lte=self.last)
        return rows if self.site_ids is None else rows.filter(site_id__in=self.site_ids)

    def cells(self, by_site: bool = True) -> list[dict[str, Any]]:
        """Per (day, [site,] provider, model, service, status, error class): counts and sums.

        Summed in the database (a site's roll-ups may repeat a group after a site was deleted); the
        page needs no site column (budgets are per site apart), the CSV table does.
        """
        keys = ("day", *(("site_id",) if by_site else ()), "provider", "model", "service", "status", "error_class")
        return list(self._rollups().values(*keys).annotate(**{name: Sum(name) for name in SUMMED}).order_by())

    def latencies(self) -> dict[tuple[str, str], dict[int, int]]:
        """Latency histograms of answered upstream attempts per (provider, model), merged over the range.

        Merged in the database (JSON bucket counts summed with json_each / jsonb_each_text) where the
        backend can; a 30-day range of a busy deployment is tens of thousands of roll-ups whose JSON
        would otherwise be decoded and merged here.
        """
        from django.db import connection

        from integrations.models import UsageDaily

        vendor = connection.vendor
        if vendor not in ("postgresql", "sqlite"):
            found: dict[tuple[str, str], list[dict[str, int]]] = defaultdict(list)
            rows = self._rollups().filter(status="ok").values_list("provider", "model", "latency_histogram")
            for provider, model, histogram in rows.order_by().iterator(chunk_size=5000):
                found[(provider, model)].append(histogram)
            return {key: merge_histograms(histograms) for key, histograms in found.items()}
        table = connection.ops.quote_name(UsageDaily._meta.db_table)
        each = "jsonb_each_text(u.latency_histogram)" if vendor == "postgresql" else "json_each(u.latency_histogram)"
        value = "CAST(h.value AS bigint)" if vendor == "postgresql" else "h.value"
        where, params = ["u.day >= %s", "u.day <= %s", "u.status = %s"], [self.first, self.last, "ok"]
        if self.site_ids is not None:
            if not self.site_ids:
                return {}
            where.append(f"u.site_id IN ({', '.join(['%s'] * len(self.site_ids))})")
            params += sorted(self.site_ids)
        sql = (
            f"SELECT u.provider, u.model, h.key, SUM({value}) FROM {table} u, {each} h "  # noqa: S608 (constants)
            f"WHERE {' AND '.join(where)} GROUP BY u.provider, u.model, h.key"
        )
        merged: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            for provider, model, edge, count in cursor.fetchall():
                merged[(provider, model)][int(edge)] = int(count)
        return dict(merged)

    def month_spend(self) -> tuple[dict[datetime.date, Decimal], dict[int, Decimal]]:
        """This month's spend per day (all scoped sites) and per site, for the burn-down."""
        from integrations.models import UsageDaily

        rows = UsageDaily.objects.filter(day__gte=self.today.replace(day=1))
        if self.site_ids is not None:
            rows = rows.filter(site_id__in=self.site_ids)
        per_day = {r["day"]: r["cost"] or Decimal(0) for r in rows.values("day").annotate(cost=Sum("cost")).order_by()}
        per_site = {
            r["site_id"]: r["cost"] or Decimal(0)
            for r in rows.filter(site_id__isnull=False).values("site_id").annotate(cost=Sum("cost")).order_by()
        }
        return per_day, per_site

    # -- the page ----------------------------------------------------------------------------------
    def days(self) -> list[datetime.date]:
        return [self.first + datetime.timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    def build(self, table: bool = True) -> dict[str, Any]:
        """Everything the page shows; with `table`, also the daily table per site (the CSV's)."""
        cells = self.cells(by_site=table)
        days = self.days()
        index = {day: n for n, day in enumerate(days)}
        return {
            "days": [d.isoformat() for d in days],
            "totals": self._totals(cells),
            "series": {dim: self._series(cells, dim, index) for dim in DIMENSIONS},
            "error_rate": self._error_rate(cells, index),
            "cache": self._cache(cells, index),
            "refusals": self._refusals(cells),
            "unpriced": self._unpriced(cells),
            "latency": self._latency(self.latencies()),
            "budget": self._budget(),
            "keys": self.by_key(),
            "editors": self.by_editor(),
            **({"table": self._table(cells)} if table else {}),
        }

    def by_key(self) -> list[dict[str, Any]]:
        """Spend per virtual key over the range, in scope, most expensive first (`UsageKeyDaily`)."""
        from integrations.models import UsageKeyDaily

        rows = UsageKeyDaily.objects.filter(day__gte=self.first, day__lte=self.last)
        if self.site_ids is not None:
            rows = rows.filter(site_id__in=self.site_ids)
        sums = (
            rows.values("api_key_id", "api_key__name", "api_key__last4", "site__domain", "site__name")
            .annotate(**{n: Sum(n) for n in ("requests", "refused", "prompt_tokens", "completion_tokens", "cost")})
            .order_by("-cost", "api_key_id")
        )
        return [
            {
                "key": f"{r['api_key__name'] or 'key'} …{r['api_key__last4']}",
                "site": r["site__domain"] or "",
                "site_name": site_label(Site(name=r["site__name"], domain=r["site__domain"]))
                if r["site__domain"]
                else "",
                "requests": r["requests"],
                "refused": r["refused"],
                "prompt_tokens": r["prompt_tokens"],
                "completion_tokens": r["completion_tokens"],
                "cost": r["cost"] or Decimal(0),
            }
            for r in sums
        ]

    def by_editor(self) -> list[dict[str, Any]]:
        """Spend per editor and site over the range, in scope, most expensive first (`UsageUserDaily`).

        Scoped by the rows' site, so a site admin sees their site's editors (and the spend of a person
        who also works for another site, on their site only). Calls with no known user are not listed.
        """
        from integrations.models import UsageUserDaily

        rows = UsageUserDaily.objects.filter(day__gte=self.first, day__lte=self.last)
        if self.site_ids is not None:
            rows = rows.filter(site_id__in=self.site_ids)
        sums = (
            rows.values("user_id", "user__username", "site__domain")
            .annotate(**{n: Sum(n) for n in ("requests", "refused", "prompt_tokens", "completion_tokens", "cost")})
            .order_by("-cost", "user_id", "site__domain")
        )
        return [
            {
                "editor": r["user__username"],
                "site": r["site__domain"] or "",
                "requests": r["requests"],
                "refused": r["refused"],
                "prompt_tokens": r["prompt_tokens"],
                "completion_tokens": r["completion_tokens"],
                "cost": r["cost"] or Decimal(0),
            }
            for r in sums
        ]

    @staticmethod
    def _tokens(cell: dict[str, Any]) -> int:
        return int(cell["total_tokens"] or 0)

    def _totals(self, cells: list[dict[str, Any]]) -> dict[str, Any]:
        served = [c for c in cells if c["status"] in ("ok", "error", "cached")]
        attempts = sum(c["requests"] for c in cells if c["status"] in ("ok", "error"))
        errors = sum(c["requests"] for c in cells if c["status"] == "error")
        return {
            "cost": sum((c["cost"] or Decimal(0) for c in cells), Decimal(0)),
            "requests": sum(c["requests"] for c in served),
            "tokens": sum(self._tokens(c) for c in cells),
            "errors": errors,
            "error_rate": round(100 * errors / attempts, 2) if attempts else 0.0,  # percent of attempts
            "refused": sum(c["requests"] for c in cells if c["status"] == "refused"),
            "cache_hits": sum(c["requests"] for c in cells if c["status"] == "cached"),
            "cached_tokens": sum(int(c["cached_tokens"] or 0) for c in cells),
            "reasoning_tokens": sum(int(c["reasoning_tokens"] or 0) for c in cells),
            "saved": sum((c["saved_cost"] or Decimal(0) for c in cells), Decimal(0)),
        }

    def _series(self, cells: list[dict[str, Any]], dim: str, index: dict[datetime.date, int]) -> dict[str, Any]:
        """Per metric: {key: [value per day]}, the biggest TOP_KEYS keys by spend, then requests."""
        width = len(index)
        per: dict[str, dict[str, list[float]]] = {m: defaultdict(lambda: [0.0] * width) for m in METRICS}
        weight: dict[str, tuple[Decimal, int]] = defaultdict(lambda: (Decimal(0), 0))
        for c in cells:
            if c["status"] == "refused":
                continue
            key = c[dim] or "(none)"
            n = index[c["day"]]
            per["cost"][key][n] += float(c["cost"] or 0)
            per["requests"][key][n] += c["requests"]
            per["tokens"][key][n] += self._tokens(c)
            spent, count = weight[key]
            weight[key] = (spent + (c["cost"] or Decimal(0)), count + c["requests"])
        ranked = sorted(weight, key=lambda k: weight[k], reverse=True)
        keep, rest = ranked[:TOP_KEYS], ranked[TOP_KEYS:]
        out: dict[str, Any] = {}
        for metric in METRICS:
            data = {k: per[metric][k] for k in keep}
            if rest:
                data["other"] = [sum(per[metric][k][n] for k in rest) for n in range(width)]
            out[metric] = data
        return out

    @staticmethod
    def _error_rate(cells: list[dict[str, Any]], index: dict[datetime.date, int]) -> list[float | None]:
        attempts = [0] * len(index)
        errors = [0] * len(index)
        for c in cells:
            if c["status"] in ("ok", "error"):
                attempts[index[c["day"]]] += c["requests"]
                if c["status"] == "error":
                    errors[index[c["day"]]] += c["requests"]
        return [round(100 * e / a, 2) if a else None for e, a in zip(errors, attempts, strict=True)]

    @staticmethod
    def _cache(cells: list[dict[str, Any]], index: dict[datetime.date, int]) -> dict[str, list[float]]:
        hits = [0.0] * len(index)
        saved = [0.0] * len(index)
        for c in cells:
            n = index[c["day"]]
            if c["status"] == "cached":
                hits[n] += c["requests"]
            saved[n] += float(c["saved_cost"] or 0)
        return {"hits": hits, "saved": saved}

    @staticmethod
    def _refusals(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
        counts: dict[str, int] = defaultdict(int)
        for c in cells:
            if c["status"] == "refused":
                counts[c["error_class"] or "(unknown)"] += c["requests"]
        return [{"reason": k, "count": v} for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]

    @staticmethod
    def _unpriced(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Calls per (provider, model) no price source knew: each was charged its worst-case estimate."""
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for c in cells:
            if c.get("unpriced"):
                counts[c["provider"], c["model"]] += c["unpriced"]
        return [
            {"provider": p, "model": m, "count": n}
            for (p, m), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        ]

    @staticmethod
    def _latency(histograms: dict[tuple[str, str], dict[int, int]]) -> list[dict[str, Any]]:
        """p50/p95 per provider and model from the roll-ups' histograms (resolution: usage_rollups.bucket)."""
        return [
            {
                "provider": provider,
                "model": model,
                "requests": sum(histogram.values()),
                "p50": histogram_percentile(histogram, 0.50),
                "p95": histogram_percentile(histogram, 0.95),
            }
            for (provider, model), histogram in sorted(histograms.items())
        ]

    def _budget(self) -> dict[str, Any]:
        """Cumulative spend this month against the scoped sites' monthly caps, and where it ends."""
        from integrations.models import AIProviderSettings

        records = AIProviderSettings.objects.filter(monthly_budget__isnull=False, site__isnull=False)
        if self.site_ids is not None:
            records = records.filter(site_id__in=self.site_ids)
        listed = list(records.select_related("site"))
        caps = {r.site_id: (r.site.domain, r.monthly_budget) for r in listed}
        names = {r.site_id: site_label(r.site) for r in listed}
        per_day, per_site = self.month_spend()
        month_first = self.today.replace(day=1)
        length = calendar.monthrange(self.today.year, self.today.month)[1]
        elapsed = self.today.day
        cumulative, running = [], Decimal(0)
        for n in range(length):
            day = month_first + datetime.timedelta(days=n)
            running += per_day.get(day, Decimal(0))
            cumulative.append(float(running) if n < elapsed else None)
        spent = running
        forecast = spent / elapsed * length if elapsed else Decimal(0)
        cap = sum((c for _, c in caps.values()), Decimal(0)) if caps else None
        sites = []
        for site_id, (domain, site_cap) in sorted(caps.items(), key=lambda kv: kv[1][0]):
            site_spent = per_site.get(site_id, Decimal(0))
            sites.append(
                {
                    "site": domain,
                    "site_name": names[site_id],
                    "cap": site_cap,
                    "spent": site_spent,
                    "forecast": site_spent / elapsed * length,
                    "percent": int(site_spent * 100 / site_cap) if site_cap else 100,
                }
            )
        return {
            "month": month_first.strftime("%Y-%m"),
            "days": [(month_first + datetime.timedelta(days=n)).isoformat() for n in range(length)],
            "cumulative": cumulative,
            "forecast_line": [float(spent / elapsed * (n + 1)) if elapsed else 0.0 for n in range(length)],
            "spent": spent,
            "forecast": forecast,
            "cap": cap,
            "sites": sites,
        }

    def _table(self, cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One row per (day, site, provider, model, service): what the charts stack, for the CSV."""
        from django.contrib.sites.models import Site

        domains = dict(
            Site.objects.filter(pk__in={c["site_id"] for c in cells if c["site_id"]}).values_list("pk", "domain")
        )
        rows: dict[tuple, dict[str, Any]] = {}
        for c in cells:
            key = (c["day"], c["site_id"], c["provider"], c["model"], c["service"])
            row = rows.setdefault(
                key,
                {
                    "day": c["day"].isoformat(),
                    "site": domains.get(c["site_id"], ""),
                    "provider": c["provider"],
                    "model": c["model"],
                    "service": c["service"],
                    "requests": 0,
                    "errors": 0,
                    "refused": 0,
                    "cache_hits": 0,
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "cached_tokens": 0,
                    "cache_write_tokens": 0,
                    "reasoning_tokens": 0,
                    "cost": Decimal(0),
                    "saved": Decimal(0),
                },
            )
            if c["status"] == "refused":
                row["refused"] += c["requests"]
            else:
                row["requests"] += c["requests"]
            row["errors"] += c["requests"] if c["status"] == "error" else 0
            row["cache_hits"] += c["requests"] if c["status"] == "cached" else 0
            for name in (
                "prompt_tokens",
                "completion_tokens",
                "cached_tokens",
                "cache_write_tokens",
                "reasoning_tokens",
            ):
                row[name] += int(c[name] or 0)
            row["cost"] += c["cost"] or Decimal(0)
            row["saved"] += c["saved_cost"] or Decimal(0)
        return [rows[k] for k in sorted(rows, key=lambda k: tuple(str(p) for p in k))]


TABLE_COLUMNS = (
    "day",
    "site",
    "provider",
    "model",
    "service",
    "requests",
    "errors",
    "refused",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost",
    "saved",
)


def to_csv(data: dict[str, Any]) -> str:
    """The dashboard as CSV: the daily table, then latency, refusals and budget sections."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", *TABLE_COLUMNS])
    for row in data["table"]:
        writer.writerow(["daily", *(row[c] for c in TABLE_COLUMNS)])
    writer.writerow([])
    writer.writerow(["section", "provider", "model", "requests", "p50_ms", "p95_ms"])
    for row in data["latency"]:
        writer.writerow(["latency", row["provider"], row["model"], row["requests"], row["p50"], row["p95"]])
    writer.writerow([])
    writer.writerow(["section", "reason", "count"])
    for row in data["refusals"]:
        writer.writerow(["refusals", row["reason"], row["count"]])
    writer.writerow([])
    writer.writerow(["section", "key", "site", "requests", "refused", "prompt_tokens", "completion_tokens", "cost"])
    for row in data.get("keys", ()):
        writer.writerow(
            [
                "keys",
                row["key"],
                row["site"],
                row["requests"],
                row["refused"],
                row["prompt_tokens"],
                row["completion_tokens"],
                row["cost"],
            ]
        )
    writer.writerow([])
    writer.writerow(["section", "editor", "site", "requests", "refused", "prompt_tokens", "completion_tokens", "cost"])
    for row in data.get("editors", ()):
        writer.writerow(
            [
                "editors",
                row["editor"],
                row["site"],
                row["requests"],
                row["refused"],
                row["prompt_tokens"],
                row["completion_tokens"],
                row["cost"],
            ]
        )
    writer.writerow([])
    writer.writerow(["section", "provider", "model", "unpriced_calls"])
    for row in data["unpriced"]:
        writer.writerow(["unpriced", row["provider"], row["model"], row["count"]])
    writer.writerow([])
    writer.writerow(["section", "site", "cap", "spent", "forecast"])
    for row in data["budget"]["sites"]:
        writer.writerow(["budget", row["site"], row["cap"], row["spent"], round(row["forecast"], 8)])
    return _safe_csv(out.getvalue())


def _safe_csv(text: str) -> str:
    """Cells starting with = + - @ are spreadsheet formulas; model and service names come from users."""
    lines = []
    for row in csv.reader(io.StringIO(text)):
        lines.append(
            [
                "'" + cell if cell[:1] in ("=", "+", "@") or (cell[:1] == "-" and not _number(cell)) else cell
                for cell in row
            ]
        )
    out = io.StringIO()
    csv.writer(out).writerows(lines)
    return out.getvalue()


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def chart_payload(data: dict[str, Any]) -> dict[str, Any]:
    """The JSON the page's script draws (decimals as floats)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return float(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain({k: v for k, v in data.items() if k != "table"})
