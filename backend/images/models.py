"""A site's image library: the files (through Django's storage API), their alt text and where it came from.

An image belongs to exactly one site. Its file and thumbnail live in `default_storage` (the local
disk, or S3-style storage by setting), under a per-site prefix. `alt_text` is what pages show;
`alt_text_ai` marks it as the AI's accepted text, and goes away when a person changes it (`save`).
A proposal waits on the image (`alt_proposal`) until a person accepts it, so proposals made by a
batch job are reviewed exactly like one made from the image's page.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib.sites.models import Site
from django.db import models
from django.utils import timezone

ALT_TEXT_MAX = 250  # screen readers read it whole: a sentence or two


def upload_to(instance: Image, filename: str) -> str:
    """A per-site prefix and a random name: uploads never collide or reveal another file's name."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
    return f"images/site-{instance.site_id}/{uuid.uuid4().hex}.{extension}"


def thumbnail_to(instance: Image, filename: str) -> str:
    return f"images/site-{instance.site_id}/thumbs/{uuid.uuid4().hex}.png"


class Image(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="images")
    title = models.CharField(max_length=200, help_text="For finding it in the library; not shown to readers.")
    file = models.FileField(upload_to=upload_to, max_length=300)
    thumbnail = models.FileField(upload_to=thumbnail_to, max_length=300, blank=True)
    media_type = models.CharField(max_length=40, editable=False)
    width = models.PositiveIntegerField(editable=False, default=0)
    height = models.PositiveIntegerField(editable=False, default=0)
    size_bytes = models.PositiveIntegerField(editable=False, default=0)
    alt_text = models.CharField(
        max_length=ALT_TEXT_MAX,
        blank=True,
        help_text="What a screen reader says instead of the image. Empty: still to do.",
    )
    alt_text_ai = models.BooleanField(
        default=False, editable=False, help_text="The alt text is the AI's accepted text (a person's edit clears it)."
    )
    alt_proposal = models.CharField(
        max_length=ALT_TEXT_MAX, blank=True, editable=False, help_text="AI alt text waiting for review."
    )
    alt_proposal_origin = models.JSONField(null=True, blank=True, editable=False)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["site__domain", "-created_at", "-id"]

    def __str__(self) -> str:
        return self.title

    def save(self, *args: Any, **kwargs: Any) -> None:
        """A person's change of the alt text clears the AI marker and marks the provenance row edited."""
        if self.alt_text_ai and self.pk is not None:
            current = self.alt_provenance.order_by("-accepted_at", "-id").first()
            if current is None or current.accepted_text != self.alt_text:
                self.alt_text_ai = False
                if kwargs.get("update_fields") is not None:
                    kwargs["update_fields"] = {*kwargs["update_fields"], "alt_text_ai"}
                if current is not None and current.edited_at is None:
                    AltTextProvenance.objects.filter(pk=current.pk).update(edited_at=timezone.now())
        super().save(*args, **kwargs)

    @property
    def missing_alt(self) -> bool:
        return not self.alt_text.strip()


class AltTextProvenance(models.Model):
    """Where an accepted AI alt text came from: model, prompt version, cost, the page it was written for."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="alt_provenance")
    context_page = models.ForeignKey(
        "pages.Page",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The page whose text was given as context.",
    )
    provider = models.CharField(max_length=20, blank=True)
    model = models.CharField(max_length=200, blank=True, help_text="The model that served the request.")
    prompt_name = models.CharField(max_length=200)
    prompt_version = models.CharField(max_length=40, help_text="A hash of the built-in prompt's text.")
    request_id = models.CharField(max_length=200, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(
        max_digits=14,
        decimal_places=8,
        null=True,
        blank=True,
        help_text="USD of the request(s) that produced it (a corrective retry included).",
    )
    latency_ms = models.PositiveIntegerField(default=0)
    generated_at = models.DateTimeField()
    proposed_text = models.CharField(max_length=ALT_TEXT_MAX, blank=True)
    accepted_text = models.CharField(max_length=ALT_TEXT_MAX, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    accepted_at = models.DateTimeField(auto_now_add=True)
    edited_at_review = models.BooleanField(default=False, help_text="The person changed the proposal before saving.")
    edited_at = models.DateTimeField(null=True, blank=True, help_text="When a person changed the text afterwards.")

    class Meta:
        ordering = ["-accepted_at", "-id"]
        verbose_name_plural = "alt text provenance"

    def __str__(self) -> str:
        return f"Alt text of {self.image} by {self.model or self.provider}"

    @property
    def ai_generated(self) -> bool:
        return self.edited_at is None
