"""The Celery app: `celery -A panel worker`. Configured from Django settings (CELERY_*)."""

import os

from celery import Celery, signals
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")

app = Celery("panel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# `celery -A panel beat` runs these (one beat process per deployment).
app.conf.beat_schedule = {
    # Raw AI usage rows older than AI_USAGE_RETENTION_DAYS; the dashboard's daily roll-ups stay.
    "prune-ai-usage": {"task": "integrations.prune_usage", "schedule": crontab(hour=3, minute=30)},
}


@signals.worker_shutdown.connect
@signals.worker_process_shutdown.connect
def flush_ai_ledger(**kwargs: object) -> None:
    """Write the AI usage rows still queued in this worker before it stops."""
    from integrations.ai.ledger import usage

    usage.flush()
