"""Issue 25: migration 0016 gives API tokens a site, scopes and an expiry and adds `integrations.use_ai`,
without anyone losing access: existing tokens keep what they could do, existing staff get the permission.

Migrates back to 0015, makes users and a token through the historical models, migrates forward and
checks; then back to the latest state for the other tests.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from .migrating import migrate_to

BEFORE = [("integrations", "0015_ledger_dead_letter")]
AFTER = [("integrations", "0016_api_token_scopes_and_use_ai")]


def _latest():
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_existing_tokens_and_staff_keep_their_access():
    try:
        old_apps = migrate_to(BEFORE)
        User = old_apps.get_model("auth", "User")
        Token = old_apps.get_model("integrations", "APIToken")
        staff = User.objects.create(username="old-staff", is_staff=True)
        User.objects.create(username="customer", is_staff=False)
        User.objects.create(username="gone", is_staff=True, is_active=False)
        Token.objects.create(user=staff, name="storefront", prefix="pnl_abc", key_hash="h" * 64)

        new_apps = migrate_to(AFTER)
        User = new_apps.get_model("auth", "User")
        Token = new_apps.get_model("integrations", "APIToken")
        token = Token.objects.get(name="storefront")
        assert token.scopes == ["generate", "pages.write"] and token.site_id is None and token.expires_at is None
        holders = set(User.objects.filter(user_permissions__codename="use_ai").values_list("username", flat=True))
        assert holders == {"old-staff"}
    finally:
        _latest()

    from django.contrib.auth.models import User as LiveUser

    assert LiveUser.objects.get(username="old-staff").has_perm("integrations.use_ai")
