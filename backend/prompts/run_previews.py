"""Previews of a prompt run, kept server-side until a person saves (or drops) them.

The run screen shows a generated output, lets the person edit it, and saves it on a second request.
What the generation cost (model, provider, tokens, money, request id) must reach that second request
without passing through the browser, where anyone could rewrite the numbers: it stays in the session
under a random one-time token, and the save form carries only the token and the edited text.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from django.http import HttpRequest

from integrations.ai.providers.base import GenerationResult

SESSION_KEY = "prompt_run_previews"
MAX_KEPT = 20  # previews a person left unsaved are dropped oldest-first beyond this


@dataclass(frozen=True)
class RunPreview:
    """One generation waiting to be saved: where it ran, with what, and what it cost."""

    template_id: int
    site_id: int
    variables: dict[str, Any]
    model: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: str | None  # a Decimal as text: sessions hold JSON
    request_id: str
    version_id: int | None = None  # the template version that produced it
    output: str | None = None  # a streamed run keeps its text here for the review step (a plain run posts it)

    @property
    def cost_decimal(self) -> Decimal | None:
        return Decimal(self.cost) if self.cost is not None else None


def keep(request: HttpRequest, payload: dict[str, Any]) -> str:
    """Keep `payload` (JSON-able) in this session under a new one-time token; returns the token.

    The generic store behind every generate-then-accept screen (prompt runs, page meta, blocks):
    whatever a later accept must trust stays here, the browser only carries the token.
    """
    kept: dict[str, dict[str, Any]] = dict(request.session.get(SESSION_KEY) or {})
    token = secrets.token_urlsafe(24)
    kept[token] = dict(payload)
    while len(kept) > MAX_KEPT:
        kept.pop(next(iter(kept)))
    request.session[SESSION_KEY] = kept
    return token


def fetch(request: HttpRequest, token: Any, **expected: Any) -> dict[str, Any] | None:
    """The payload behind `token` when every `expected` item matches it, else None (unknown, used, foreign)."""
    data = (request.session.get(SESSION_KEY) or {}).get(token) if isinstance(token, str) else None
    if not isinstance(data, dict) or any(data.get(k) != v for k, v in expected.items()):
        return None
    return dict(data)


def remember(
    request: HttpRequest,
    template_id: int,
    site_id: int,
    variables: dict[str, Any],
    result: GenerationResult,
    cost: Decimal | None,
    version_id: int | None = None,
    output: str | None = None,
) -> str:
    """Keep `result`'s numbers for a later save by this session; returns the token the form carries."""
    preview = RunPreview(
        template_id=template_id,
        site_id=site_id,
        variables=dict(variables),
        model=result.model,
        provider=result.provider,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        total_tokens=result.total_tokens,
        cost=str(cost) if cost is not None else None,
        request_id=(result.request_id or "")[:200],
        version_id=version_id,
        output=output,
    )
    return keep(request, asdict(preview))


def peek(request: HttpRequest, template_id: int, token: str) -> RunPreview | None:
    """The preview behind `token` for this template, or None (unknown, used, or another template's)."""
    data = fetch(request, token, template_id=template_id)
    if data is None:
        return None
    try:
        return RunPreview(**data)
    except TypeError:  # written by an older version of this module
        return None


def forget(request: HttpRequest, token: str) -> None:
    """Drop a preview once saved, so the same numbers can't be saved twice."""
    kept = dict(request.session.get(SESSION_KEY) or {})
    if kept.pop(token, None) is not None:
        request.session[SESSION_KEY] = kept


def call_cost(site_id: int, result: GenerationResult) -> Decimal | None:
    """What the call cost: the provider's reported figure, else what the ledger priced it at."""
    if result.cost is not None:
        return result.cost
    if not result.request_id:
        return None
    from integrations.ai.ledger import usage
    from integrations.models import AIUsage

    usage.flush()  # the ledger is written off the request thread: make sure this call's row is in

    row = (
        AIUsage.objects.filter(site_id=site_id, request_id=result.request_id[:200], status=AIUsage.STATUS_OK)
        .order_by("-id")
        .values_list("cost", flat=True)
        .first()
    )
    return row


def as_result(preview: RunPreview, output: str) -> GenerationResult:
    """The preview as the GenerationResult `AIContentService.save_run` stores."""
    return GenerationResult(
        content=output,
        model=preview.model,
        provider=preview.provider,
        prompt_tokens=preview.prompt_tokens,
        completion_tokens=preview.completion_tokens,
        total_tokens=preview.total_tokens,
        request_id=preview.request_id or None,
        cost=preview.cost_decimal,
    )
