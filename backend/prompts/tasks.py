"""Celery tasks for prompt templates: one template over many variable sets."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from integrations.ai import AIService
from integrations.jobs.runner import checkpoint, register, register_retry, run_job, set_total, start_job

from . import trials  # noqa: F401 - registers the trial job kind and its Celery task
from .models import PromptRun, PromptTemplate, TemplateVariableError

KIND = "prompts.run_template_batch"


@register(KIND)
def _run_template_batch(job: Any, report: Any) -> None:
    template = PromptTemplate.objects.get(pk=job.params["template_id"])
    version = template.active_version()
    source: Any = version if version is not None else template
    rows = job.params.get("variables", [])
    # Row numbers as the person knows them (a CSV's, or the first job's for a retry); else 1, 2, ...
    numbers = job.params.get("row_numbers") or list(range(1, len(rows) + 1))
    set_total(job, len(rows), keys=list(range(len(rows))))
    prompts, valid = [], []
    for index, variables in enumerate(rows):
        try:
            prompts.append(source.render(variables))
            valid.append(index)
        except TemplateVariableError as exc:
            report(f"row {numbers[index]}", False, "invalid_variables", str(exc), key=index)
    concurrency = int(job.params.get("concurrency") or settings.AI_BATCH_CONCURRENCY)
    chunk = int(job.params.get("chunk") or max(len(prompts), 1))
    service = AIService(site=job.site_id, service="prompts.template")
    for start in range(0, len(prompts), chunk):
        checkpoint(job)  # a cancelled job stops between chunks
        items = service.generate_batch(
            prompts[start : start + chunk],
            concurrency=concurrency,
            model=source.default_model or None,
            max_tokens=source.max_tokens,
            temperature=source.temperature,
            system_prompt=source.system_prompt or None,
        )
        for index, item in zip(valid[start : start + chunk], items, strict=True):
            if item.ok:
                PromptRun.objects.create(
                    template=template,
                    version=version,
                    site_id=job.site_id,
                    variables=rows[index],
                    output=item.result.content,
                    model=item.result.model,
                    provider=item.result.provider,
                    total_tokens=item.result.total_tokens,
                    created_by=job.created_by,
                )
                report(f"row {numbers[index]}", True, key=index)
            else:
                report(f"row {numbers[index]}", False, item.error.code, item.error.message, key=index)


@register_retry(KIND)
def _retry_template_batch(job: Any, keys: list, user: Any, background: bool):
    template = PromptTemplate.objects.get(pk=job.params["template_id"])
    rows = job.params.get("variables", [])
    numbers = job.params.get("row_numbers") or list(range(1, len(rows) + 1))
    extra = {k: v for k, v in job.params.items() if k not in ("template_id", "variables", "row_numbers", "keys")}
    return start_template_batch(
        template,
        job.site,
        [rows[k] for k in keys],
        user,
        background=background,
        retry_of=job,
        row_numbers=[numbers[k] for k in keys],
        **extra,
    )


@shared_task(name="prompts.run_prompt_template_batch")
def run_prompt_template_batch(job_id: int) -> int:
    run_job(job_id)
    return job_id


def start_template_batch(
    template: PromptTemplate,
    site: Any,
    variables: list[dict],
    user: Any = None,
    *,
    background: bool = False,
    retry_of: Any = None,
    **params,
):
    """Run `template` once per variable set (a PromptRun each); `background=True` never holds the caller."""
    return start_job(
        KIND,
        site,
        run_prompt_template_batch,
        {"template_id": template.pk, "variables": variables, **params},
        user,
        background=background,
        retry_of=retry_of,
    )
