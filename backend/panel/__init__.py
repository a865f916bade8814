"""Panel's Django project: settings, URLs, the WSGI/ASGI entry points and the servers' config, the cache
backends (`cache.py`), the `/v1` request handler (`api_handler.py`) and its stream writer (`coalesce.py`).
It may import every app; no app imports it (the import-linter's acyclic-siblings contract).
Importing it loads the Celery app so `@shared_task`s bind to it."""

from .celery import app as celery_app

__all__ = ["celery_app"]
