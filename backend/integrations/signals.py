"""Keep cached AI configuration in step with the database: a change invalidates every site it touched.

A record moved from site A to site B touches both: B must start using it, and A must stop
(otherwise A keeps sending with a key it no longer has until a restart). `pre_save` remembers the
site a row had before the save; deletes invalidate the site the row belonged to.
"""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from integrations.ai.sites.site_config import invalidate_site

from .models import AIProviderSettings, ModelMapping, ModelPrice, ProviderCredential


@receiver(pre_save, sender=AIProviderSettings)
@receiver(pre_save, sender=ModelMapping)
def _remember_previous_site(sender, instance, raw: bool = False, **kwargs) -> None:
    if instance.pk is None or raw:
        return
    instance._previous_site_id = sender.objects.filter(pk=instance.pk).values_list("site_id", flat=True).first()


@receiver([post_save, post_delete], sender=AIProviderSettings)
@receiver([post_save, post_delete], sender=ModelMapping)
def _site_scoped_changed(sender, instance, **kwargs) -> None:
    invalidate_site(instance.site_id)
    previous = getattr(instance, "_previous_site_id", instance.site_id)
    if previous != instance.site_id:
        invalidate_site(previous)  # None (a global mapping) invalidates every site


@receiver([post_save, post_delete], sender=ProviderCredential)
def _credential_changed(sender, instance: ProviderCredential, **kwargs) -> None:
    site_id = AIProviderSettings.objects.filter(pk=instance.settings_id).values_list("site_id", flat=True).first()
    if site_id:
        invalidate_site(site_id)


@receiver([post_save, post_delete], sender=ModelPrice)
def _price_changed(sender, instance: ModelPrice, **kwargs) -> None:
    invalidate_site(None)
