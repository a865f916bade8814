from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "AI integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import admin_usage, batch_admin, signals  # noqa: F401  (ledger, batch-job admins; cache receivers)
        from .ai import ledger_writer, observability
        from .ai.conf import load_provider_specs

        load_provider_specs()  # providers a deployment adds by dotted path (AI_PROVIDER_SPECS)

        observability.configure()  # OTEL_* traces and metrics, Prometheus, the JSON call log (all off by default)

        ledger_writer.install_signal_handler()  # queued ledger rows are written before SIGTERM ends the process
