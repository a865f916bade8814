"""Prompt templates with named variables, global or per site, and their saved runs."""

from __future__ import annotations

import string
from typing import Any

from django.conf import settings
from django.contrib.sites.models import Site
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class TemplateVariableError(ValueError):
    """Rendering was asked with a variable missing or one the template does not use; names them."""


def template_variables(template: str) -> list[str]:
    """The `{name}` variables of a template, in order of first use; raises ValueError when malformed."""
    names: list[str] = []
    for _, field, spec, conversion in string.Formatter().parse(template):
        if field is None:
            continue
        if not field.isidentifier():
            raise ValueError(
                f"{{{field}}} is not a variable name: use letters, digits and _ (write {{{{ and }}}} for braces)"
            )
        if spec or conversion:
            raise ValueError(f"{{{field}}} may not have a format spec or conversion")
        if field not in names:
            names.append(field)
    return names


class PromptTemplate(models.Model):
    site = models.ForeignKey(
        Site,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="prompt_templates",
        help_text="Empty for a template every site can use.",
    )
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200)
    system_prompt = models.TextField(blank=True)
    template = models.TextField(help_text="Text with {variable} placeholders; {{ and }} for literal braces.")
    default_model = models.CharField(max_length=200, blank=True, help_text="Empty: the site's default model.")
    max_tokens = models.PositiveIntegerField(default=500, validators=[MinValueValidator(1), MaxValueValidator(128_000)])
    temperature = models.FloatField(default=0.7, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Set by the admin before save(): who saved, and whether the new version is only a draft.
    version_author: Any = None
    save_as_draft: bool = False

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["slug"], condition=Q(site__isnull=True), name="unique_global_template"),
            models.UniqueConstraint(
                fields=["site", "slug"], condition=Q(site__isnull=False), name="unique_site_template"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def variables(self) -> list[str]:
        return template_variables(self.template)

    def clean(self) -> None:
        try:
            template_variables(self.template)
        except ValueError as exc:
            raise ValidationError({"template": str(exc)}) from None

    @property
    def production_version(self) -> PromptTemplateVersion | None:
        """The version runs use (labels live on the versions; read fresh, never cached)."""
        return self.versions.filter(label=PromptTemplateVersion.PRODUCTION).first() if self.pk else None

    @property
    def draft_version(self) -> PromptTemplateVersion | None:
        """A version being tried; runs use it only when asked to."""
        return self.versions.filter(label=PromptTemplateVersion.DRAFT).first() if self.pk else None

    def active_version(self, draft: bool = False) -> PromptTemplateVersion | None:
        """The version a run uses: production (or the draft when asked and there is one), None before a save."""
        return (self.draft_version if draft else None) or self.production_version

    def render(self, variables: dict[str, object]) -> str:
        return render_text(self.template, self.slug, variables)


def render_text(template: str, slug: str, variables: dict[str, object]) -> str:
    """`template` filled with `variables`; TemplateVariableError names the missing and unknown ones."""
    names = template_variables(template)
    expected = set(names)
    given = set(variables)
    missing = [name for name in names if name not in given]
    extra = sorted(given - expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing variable(s): {', '.join(missing)}")
        if extra:
            parts.append(f"unknown variable(s): {', '.join(extra)}")
        raise TemplateVariableError(f"Template {slug!r}: {'; '.join(parts)}.")
    return template.format(**{k: str(v) for k, v in variables.items()})


class PromptTemplateVersion(models.Model):
    """One saved state of a template: its text never changes after it is written (rollback makes a new one).

    Only the label moves: one version per template is `production`, at most one is the `draft`.
    """

    PRODUCTION, DRAFT = "production", "draft"

    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    system_prompt = models.TextField(blank=True)
    text = models.TextField()
    default_model = models.CharField(max_length=200, blank=True)
    max_tokens = models.PositiveIntegerField(default=500)
    temperature = models.FloatField(default=0.7)
    content_hash = models.CharField(max_length=40)
    label = models.CharField(
        max_length=10, blank=True, default="", choices=[(PRODUCTION, "production"), (DRAFT, "draft")]
    )
    restored_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["template", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["template", "number"], name="unique_template_version"),
            models.UniqueConstraint(fields=["template", "label"], condition=~Q(label=""), name="one_version_per_label"),
        ]

    def __str__(self) -> str:
        return f"{self.template} v{self.number}"

    @property
    def display(self) -> str:
        return f"v{self.number}"

    def render(self, variables: dict[str, object]) -> str:
        return render_text(self.text, self.template.slug, variables)


class PromptRun(models.Model):
    """A template's output that a person chose to keep."""

    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(
        PromptTemplateVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
        help_text="The template version that produced it.",
    )
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="prompt_runs")
    variables = models.JSONField(default=dict)
    output = models.TextField()
    model = models.CharField(max_length=200, blank=True)
    provider = models.CharField(max_length=20, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(
        max_digits=14, decimal_places=8, null=True, blank=True, help_text="USD; empty when nobody knows it."
    )
    request_id = models.CharField(
        max_length=200, blank=True, help_text="The provider's request id: the run's rows in the AI usage ledger."
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.template} run {self.created_at:%Y-%m-%d %H:%M}"


class PromptTrialItem(models.Model):
    """One variable set of a trial: a version (usually the draft) run where a saved run already exists.

    The trial itself is a `BatchJob` (kind `prompts.trial_version`: progress, budget checks); each item
    keeps the old output beside the new one with what each took, for the side-by-side screen.
    """

    job = models.ForeignKey("integrations.BatchJob", on_delete=models.CASCADE, related_name="trial_items")
    version = models.ForeignKey(PromptTemplateVersion, on_delete=models.CASCADE, related_name="trial_items")
    run = models.ForeignKey(
        PromptRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The saved run whose variables and output are the 'before'.",
    )
    variables = models.JSONField(default=dict)
    old_output = models.TextField(blank=True)
    old_tokens = models.PositiveIntegerField(default=0)
    old_cost = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    old_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    new_output = models.TextField(blank=True)
    new_tokens = models.PositiveIntegerField(default=0)
    new_cost = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    new_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True)
    request_id = models.CharField(max_length=200, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["job", "id"]

    def __str__(self) -> str:
        return f"trial item {self.pk} of job {self.job_id}"
