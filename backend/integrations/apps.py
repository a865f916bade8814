from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "AI integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import admin_usage, signals  # noqa: F401  (ledger admin; cache invalidation receivers)
        from .ai import ledger_writer

        ledger_writer.install_signal_handler()  # queued ledger rows are written before SIGTERM ends the process
