"""Template versions: record on save, labels (production, draft), rollback, and a readable diff.

Every save of a `PromptTemplate` whose prompt or parameters changed becomes a new numbered
`PromptTemplateVersion`; versions are never edited. A normal save makes the new version production
(what runs use); a save as draft leaves production where it was. Rollback copies an old version into
a new one and makes it production, so the history only ever grows.
"""

from __future__ import annotations

import difflib
from typing import Any

from django.db import transaction
from django.db.models import Max

from .models import PromptTemplate, PromptTemplateVersion
from .versions import content_hash

VERSIONED_FIELDS = ("system_prompt", "text", "default_model", "max_tokens", "temperature")


def state_of(template: PromptTemplate) -> dict[str, Any]:
    return {
        "system_prompt": template.system_prompt,
        "text": template.template,
        "default_model": template.default_model,
        "max_tokens": template.max_tokens,
        "temperature": template.temperature,
    }


def hash_of(state: dict[str, Any]) -> str:
    return content_hash(*(state[name] for name in VERSIONED_FIELDS))


@transaction.atomic
def record_version(
    template: PromptTemplate, user: Any = None, draft: bool = False, restored_from: PromptTemplateVersion | None = None
) -> PromptTemplateVersion:
    """The version for the template's saved state: a new one when the state changed, else the latest."""
    state = state_of(template)
    digest = hash_of(state)
    latest = template.versions.order_by("-number").first()
    if latest is None or latest.content_hash != digest or restored_from is not None:
        number = (template.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        latest = PromptTemplateVersion.objects.create(
            template=template,
            number=number,
            content_hash=digest,
            restored_from=restored_from,
            created_by=user if getattr(user, "is_authenticated", False) else None,
            **state,
        )
    if draft and latest.label == PromptTemplateVersion.PRODUCTION:
        return latest  # nothing new to try: production stays production
    set_label(latest, PromptTemplateVersion.DRAFT if draft else PromptTemplateVersion.PRODUCTION)
    return latest


def set_label(version: PromptTemplateVersion, label: str) -> None:
    """Move `label` to `version` (a version holds one label: a draft made production is no longer the draft)."""
    version.template.versions.filter(label=label).exclude(pk=version.pk).update(label="")
    PromptTemplateVersion.objects.filter(pk=version.pk).update(label=label)
    version.label = label


def _load(template: PromptTemplate, version: PromptTemplateVersion) -> None:
    """Put `version`'s text into the template's editable fields without recording a new version."""
    fields = {
        "system_prompt": version.system_prompt,
        "template": version.text,
        "default_model": version.default_model,
        "max_tokens": version.max_tokens,
        "temperature": version.temperature,
    }
    PromptTemplate.objects.filter(pk=template.pk).update(**fields)
    for name, value in fields.items():
        setattr(template, name, value)


@transaction.atomic
def rollback(template: PromptTemplate, version: PromptTemplateVersion, user: Any = None) -> PromptTemplateVersion:
    """Make `version`'s prompt production again, as a new version that says where it came from."""
    if version.template_id != template.pk:
        raise ValueError(f"Version {version.pk} belongs to another template.")
    _load(template, version)
    return record_version(template, user=user, restored_from=version)


@transaction.atomic
def promote_draft(template: PromptTemplate) -> PromptTemplateVersion:
    """The draft becomes production."""
    draft = template.draft_version
    if draft is None:
        raise ValueError("This template has no draft to promote.")
    set_label(draft, PromptTemplateVersion.PRODUCTION)
    _load(template, draft)
    return draft


@transaction.atomic
def discard_draft(template: PromptTemplate) -> None:
    """Drop the draft label (the version stays in the history) and show production in the form again."""
    template.versions.filter(label=PromptTemplateVersion.DRAFT).update(label="")
    production = template.production_version
    if production is not None:
        _load(template, production)


def diff(old: PromptTemplateVersion | None, new: PromptTemplateVersion) -> list[tuple[str, str]]:
    """Line diff of the prompt and its parameters between two versions: (kind, line) with kind +, -, or space."""

    def lines(version: PromptTemplateVersion | None) -> list[str]:
        if version is None:
            return []
        return [
            "[system]",
            *version.system_prompt.splitlines(),
            "[template]",
            *version.text.splitlines(),
            f"[model] {version.default_model or '(site default)'}",
            f"[max_tokens] {version.max_tokens}",
            f"[temperature] {version.temperature}",
        ]

    out = []
    for line in difflib.ndiff(lines(old), lines(new)):
        if line.startswith("? "):
            continue
        out.append((line[0], line[2:]))
    return out


def template_saved(sender: Any, instance: PromptTemplate, raw: bool = False, **kwargs: Any) -> None:
    """post_save of a PromptTemplate: keep the saved text as a new immutable version (when it differs
    from the latest); `version_author` and `save_as_draft` are what the saving screen set on it."""
    if not raw:
        record_version(instance, user=instance.version_author, draft=instance.save_as_draft)
