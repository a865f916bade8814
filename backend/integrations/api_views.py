"""`POST /api/ai/generate/`: text generation for CMS front ends, as JSON.

Staff only, for the site the request's host names, authenticated by session (with CSRF) or by
`Authorization: Token <token>`. Input is validated before any upstream call; every error is
`{"error": {"code", "message"}}` with a stable code and a fitting status.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from tenancy.access import can_manage

from .ai.providers import errors
from .ai.service import AIService
from .models import APIToken

SAVABLE_FIELDS = ("meta_title", "meta_description", "body")

STATUS_FOR = [  # most specific first
    (errors.BudgetExceeded, 402),
    (errors.ContentRefused, 422),
    (errors.InvalidRequest, 400),
    (errors.UnknownProvider, 400),
    (errors.ProviderNotConfigured, 503),
    (errors.RateLimited, 429),
    (errors.ProviderTimeout, 504),
    (errors.ProviderUnavailable, 503),
    (errors.AIProviderError, 502),
]


def error(status: int, code: str, message: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)


def _authenticate(request: HttpRequest) -> tuple[Any, JsonResponse | None]:
    header = request.headers.get("Authorization", "")
    if header.startswith("Token "):
        token = APIToken.objects.select_related("user").filter(key_hash=APIToken.digest(header[6:].strip())).first()
        if token is None or not token.user.is_active:
            return None, error(401, "invalid_token", "The API token is not valid.")
        APIToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
        return token.user, None
    if not request.user.is_authenticated:
        return None, error(401, "not_authenticated", "Log in or send 'Authorization: Token <token>'.")
    rejected = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
    if rejected is not None:  # session auth must carry the CSRF token
        return None, error(403, "csrf_failed", "CSRF token missing or incorrect.")
    return request.user, None


def _int(data: dict, name: str, default: int) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.InvalidRequest(f"{name} must be an integer.")
    return value


def _float(data: dict, name: str, default: float) -> float:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise errors.InvalidRequest(f"{name} must be a number.")
    return float(value)


@csrf_exempt  # enforced by _authenticate for session auth; token auth needs no CSRF
def generate(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return error(405, "method_not_allowed", "Use POST.")
    user, failure = _authenticate(request)
    if failure is not None:
        return failure
    site = getattr(request, "site", None)
    if not user.is_staff or site is None or not can_manage(user, site.pk):
        return error(403, "forbidden", "Staff access to this site is required.")
    try:
        data = json.loads(request.body or b"{}")
    except ValueError:
        return error(400, "invalid_json", "The body must be a JSON object.")
    if not isinstance(data, dict):
        return error(400, "invalid_json", "The body must be a JSON object.")

    page = None
    try:
        prompt = data.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise errors.InvalidRequest("prompt is required and may not be empty.")
        max_tokens = _int(data, "max_tokens", 1000)
        temperature = _float(data, "temperature", 0.7)
        for name in ("model", "provider", "system_prompt"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise errors.InvalidRequest(f"{name} must be a string.")
        if data.get("page_id") is not None:
            from pages.models import Page

            field = data.get("field")
            if field not in SAVABLE_FIELDS:
                raise errors.InvalidRequest(f"field must be one of {', '.join(SAVABLE_FIELDS)} when page_id is given.")
            page = Page.objects.filter(pk=data["page_id"], site=site).first() if isinstance(
                data["page_id"], int) else None
            if page is None:
                return error(404, "not_found", "No such page on this site.")
        result = AIService(site=site, service="api.generate").generate_content(
            prompt, provider=data.get("provider") or None, model=data.get("model") or None,
            max_tokens=max_tokens, temperature=temperature, system_prompt=data.get("system_prompt") or None,
        )
    except errors.AIProviderError as exc:
        status = next(code for cls, code in STATUS_FOR if isinstance(exc, cls))
        response = error(status, exc.code, exc.message)
        if isinstance(exc, errors.RateLimited) and exc.retry_after:
            response["Retry-After"] = str(int(exc.retry_after + 0.999))
        return response

    saved = False
    if page is not None:
        from pages.models import META_DESCRIPTION_MAX, META_TITLE_MAX, Page
        from pages.services.ai_service import trim_to_words

        limit = {"meta_title": META_TITLE_MAX, "meta_description": META_DESCRIPTION_MAX}.get(data["field"])
        value = trim_to_words(result.content, limit) if limit else result.content
        Page.objects.filter(pk=page.pk).update(**{data["field"]: value})
        saved = True
    return JsonResponse({
        "content": result.content,
        "provider": result.provider,
        "model": result.model,
        "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                  "total_tokens": result.total_tokens},
        "cost": str(result.cost) if result.cost is not None else None,
        "finish_reason": result.finish_reason,
        "latency_ms": round(result.latency_ms, 1),
        "request_id": result.request_id,
        "saved": saved,
    })
