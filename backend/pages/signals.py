"""A page or block saved or deleted: after the commit, its site's changed pages are re-embedded (a job),
and the site's in-process search matrices are dropped."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Block, Page


def _changed(site_id: int) -> None:
    def after_commit() -> None:
        from . import search, tasks

        search.forget(site_id)
        tasks.schedule_embed(site_id)

    transaction.on_commit(after_commit)


@receiver(post_save, sender=Page)
@receiver(post_delete, sender=Page)
def _page_changed(sender: Any, instance: Page, **kwargs: Any) -> None:
    if not kwargs.get("raw"):  # loaddata: the fixture's pages are indexed by the next job
        _changed(instance.site_id)


@receiver(post_save, sender=Block)
@receiver(post_delete, sender=Block)
def _block_changed(sender: Any, instance: Block, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return
    page = Page.objects.filter(pk=instance.page_id).values_list("site_id", flat=True).first()
    if page is not None:
        _changed(page)
