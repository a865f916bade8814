"""The bulk "Generate alt text with AI" job: a BatchJob per site that stores a proposal on each image.

It runs through the shared job machinery (`integrations.jobs`: progress per item, cancel between
items, retry of the failed ones). It writes proposals only; a person reviews and accepts them from
the image list ("Review proposed alt text"), as for a single image.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from celery import shared_task
from django.contrib.sites.models import Site

from integrations.ai import AIService
from integrations.ai.pricing import MILLION, unpriced_price
from integrations.ai.providers.errors import AIProviderError
from integrations.ai.providers.images import image_tokens
from integrations.jobs.estimate import Call, Estimate, estimate
from integrations.jobs.runner import checkpoint, register, register_retry, run_job, set_total, start_job

from . import alt_text
from .models import Image

KIND = "images.alt_text"


@register(KIND)
def _generate_alt_text(job: Any, report: Any) -> None:
    images = list(Image.objects.filter(site_id=job.site_id, pk__in=job.params.get("image_ids") or []).order_by("pk"))
    set_total(job, len(images), keys=[image.pk for image in images])
    for image in images:
        checkpoint(job)  # a cancelled job stops before the next image
        problem = alt_text.propose_quietly(image, model=job.params.get("model") or None)
        code, _, message = (problem or "").partition(": ")
        report(f"image {image.pk} {image.title}", problem is None, code, message, key=image.pk)


@register_retry(KIND)
def _retry_alt_text(job: Any, keys: list, user: Any, background: bool):
    return start_alt_text(
        job.site, user, background=background, retry_of=job, image_ids=list(keys), model=job.params.get("model") or ""
    )


@shared_task(name="images.generate_alt_text")
def generate_alt_text(job_id: int) -> int:
    run_job(job_id)
    return job_id


def start_alt_text(site: Site, user: Any = None, *, background: bool = False, retry_of: Any = None, **params: Any):
    """Queue (or, without a broker, run) alt text proposals for `image_ids` of one site; returns the BatchJob."""
    return start_job(KIND, site, generate_alt_text, params, user, background=background, retry_of=retry_of)


def estimate_images(site: Site, images: list[Image], model: str | None) -> Estimate:
    """The batch estimate (`integrations.jobs.estimate`) of the text, plus each image's tokens by the
    vendor's rule at the model's prompt price, so the worst case counts the pictures too."""
    calls = [
        Call(
            alt_text.messages_for(image, None, with_image=False), alt_text.ALT_PROMPT.system_prompt, alt_text.MAX_TOKENS
        )
        for image in images
    ]
    result = estimate(site, calls, model)
    if result.blocked or not images:
        return result
    service = AIService(site=site.pk, service="batch.estimate")
    try:
        prep = service.prepare(calls[0].messages, model=model, max_tokens=alt_text.MAX_TOKENS)
    except AIProviderError as exc:  # estimate() already reported it; keep the first problem only
        result.problems.append(f"{exc.code}: {exc.message}")
        return result
    price = AIService.price_for(prep.snapshot, prep.primary, prep.resolved) or unpriced_price()
    pictures = sum(
        image_tokens(
            {"type": "image", "detail": "auto", "width": i.width, "height": i.height}, prep.primary.name, prep.resolved
        )
        for i in images
    )
    result.prompt_tokens += pictures
    if result.cost is not None:
        result.cost += Decimal(price[0]) * pictures / MILLION
    return result
