"""Issue 11 (2): the data migration carries every site's keys from the nine columns into credential rows.

Migrates back to the state before the rows existed, writes keys through the historical models (as
the old code did), migrates forward and compares: keys before == keys after (decrypted), and the
new column holds ciphertext, not the key. Then back to the latest state for the other tests.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from .migrating import migrate_to

BEFORE = [("integrations", "0006_batchjob_cancel_retry"), ("sites", "0002_alter_domain_unique")]
AFTER = [("integrations", "0009_remove_settings_key_columns")]

OLD = {
    "a.example.test": {
        "openrouter_api_key": "sk-or-v1-" + "0a" * 24,
        "openrouter_default_model": "openai/gpt-4o-mini",
        "openai_api_key": "sk-proj-" + "1b" * 24,
        "openai_base_url": "https://proxy.example.com/v1",
    },
    "b.example.test": {"anthropic_default_model": "claude-3-5-haiku"},  # a preference, no key
    "c.example.test": {},  # nothing set: no rows
}


@pytest.mark.django_db(transaction=True)
def test_keys_before_equal_keys_after_and_the_column_holds_ciphertext():
    try:
        old_apps = migrate_to(BEFORE)
        Site = old_apps.get_model("sites", "Site")
        Settings = old_apps.get_model("integrations", "AIProviderSettings")
        for domain, fields in OLD.items():
            Settings.objects.create(site=Site.objects.create(domain=domain, name=domain), **fields)
        before = {
            (s.site.domain, provider, field): getattr(s, f"{provider}_{field}")
            for s in Settings.objects.select_related("site")
            for provider in ("openrouter", "openai", "anthropic")
            for field in ("api_key", "base_url", "default_model")
        }

        new_apps = migrate_to(AFTER)
        Credential = new_apps.get_model("integrations", "ProviderCredential")
        rows = {(c.settings.site.domain, c.name): c for c in Credential.objects.select_related("settings__site")}
        assert set(rows) == {
            ("a.example.test", "openrouter"),
            ("a.example.test", "openai"),
            ("b.example.test", "anthropic"),
        }
        after = {
            (domain, provider, field): getattr(rows[(domain, provider)], field) if (domain, provider) in rows else ""
            for domain, provider, field in before
        }
        assert after == before
        assert all(rows[key].provider == key[1] and rows[key].enabled for key in rows)

        key = OLD["a.example.test"]["openai_api_key"]
        with connection.cursor() as cursor:
            cursor.execute("SELECT api_key FROM integrations_providercredential WHERE name = %s", ["openai"])
            (raw,) = cursor.fetchone()
        assert raw and key not in raw and key[-12:] not in raw and raw.startswith("gAAAA")  # a Fernet token
        columns = [
            c.name
            for c in connection.introspection.get_table_description(
                connection.cursor(), "integrations_aiprovidersettings"
            )
        ]
        assert not [
            c
            for c in columns
            if c.endswith(("_api_key", "_base_url", "_default_model")) and c != "alert_webhook_secret"
        ]

        # And back: unapplying puts the keys into the columns again.
        old_apps = migrate_to(BEFORE)
        Settings = old_apps.get_model("integrations", "AIProviderSettings")
        again = Settings.objects.get(site__domain="a.example.test")
        assert again.openai_api_key == key and again.openai_base_url == "https://proxy.example.com/v1"
    finally:
        executor = MigrationExecutor(connection)
        migrate_to(executor.loader.graph.leaf_nodes())  # the latest state, whatever came after 0007
