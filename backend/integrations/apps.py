from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "AI integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from integrations import signals  # noqa: F401  (cache receivers)
        from integrations.ai import observability, ports
        from integrations.ai.ledger import writer as ledger_writer
        from integrations.ai.runtime.conf import ledger_queue, load_provider_specs
        from integrations.api import tokens
        from integrations.api.v1 import admin as v1_admin  # noqa: F401  (the virtual keys' admin)
        from integrations.api.v1 import keys
        from integrations.jobs import admin as batch_admin  # noqa: F401  (the batch-job admin)
        from integrations.store import DjangoStore
        from integrations.usage import admin as admin_usage  # noqa: F401  (the ledger admins)

        ports.install(DjangoStore())  # the gateway's reads and writes of the database (integrations.ai.ports)
        keys.connect()  # a saved or revoked virtual key is re-read by every process
        tokens.connect()  # so is an API token, or a user, membership or permission its answer holds
        load_provider_specs()  # providers a deployment adds by dotted path (AI_PROVIDER_SPECS)
        # checked now: a bad value met first by a call's ledger hand-off would be logged, and its rows lost
        ledger_queue()

        observability.configure()  # OTEL_* traces and metrics, Prometheus, the JSON call log (all off by default)

        ledger_writer.install_signal_handler()  # queued ledger rows are written before SIGTERM ends the process
