"""Trying a template version (the draft) on real content before promoting it.

The trial runs the version over the variables of the template's N most recent saved runs on one site,
as a `BatchJob` (progress in the admin; each call passes the site's budget and rate checks through
`generate_batch`), and keeps each old output beside the new one with tokens, cost and latency.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from celery import shared_task
from django.conf import settings

from integrations.ai import AIService
from integrations.ai.ledger import usage
from integrations.jobs.runner import checkpoint, register, run_job, set_total, start_job
from tenancy.access import site_label

from .models import (
    PromptRun,
    PromptTemplate,
    PromptTemplateVersion,
    PromptTrialItem,
    TemplateVariableError,
    template_variables,
)

KIND = "prompts.trial_version"
MAX_TRIAL_ITEMS = 20


def recent_runs(template: PromptTemplate, site_id: int, limit: int) -> list[PromptRun]:
    """The saved runs a trial compares against: newest first, one per distinct variable set."""
    runs, seen = [], set()
    for run in PromptRun.objects.filter(template=template, site_id=site_id).order_by("-created_at", "-id")[:200]:
        key = repr(sorted(run.variables.items())) if isinstance(run.variables, dict) else repr(run.variables)
        if key not in seen:
            seen.add(key)
            runs.append(run)
        if len(runs) >= limit:
            break
    return runs


def _ledger_latency(site_id: int, request_id: str) -> int | None:
    from integrations.models import AIUsage

    if not request_id:
        return None
    return (
        AIUsage.objects.filter(site_id=site_id, request_id=request_id, status=AIUsage.STATUS_OK)
        .order_by("-id")
        .values_list("latency_ms", flat=True)
        .first()
    )


# What a template variable of this name is filled with when the trial runs over the site's pages.
PAGE_VARIABLES: dict[str, Any] = {
    "title": lambda page: page.title,
    "page_title": lambda page: page.title,
    "body": lambda page: page.body,
    "content": lambda page: page.body,
    "text": lambda page: page.body,
    "slug": lambda page: page.slug,
    "meta_title": lambda page: page.meta_title,
    "meta_description": lambda page: page.meta_description,
}


def _names(text: str) -> list[str] | None:
    try:
        return template_variables(text)
    except ValueError:
        return None


def fillable_from_pages(template: PromptTemplate, *versions: PromptTemplateVersion) -> bool:
    """Every variable of the template (and of `versions`) has a page field to come from (title, body, ...)."""
    for text in (template.template, *(version.text for version in versions)):
        names = _names(text)
        if not names or any(name not in PAGE_VARIABLES for name in names):
            return False
    return True


def page_variables(version: PromptTemplateVersion, page: Any) -> dict[str, Any]:
    """The version's variables filled from `page` (each version its own: a draft may use fewer)."""
    return {name: PAGE_VARIABLES[name](page) for name in template_variables(version.text)}


def recent_pages(site_id: int, limit: int) -> list[Any]:
    from pages.models import Page

    return list(Page.objects.filter(site_id=site_id).order_by("-updated_at", "-id")[:limit])


@register(KIND)
def _trial(job: Any, report: Any) -> None:
    if job.params.get("page_ids") is not None:
        _trial_over_pages(job, report)
        return
    version = PromptTemplateVersion.objects.select_related("template").get(pk=job.params["version_id"])
    runs = list(
        PromptRun.objects.filter(pk__in=job.params["run_ids"], template=version.template, site_id=job.site_id).order_by(
            "-created_at", "-id"
        )
    )
    set_total(job, len(runs), keys=[run.pk for run in runs])
    prompts, ready = [], []
    for run in runs:
        try:
            prompts.append(version.render(run.variables))
            ready.append(run)
        except TemplateVariableError as exc:
            PromptTrialItem.objects.create(
                job=job, version=version, run=run, variables=run.variables, old_output=run.output, error=str(exc)[:500]
            )
            report(f"run {run.pk}", False, "invalid_variables", str(exc), key=run.pk)
    concurrency = int(job.params.get("concurrency") or settings.AI_BATCH_CONCURRENCY)
    label = f"Prompt template: {version.template} {version.display} (trial)"
    for start in range(0, len(ready), concurrency):
        checkpoint(job)  # a cancelled trial stops here: the chunk in flight finished, nothing new starts
        chunk = ready[start : start + concurrency]
        items = _generate(job, version, prompts[start : start + concurrency], concurrency, label)
        for run, item in zip(chunk, items, strict=True):
            _save_item(job, version, run, item, report)


