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

from integrations.ai import AIService, usage
from integrations.jobs import register, run_job, set_total, start_job

from .models import PromptRun, PromptTemplate, PromptTemplateVersion, PromptTrialItem, TemplateVariableError

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
    return (AIUsage.objects.filter(site_id=site_id, request_id=request_id, status=AIUsage.STATUS_OK)
            .order_by("-id").values_list("latency_ms", flat=True).first())


@register(KIND)
def _trial(job: Any, report: Any) -> None:
    from .run_previews import call_cost

    version = PromptTemplateVersion.objects.select_related("template").get(pk=job.params["version_id"])
    runs = list(PromptRun.objects.filter(pk__in=job.params["run_ids"], template=version.template,
                                         site_id=job.site_id).order_by("-created_at", "-id"))
    set_total(job, len(runs))
    prompts, ready = [], []
    for run in runs:
        try:
            prompts.append(version.render(run.variables))
            ready.append(run)
        except TemplateVariableError as exc:
            PromptTrialItem.objects.create(job=job, version=version, run=run, variables=run.variables,
                                           old_output=run.output, error=str(exc)[:500])
            report(f"run {run.pk}", False, "invalid_variables", str(exc))
    with usage.attributed_to(version.template, label=f"Prompt template: {version.template} {version.display} (trial)"):
        items = AIService(site=job.site_id, service="prompts.trial").generate_batch(
            prompts, concurrency=int(job.params.get("concurrency") or settings.AI_BATCH_CONCURRENCY),
            model=version.default_model or None, max_tokens=version.max_tokens, temperature=version.temperature,
            system_prompt=version.system_prompt or None,
        )
    usage.flush()
    for run, item in zip(ready, items, strict=True):
        row = PromptTrialItem(job=job, version=version, run=run, variables=run.variables, old_output=run.output,
                              old_tokens=run.total_tokens, old_cost=run.cost,
                              old_latency_ms=_ledger_latency(job.site_id, run.request_id))
        if item.ok:
            result = item.result
            row.new_output, row.new_tokens, row.model = result.content, result.total_tokens, result.model
            row.new_cost = call_cost(job.site_id, result)
            row.new_latency_ms, row.request_id = int(result.latency_ms), (result.request_id or "")[:200]
            report(f"run {run.pk}", True)
        else:
            row.error = f"{item.error.code}: {item.error.message}"[:500]
            report(f"run {run.pk}", False, item.error.code, item.error.message)
        row.save()


@shared_task(name="prompts.trial_template_version")
def trial_template_version(job_id: int) -> int:
    run_job(job_id)
    return job_id


def start_trial(version: PromptTemplateVersion, site: Any, limit: int, user: Any = None):
    """Queue (or run in-process) a trial of `version` over the site's `limit` most recent saved runs."""
    runs = recent_runs(version.template, site.pk, min(limit, MAX_TRIAL_ITEMS))
    if not runs:
        raise ValueError(f"No saved runs of “{version.template}” on {site.name or site.domain} to try "
                         f"{version.display} on: run the template and save some outputs first.")
    return start_job(KIND, site, trial_template_version,
                     {"template_id": version.template_id, "version_id": version.pk,
                      "run_ids": [run.pk for run in runs]}, user)


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
        items=len(items), old_tokens=sum(i.old_tokens for i in items), new_tokens=sum(i.new_tokens for i in items),
        old_cost=money([i.old_cost for i in items]), new_cost=money([i.new_cost for i in items]),
        old_latency_ms=sum(i.old_latency_ms or 0 for i in items),
        new_latency_ms=sum(i.new_latency_ms or 0 for i in items),
    )
