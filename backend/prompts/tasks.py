"""Celery tasks for prompt templates: one template over many variable sets."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.conf import settings

from integrations.ai import AIService
from integrations.jobs import register, run_job, set_total, start_job

from . import trials  # noqa: F401 - registers the trial job kind and its Celery task
from .models import PromptRun, PromptTemplate, TemplateVariableError

KIND = "prompts.run_template_batch"


@register(KIND)
def _run_template_batch(job: Any, report: Any) -> None:
    template = PromptTemplate.objects.get(pk=job.params["template_id"])
    version = template.active_version()
    source: Any = version if version is not None else template
    rows = job.params.get("variables", [])
    set_total(job, len(rows))
    prompts, valid = [], []
    for index, variables in enumerate(rows):
        try:
            prompts.append(source.render(variables))
            valid.append(index)
        except TemplateVariableError as exc:
            report(f"row {index + 1}", False, "invalid_variables", str(exc))
    items = AIService(site=job.site_id, service="prompts.template").generate_batch(
        prompts, concurrency=int(job.params.get("concurrency") or settings.AI_BATCH_CONCURRENCY),
        model=source.default_model or None, max_tokens=source.max_tokens, temperature=source.temperature,
        system_prompt=source.system_prompt or None,
    )
    for index, item in zip(valid, items, strict=True):
        if item.ok:
            PromptRun.objects.create(
                template=template, version=version, site_id=job.site_id, variables=rows[index],
                output=item.result.content,
                model=item.result.model, provider=item.result.provider, total_tokens=item.result.total_tokens,
                created_by=job.created_by,
            )
            report(f"row {index + 1}", True)
        else:
            report(f"row {index + 1}", False, item.error.code, item.error.message)


@shared_task(name="prompts.run_prompt_template_batch")
def run_prompt_template_batch(job_id: int) -> int:
    run_job(job_id)
    return job_id


def start_template_batch(template: PromptTemplate, site: Any, variables: list[dict], user: Any = None, **params):
    return start_job(KIND, site, run_prompt_template_batch,
                     {"template_id": template.pk, "variables": variables, **params}, user)