def _generate(job: Any, version: PromptTemplateVersion, prompts: list[str], concurrency: int, label: str) -> list:
    with usage.attributed_to(version.template, label=label):
        items = AIService(site=job.site_id, service="prompts.trial").generate_batch(
            prompts,
            concurrency=concurrency,
            model=version.default_model or None,
            max_tokens=version.max_tokens,
            temperature=version.temperature,
            system_prompt=version.system_prompt or None,
        )
    usage.flush()
    return items


def _trial_over_pages(job: Any, report: Any) -> None:
    """Production and the tried version on the same recent pages: both run now, side by side."""
    from pages.models import Page

    from .run_previews import call_cost

    version = PromptTemplateVersion.objects.select_related("template").get(pk=job.params["version_id"])
    baseline = PromptTemplateVersion.objects.get(pk=job.params["baseline_id"], template=version.template)
    by_pk = Page.objects.filter(site_id=job.site_id).in_bulk(job.params["page_ids"])
    pages = [by_pk[pk] for pk in job.params["page_ids"] if pk in by_pk]
    set_total(job, len(pages), keys=[page.pk for page in pages])
    concurrency = int(job.params.get("concurrency") or settings.AI_BATCH_CONCURRENCY)
    label = f"Prompt template: {version.template} {version.display} (trial)"
    for start in range(0, len(pages), concurrency):
        checkpoint(job)  # a cancelled trial stops here
        chunk = pages[start : start + concurrency]
        olds = _generate(
            job, baseline, [baseline.render(page_variables(baseline, p)) for p in chunk], concurrency, label
        )
        news = _generate(job, version, [version.render(page_variables(version, p)) for p in chunk], concurrency, label)
        for page, old, new in zip(chunk, olds, news, strict=True):
            values = {**page_variables(baseline, page), **page_variables(version, page)}
            row = PromptTrialItem(
                job=job,
                version=version,
                variables={
                    "page": page.title,
                    **{k: (v if len(str(v)) <= 300 else str(v)[:300] + "…") for k, v in values.items()},
                },
            )
            problem = next((i.error for i in (old, new) if not i.ok), None)
            if old.ok:
                row.old_output, row.old_tokens = old.result.content, old.result.total_tokens
                row.old_cost, row.old_latency_ms = call_cost(job.site_id, old.result), int(old.result.latency_ms)
            if new.ok:
                row.new_output, row.new_tokens = new.result.content, new.result.total_tokens
                row.model = new.result.model
                row.new_cost, row.new_latency_ms = call_cost(job.site_id, new.result), int(new.result.latency_ms)
                row.request_id = (new.result.request_id or "")[:200]
            if problem is not None:
                row.error = f"{problem.code}: {problem.message}"[:500]
            row.save()
            report(
                f"page {page.pk} {page.slug}",
                problem is None,
                problem.code if problem else "",
                problem.message if problem else "",
                key=page.pk,
            )


