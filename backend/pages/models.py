"""CMS pages and their structured blocks."""

from __future__ import annotations

from django.contrib.sites.models import Site
from django.core.exceptions import ValidationError
from django.db import models

from .blocks import BLOCK_TYPES, BlockValidationError, validate_block

META_TITLE_MAX = 60
META_DESCRIPTION_MAX = 160


class Page(models.Model):
    STATUS_CHOICES = [("draft", "Draft"), ("published", "Published")]

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="pages")
    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200)
    body = models.TextField(blank=True)
    meta_title = models.CharField(max_length=META_TITLE_MAX, blank=True)
    meta_description = models.CharField(max_length=META_DESCRIPTION_MAX, blank=True)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default="draft")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["site__domain", "title"]
        constraints = [models.UniqueConstraint(fields=["site", "slug"], name="unique_page_slug_per_site")]

    def __str__(self) -> str:
        return self.title

    @property
    def missing_meta(self) -> bool:
        return not (self.meta_title and self.meta_description)


class Block(models.Model):
    page = models.ForeignKey(Page, on_delete=models.CASCADE, related_name="blocks")
    type = models.CharField(max_length=20, choices=[(t, t.title()) for t in BLOCK_TYPES])
    order = models.PositiveIntegerField(default=0)
    content = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["page", "order", "id"]

    def __str__(self) -> str:
        return f"{self.type} block #{self.order} of {self.page}"

    def clean(self) -> None:
        try:
            validate_block(self.type, self.content)
        except BlockValidationError as exc:
            raise ValidationError({"content": exc.errors}) from None
