from django.apps import AppConfig


class PagesConfig(AppConfig):
    name = "pages"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from integrations.api import targets

        from . import api, provenance, signals, tasks  # noqa: F401  (batch job handlers, the re-embedding)
        from .models import Block, Page

        targets.register("page", api.PageFields())  # what POST /api/ai/generate/ with page_id writes
        # A saved page or block whose text a person changed is no longer the AI's (models do not import provenance).
        post_save.connect(provenance.page_saved, sender=Page, dispatch_uid="pages.provenance.page_saved")
        post_save.connect(provenance.block_saved, sender=Block, dispatch_uid="pages.provenance.block_saved")