def _save_item(job: Any, version: PromptTemplateVersion, run: PromptRun, item: Any, report: Any) -> None:
    """One compared item: the saved run's output and numbers beside the version's, or the error it raised."""
    from .run_previews import call_cost

    row = PromptTrialItem(
        job=job,
        version=version,
        run=run,
        variables=run.variables,
        old_output=run.output,
        old_tokens=run.total_tokens,
        old_cost=run.cost,
        old_latency_ms=_ledger_latency(job.site_id, run.request_id),
    )
    if item.ok:
        result = item.result
        row.new_output, row.new_tokens, row.model = result.content, result.total_tokens, result.model
        row.new_cost = call_cost(job.site_id, result)
        row.new_latency_ms, row.request_id = int(result.latency_ms), (result.request_id or "")[:200]
        report(f"run {run.pk}", True, key=run.pk)
    else:
        row.error = f"{item.error.code}: {item.error.message}"[:500]
        report(f"run {run.pk}", False, item.error.code, item.error.message, key=run.pk)
    row.save()


@shared_task(name="prompts.trial_template_version")
def trial_template_version(job_id: int) -> int:
    run_job(job_id)
    return job_id


def start_trial(
    version: PromptTemplateVersion,
    site: Any,
    limit: int,
    user: Any = None,
    background: bool = False,
    concurrency: int | None = None,
    source: str = "runs",
):
    """Queue (or run in-process) a trial of `version` over the site's `limit` most recent saved runs.

    `source="pages"`: over the site's `limit` most recently changed pages instead, for a template whose
    variables all come from a page (`PAGE_VARIABLES`); production runs beside it as the "before".

    `background=True` (no broker): on a thread, so the trial page shows progress and can be cancelled.
    """
    if source == "pages":
        return _start_over_pages(version, site, limit, user, background, concurrency)
    runs = recent_runs(version.template, site.pk, min(limit, MAX_TRIAL_ITEMS))
    if not runs:
        raise ValueError(
            f"No saved runs of “{version.template}” on {site_label(site)} to try "
            f"{version.display} on: run the template and save some outputs first."
        )
    return start_job(
        KIND,
        site,
        trial_template_version,
        {
            "template_id": version.template_id,
            "version_id": version.pk,
            "run_ids": [run.pk for run in runs],
            **({"concurrency": concurrency} if concurrency else {}),
        },
        user,
        background=background,
    )


@dataclass(frozen=True)
class Totals:
    items: int
    old_tokens: int
    new_tokens: int
    old_cost: Decimal | None
    new_cost: Decimal | None
    old_latency_ms: int
    new_latency_ms: int


def totals(items: list[PromptTrialItem]) -> Totals:
    def money(values: list[Decimal | None]) -> Decimal | None:
        known = [v for v in values if v is not None]
        return sum(known, Decimal(0)) if known else None

    return Totals(
        items=len(items),
        old_tokens=sum(i.old_tokens for i in items),
        new_tokens=sum(i.new_tokens for i in items),
        old_cost=money([i.old_cost for i in items]),
        new_cost=money([i.new_cost for i in items]),
        old_latency_ms=sum(i.old_latency_ms or 0 for i in items),
        new_latency_ms=sum(i.new_latency_ms or 0 for i in items),
    )


def _start_over_pages(
    version: PromptTemplateVersion, site: Any, limit: int, user: Any, background: bool, concurrency: int | None
):
    template = version.template
    baseline = template.production_version
    if baseline is None or baseline.pk == version.pk:
        raise ValueError(f"{version.display} is production: choose the draft (or another version) to compare.")
    if not fillable_from_pages(template, version, baseline):
        raise ValueError(
            f"“{template}” has variables a page cannot fill; a trial over pages needs only "
            f"{', '.join(sorted(PAGE_VARIABLES))}."
        )
    pages = recent_pages(site.pk, min(limit, MAX_TRIAL_ITEMS))
    if not pages:
        raise ValueError(f"{site_label(site)} has no pages to try {version.display} on.")
    return start_job(
        KIND,
        site,
        trial_template_version,
        {
            "template_id": template.pk,
            "version_id": version.pk,
            "baseline_id": baseline.pk,
            "page_ids": [page.pk for page in pages],
            **({"concurrency": concurrency} if concurrency else {}),
        },
        user,
        background=background,
    )
