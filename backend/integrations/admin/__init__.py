"""The settings screens of the Django admin: a site's AI provider settings, credentials and model
mappings (`provider_settings`), its test/preview views (`views`), forms and their structured fields,
the import/export resources, and the per-site overview on the admin index (`overview`),
the editors' quotas (`editor_quotas`), the price table screen (`prices`), the try-a-model screen
(`try_screen`), and the export/import safety of settings (`export_safety`, `import_storage`), the sent
budget alerts (`budget_alerts`) and the settings that can never apply (`settings_warnings`).

May import the gateway (`integrations.ai`), `integrations.models`, `tenancy`. Importing this package
registers the ModelAdmins (Django's admin autodiscovery imports `integrations.admin`).
"""

# registers the settings admins
from integrations.admin import budget_alerts, editor_quotas, provider_settings  # noqa: F401
