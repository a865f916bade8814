"""Issue 19: migration 0018 marks ledger rows that were silently free (ok, no cost, no source) as unpriced,
and 0019 counts them in their daily roll-ups.

Migrates back to 0017, writes rows through the historical model, migrates forward and checks each
kind of row, then back again (the reverse clears the mark) and finally to the latest state.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from .migrating import migrate_to

BEFORE = [("integrations", "0017_virtual_keys")]
AFTER = [("integrations", "0019_usage_daily_unpriced")]


@pytest.mark.django_db(transaction=True)
def test_silently_free_rows_become_unpriced_and_nothing_else_changes():
    try:
        apps = migrate_to(BEFORE)
        Usage = apps.get_model("integrations", "AIUsage")
        common = {"provider": "openai", "served_model": "gpt-4o-mini-2024-07-18"}
        rows = {
            "free_ok": Usage.objects.create(status="ok", cost=None, cost_source="", **common),
            "priced": Usage.objects.create(status="ok", cost=Decimal("0.1"), cost_source="price_table", **common),
            "reported": Usage.objects.create(status="ok", cost=Decimal("0.2"), cost_source="reported", **common),
            "error": Usage.objects.create(status="error", cost=None, cost_source="", **common),
            "refused": Usage.objects.create(status="refused", cost=Decimal(0), cost_source="", **common),
        }
        Daily = apps.get_model("integrations", "UsageDaily")
        day = rows["free_ok"].created_at.date()
        Daily.objects.create(
            day=day,
            provider="openai",
            model="gpt-4o-mini-2024-07-18",
            service="general",
            status="ok",
            error_class="",
            requests=3,
            cost=Decimal("0.3"),
        )
        apps = migrate_to(AFTER)
        Usage = apps.get_model("integrations", "AIUsage")
        # the dashboard's roll-up of that day counts the one unpriced row of its three
        assert apps.get_model("integrations", "UsageDaily").objects.get().unpriced == 1
        after = {name: Usage.objects.get(pk=row.pk) for name, row in rows.items()}
        assert {name: row.cost_source for name, row in after.items()} == {
            "free_ok": "unpriced",
            "priced": "price_table",
            "reported": "reported",
            "error": "",
            "refused": "",
        }
        assert after["free_ok"].cost is None and after["priced"].cost == Decimal("0.1")
        apps = migrate_to(BEFORE)
        Usage = apps.get_model("integrations", "AIUsage")
        assert Usage.objects.get(pk=rows["free_ok"].pk).cost_source == ""
    finally:
        executor = MigrationExecutor(connection)
        migrate_to(executor.loader.graph.leaf_nodes())
