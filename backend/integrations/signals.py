"""Keep cached AI configuration in step with the database: a change invalidates every site it touched.

A record moved from site A to site B touches both: B must start using it, and A must stop
(otherwise A keeps sending with a key it no longer has until a restart). `pre_save` remembers the
site a row had before the save; deletes invalidate the site the row belonged to.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import receiver

from integrations.ai.sites.site_config import invalidate_site
from tenancy.models import SiteMembership

from .models import AIProviderSettings, EditorQuota, ModelMapping, ModelPrice, ProviderCredential


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


@receiver([post_save, post_delete], sender=EditorQuota)
def _editor_quota_changed(sender, instance: EditorQuota, **kwargs) -> None:
    invalidate_site(instance.site_id)  # the snapshot holds each editor's resolved quota


@receiver([post_save, post_delete], sender=SiteMembership)
def _membership_changed(sender, instance: SiteMembership, **kwargs) -> None:
    if EditorQuota.objects.filter(site_id=instance.site_id, group__isnull=False).exists():
        invalidate_site(instance.site_id)  # a group's quota reaches the site's staff only


@receiver(m2m_changed, sender=get_user_model().groups.through)
def _groups_changed(sender, instance, action: str, pk_set=None, **kwargs) -> None:
    """A user joining or leaving a group changes who a group's quota reaches."""
    if not action.startswith("post_"):
        return
    rows = EditorQuota.objects.filter(group__isnull=False)
    if isinstance(instance, Group):  # group.user_set changed
        rows = rows.filter(group=instance)
    elif pk_set:
        rows = rows.filter(group__in=pk_set)
    for site_id in set(rows.values_list("site_id", flat=True)):
        invalidate_site(site_id)
