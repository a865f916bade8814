from django.apps import AppConfig


class PagesConfig(AppConfig):
    name = "pages"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import signals, tasks  # noqa: F401  (registers the batch job handlers and the re-embedding)
