from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "AI integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import admin_usage, signals  # noqa: F401  (ledger admin; cache invalidation receivers)
