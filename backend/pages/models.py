"""CMS pages and their structured blocks."""

from __future__ import annotations

from django.conf import settings
from django.contrib.sites.models import Site
from django.core.exceptions import ValidationError
from django.db import models

from .blocks import BLOCK_TYPES, BlockValidationError, image_ids, validate_block

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

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        from .provenance import clear_edited

        clear_edited(self)  # a field a person changed is no longer the AI's text

    @property
    def missing_meta(self) -> bool:
        return not (self.meta_title and self.meta_description)

    def ai_disclosure(self) -> dict:
        """Which fields are AI-generated and not since edited by a person, with model and date (`disclosure`)."""
        from .disclosure import ai_disclosure

        return ai_disclosure(self)


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

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        from .provenance import clear_edited

        clear_edited(self.page, block=self)

    def clean(self) -> None:
        try:
            validate_block(self.type, self.content)
        except BlockValidationError as exc:
            raise ValidationError({"content": exc.errors}) from None
        wanted = image_ids(self.type, self.content)
        if wanted:  # only images of the page's own site's library
            from images.models import Image

            found = {
                str(pk)
                for pk in Image.objects.filter(site_id=self.page.site_id, pk__in=wanted).values_list("pk", flat=True)
            }
            if missing := sorted(wanted - found, key=int):
                raise ValidationError({"content": [f"image {', '.join(missing)} is not in this site's image library"]})


class ContentProvenance(models.Model):
    """Where one AI-written field or block came from, and whether it is still the AI's text.

    Written when a person accepts a proposal (or a bulk regeneration saves one). `accepted_text` is
    what was saved; when a later save stores something else, the row stops being "AI-generated"
    (`edited_at` set) but keeps its history. The newest row per page and field is the current one.
    """

    FIELD_CHOICES = [
        ("meta_title", "Meta title"),
        ("meta_description", "Meta description"),
        ("block", "Block"),
        ("body", "Body"),
        ("title", "Title"),
    ]  # body: the JSON API, translations; title: translations

    page = models.ForeignKey(Page, on_delete=models.CASCADE, related_name="provenance")
    block = models.ForeignKey(Block, null=True, blank=True, on_delete=models.CASCADE, related_name="provenance")
    field = models.CharField(max_length=20, choices=FIELD_CHOICES)
    provider = models.CharField(max_length=20, blank=True)
    model = models.CharField(max_length=200, blank=True, help_text="The model that served the request.")
    prompt_name = models.CharField(max_length=200, help_text="A built-in prompt (pages.meta) or a template's slug.")
    prompt_version = models.CharField(max_length=40, help_text="Built-in: a hash of its text; template: v<number>.")
    template_version = models.ForeignKey(
        "prompts.PromptTemplateVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    parameters = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=200, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(
        max_digits=14,
        decimal_places=8,
        null=True,
        blank=True,
        help_text="USD of the request(s) that produced it; shared by fields of one request.",
    )
    latency_ms = models.PositiveIntegerField(default=0)
    source_hash = models.CharField(
        max_length=40,
        blank=True,
        help_text="Hash of the page title and body it was generated from: when they change, the field is stale.",
    )
    generated_at = models.DateTimeField()
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    accepted_at = models.DateTimeField(auto_now_add=True)
    accepted_text = models.TextField(blank=True)
    edited_at_review = models.BooleanField(default=False, help_text="The person changed the proposal before saving.")
    edited_at = models.DateTimeField(null=True, blank=True, help_text="When a person changed the text afterwards.")

    class Meta:
        ordering = ["-accepted_at", "-id"]
        verbose_name_plural = "content provenance"

    def __str__(self) -> str:
        return f"{self.get_field_display()} of {self.page} by {self.model or self.provider}"

    @property
    def ai_generated(self) -> bool:
        return self.edited_at is None


class SiteLanguage(models.Model):
    """A language a site publishes in; the default one is what its own (untranslated) pages are written in."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="languages")
    code = models.CharField(max_length=12, help_text="A language tag such as en, de or pt-BR.")
    name = models.CharField(max_length=60, help_text="Shown to editors and named in the translation prompt.")
    is_default = models.BooleanField(default=False, help_text="The language the site's pages are written in.")

    class Meta:
        ordering = ["site__domain", "-is_default", "code"]
        constraints = [
            models.UniqueConstraint(fields=["site", "code"], name="unique_language_per_site"),
            models.UniqueConstraint(
                fields=["site"], condition=models.Q(is_default=True), name="one_default_language_per_site"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def clean(self) -> None:
        import re

        if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?", self.code or ""):
            raise ValidationError({"code": "Use a language tag such as en, de or pt-BR."})


class GlossaryTerm(models.Model):
    """A term translations of a site must keep as it is, or translate one fixed way (per language or all)."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="glossary_terms")
    term = models.CharField(max_length=100)
    language = models.CharField(max_length=12, blank=True, help_text="Empty: every target language.")
    translation = models.CharField(max_length=100, blank=True, help_text="Empty: keep the term as it is.")

    class Meta:
        ordering = ["site__domain", "term", "language"]
        constraints = [models.UniqueConstraint(fields=["site", "term", "language"], name="unique_glossary_term")]

    def __str__(self) -> str:
        return f"{self.term} → {self.translation or '(kept)'}"

    @property
    def required(self) -> str:
        """What a translation must contain where the source has the term."""
        return self.translation or self.term


class PageTranslation(models.Model):
    """Links a translated page to its source page and language, with the hash of each source field it was
    translated from: a source field whose hash differs now makes that field of the translation stale."""

    source = models.ForeignKey(Page, on_delete=models.CASCADE, related_name="translations")
    page = models.OneToOneField(Page, on_delete=models.CASCADE, related_name="translation_of")
    language = models.CharField(max_length=12)
    source_hashes = models.JSONField(
        default=dict, blank=True, help_text="{field or block:<source block id>: hash of the source text}"
    )
    block_map = models.JSONField(default=dict, blank=True, help_text="{source block id: the translation's block id}")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["source", "language"]
        constraints = [models.UniqueConstraint(fields=["source", "language"], name="unique_translation_language")]

    def __str__(self) -> str:
        return f"{self.page} ({self.language}, translation of {self.source})"


class PageEmbedding(models.Model):
    """A page's vector for search by meaning, kept per site, keyed by the hash of the text it was made from.

    The vector is packed float32 bytes (little-endian): a quarter of JSON's size, and loading a site's
    50,000 rows into one numpy matrix is a `frombuffer` per row, with no parsing.
    """

    page = models.OneToOneField(Page, on_delete=models.CASCADE, related_name="embedding")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+")
    provider = models.CharField(max_length=40)
    model = models.CharField(max_length=200)
    content_hash = models.CharField(max_length=64)
    dimensions = models.PositiveIntegerField()
    vector = models.BinaryField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["site", "model"], name="pages_embedding_site_model")]

    def __str__(self) -> str:
        return f"embedding of {self.page_id} ({self.model})"
