"""Keep cached AI configuration in step with the database: a save invalidates only what it touched."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .ai.site_config import invalidate_site
from .models import AIProviderSettings, ModelMapping, ModelPrice


@receiver([post_save, post_delete], sender=AIProviderSettings)
def _settings_changed(sender, instance: AIProviderSettings, **kwargs) -> None:
    invalidate_site(instance.site_id)


@receiver([post_save, post_delete], sender=ModelMapping)
def _mapping_changed(sender, instance: ModelMapping, **kwargs) -> None:
    invalidate_site(instance.site_id)


@receiver([post_save, post_delete], sender=ModelPrice)
def _price_changed(sender, instance: ModelPrice, **kwargs) -> None:
    invalidate_site(None)
