"""The Celery app: `celery -A panel worker`. Configured from Django settings (CELERY_*)."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")

app = Celery("panel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_shutdown.connect
@signals.worker_process_shutdown.connect
def flush_ai_ledger(**kwargs: object) -> None:
    """Write the AI usage rows still queued in this worker before it stops."""
    from integrations.ai import usage

    usage.flush()
