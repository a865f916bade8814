from django.apps import AppConfig


class PromptsConfig(AppConfig):
    name = "prompts"
    verbose_name = "Prompt templates"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from . import tasks, template_versions  # noqa: F401  (tasks registers the batch job handler)
        from .models import PromptTemplate

        # Every save keeps a version of the template (models do not import template_versions).
        post_save.connect(
            template_versions.template_saved,
            sender=PromptTemplate,
            dispatch_uid="prompts.template_versions.template_saved",
        )
