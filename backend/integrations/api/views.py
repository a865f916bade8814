"""`POST /api/ai/generate/`: text generation for CMS front ends, as JSON.

Staff only, for the site the request's host names, with the `integrations.use_ai` permission (and
`pages.change_page` plus, for a token, its `pages.write` scope to write into a page), authenticated by
session (with CSRF) or by `Authorization: Token <token>` (a token may be bound to one site, scoped and
expiring). Input is validated before any upstream call; every error is
`{"error": {"code", "message"}}` with a stable code and a fitting status, including bodies too large
or too deeply nested to parse and hosts with no site. Each user (all their tokens and their session
together) may make `AI_API_RATE_LIMIT` requests per window, counted in the shared Django cache so all processes agree.
A warm token costs no query (`integrations.api.tokens`: remembered per process, re-read when a change bumps
its version); while the database is unreachable, a token this process has seen keeps its last known answer (warm
tokens go on serving); an error no view handled is JSON too (`server_error`: 503 during an outage, never an HTML page).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from django_ratelimit.core import get_usage

from integrations.ai.gateway.service import AIService
from integrations.ai.providers import errors
from integrations.ai.runtime import conf
from integrations.ai.sites.callers import Editor, acting_for
from integrations.api import targets, tokens
from integrations.models import APIToken
from tenancy.access import can_manage

MAX_ID = 2**63 - 1  # the largest primary key any supported database stores

STATUS_FOR = [  # most specific first
    (errors.BudgetBusy, 429),  # the cap is held by calls in flight: retry after Retry-After
    (errors.BudgetExceeded, 402),
    (errors.PolicyViolation, 403),
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


USE_AI = ("integrations", "use_ai")
CHANGE_PAGE = "pages.change_page"


class Caller:
    """Who is calling, once authorised: the user, and what the token (if any) allows."""

    def __init__(self, user_id: int, scopes: tuple[str, ...], is_superuser: bool, user: Any = None) -> None:
        self.user_id = user_id
        self.scopes = scopes
        self.is_superuser = is_superuser
        self._user = user

    def may_write_pages(self) -> bool:
        """The token's scope allows it (session callers have no scope limit) and the user holds change_page."""
        if APIToken.SCOPE_PAGES not in self.scopes:
            return False
        if self.is_superuser:
            return True
        if self._user is None:
            from django.contrib.auth import get_user_model

            self._user = get_user_model().objects.get(pk=self.user_id)
        return bool(self._user.has_perm(CHANGE_PAGE))


def _authorize(request: HttpRequest, site_id: int) -> JsonResponse | None:
    """None if the caller may generate for the site, else the 401/403. Sets `request.api_caller` (the rate
    limit's key: the user, whichever way they authenticate) and `request.api_scope` (a `Caller`)."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Token "):
        key_hash = APIToken.digest(header[6:].strip())
        grant = tokens.grant_for(key_hash, site_id)  # no query for a token this process knows (integrations.api.tokens)
        now = timezone.now()
        if grant is None or grant.revoked or not grant.active:  # no such token, revoked, or its user deactivated
            return error(401, "invalid_token", "The API token is not valid.")
        if grant.expired(now):
            return error(401, "token_expired", "The API token has expired; ask for a new one (manage.py ai_token).")
        if not grant.is_staff or not (grant.is_superuser or grant.is_member):
            return error(403, "forbidden", "Staff access to this site is required.")
        if grant.token_site is not None and grant.token_site != site_id:
            return error(403, "forbidden", "This API token is for another site.")
        if APIToken.SCOPE_GENERATE not in grant.scopes:
            return error(403, "forbidden", "This API token does not have the 'generate' scope.")
        if not (grant.is_superuser or grant.may_use_ai):
            return error(403, "forbidden", "The 'May use AI generation through the API' permission is required.")
        tokens.record_use(key_hash, site_id, grant, now)  # at most once a minute per process, never per request
        request.api_caller = f"user:{grant.user_id}"  # one window per user, across their tokens and their session
        request.api_scope = Caller(grant.user_id, grant.scopes, grant.is_superuser)
        return None
    if not request.user.is_authenticated:
        return error(401, "not_authenticated", "Log in or send 'Authorization: Token <token>'.")
    rejected = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})
    if rejected is not None:  # session auth must carry the CSRF token
        return error(403, "csrf_failed", "CSRF token missing or incorrect.")
    if not request.user.is_staff or not can_manage(request.user, site_id):
        return error(403, "forbidden", "Staff access to this site is required.")
    if not request.user.has_perm(".".join(USE_AI)):
        return error(403, "forbidden", "The 'May use AI generation through the API' permission is required.")
    request.api_caller = f"user:{request.user.pk}"
    request.api_scope = Caller(request.user.pk, tuple(APIToken.SCOPES), request.user.is_superuser, request.user)
    return None


def _caller(group: str, request: HttpRequest) -> str:
    return request.api_caller


def _rate_limited(request: HttpRequest) -> JsonResponse | None:
    """Count this request against the caller's window; a 429 with Retry-After once it is used up."""
    rate = conf.api_rate_limit()
    if rate is None:
        return None
    usage = get_usage(request, group="integrations.api.generate", key=_caller, rate=rate, increment=True)
    if usage is None or not usage["should_limit"]:
        return None
    wait = max(1, int(usage["time_left"]))
    response = error(
        429,
        "rate_limited",
        f"Too many requests: at most {rate[0]} per {rate[1]} s. Retry in {wait} s.",
        retry_after=wait,
    )
    response["Retry-After"] = str(wait)
    return response


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


def _str(data: dict, name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise errors.InvalidRequest(f"{name} must be a string.")
    return value


def _not_json(constant: str) -> float:
    raise ValueError(f"{constant} is not JSON")


def _parse(request: HttpRequest) -> Any:
    """The JSON body; ValueError for anything json.loads accepts that JSON does not, or cannot nest."""
    try:
        return json.loads(request.body or b"{}", parse_constant=_not_json)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The project's 400 handler (`handler400`): JSON under /api/ (and /v1/, in the client's dialect), Django's
    page elsewhere.

    A request Django refuses before any view runs (a Host outside ALLOWED_HOSTS, a malformed cookie)
    reaches this, not `generate`; an API client must still get the endpoint's JSON shape.
    Never calls `request.get_host()`: that is what failed.
    """
    if request.path_info.startswith("/v1/"):
        from integrations.api.v1.views import refused_request

        return refused_request(request)
    if request.path.startswith("/api/"):
        return error(
            400,
            "bad_request",
            "The request was refused as malformed (for example, a Host header this "
            "server does not serve: see DJANGO_ALLOWED_HOSTS).",
        )
    return defaults.bad_request(request, exception)


def _outage(exc: BaseException | None) -> bool:
    """The exception says a backing service is away (the database, or Redis where it is used directly)."""
    from django.db import InterfaceError, OperationalError

    if isinstance(exc, OperationalError | InterfaceError):
        return True
    try:
        import redis
    except ImportError:  # pragma: no cover - redis is a pinned dependency
        return False
    return isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError)


def server_error(request: HttpRequest) -> HttpResponse:
    """The project's 500 handler (`handler500`): JSON under /api/ and /v1/, Django's page elsewhere.

    An API client never gets an HTML page: a database (or Redis) outage is a 503 with `Retry-After`
    (`service_unavailable`), anything else a 500 (`internal_error`), the error itself logged by Django.
    """
    if not request.path.startswith(("/api/", "/v1/")):
        return defaults.server_error(request)
    if _outage(sys.exc_info()[1]):
        response = error(
            503,
            "service_unavailable",
            "A service this server needs (its database) is unreachable; retry shortly.",
            type="service_unavailable",
        )
        response["Retry-After"] = "5"
        return response
    return error(500, "internal_error", "The server failed to answer this request.", type="api_error")


@csrf_exempt  # enforced by _authenticate for session auth; token auth needs no CSRF
def generate(request: HttpRequest) -> JsonResponse:
    """Oversize bodies (413) and other refused requests (400) answer in the endpoint's JSON shape too."""
    try:
        return _generate(request)
    except RequestDataTooBig:
        return error(413, "payload_too_large", "The request body is larger than this server accepts.")
    except SuspiciousOperation:
        return error(400, "bad_request", "The request was refused as malformed.")


def _generate(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return error(405, "method_not_allowed", "Use POST.")
    site = getattr(request, "site", None)
    if site is None:  # panel.sites.CurrentSiteMiddleware found no site for the host
        return error(404, "unknown_site", "No site is configured for this host.")
    failure = _authorize(request, site.pk)
    if failure is not None:
        return failure
    limited = _rate_limited(request)
    if limited is not None:
        return limited
    try:
        data = _parse(request)
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
        for name in ("model", "provider", "system_prompt", "field"):
            _str(data, name)
        if data.get("page_id") is not None:
            pages = targets.get("page")
            if pages is None:
                raise errors.InvalidRequest("page_id is not accepted: no app that stores pages is installed.")
            page_id = data["page_id"]
            if isinstance(page_id, bool) or not isinstance(page_id, int) or not 0 < page_id <= MAX_ID:
                raise errors.InvalidRequest("page_id must be a positive integer (not a string or boolean).")
            if data.get("field") not in pages.fields:
                raise errors.InvalidRequest(f"field must be one of {', '.join(pages.fields)} when page_id is given.")
            page = pages.find(site.pk, page_id)
            if page is None:
                return error(404, "not_found", "No such page on this site.")
            if not request.api_scope.may_write_pages():  # checked before any spend
                return error(
                    403,
                    "forbidden",
                    "Writing into a page needs the 'Can change page' permission, and "
                    "a token with the 'pages.write' scope.",
                )
        with acting_for(Editor(request.api_scope.user_id)):  # the token's user (or the session's)
            result = AIService(site=site, service="api.generate").generate_content(
                prompt,
                provider=data.get("provider") or None,
                model=data.get("model") or None,
                max_tokens=max_tokens,
                temperature=temperature,
                system_prompt=data.get("system_prompt") or None,
            )
    except errors.AIProviderError as exc:
        status = next(code for cls, code in STATUS_FOR if isinstance(exc, cls))
        response = error(status, exc.code, exc.message)
        if isinstance(exc, errors.RateLimited | errors.BudgetBusy) and exc.retry_after:
            response["Retry-After"] = str(int(exc.retry_after + 0.999))
        return response

    cost, cost_source = result.cost, result.cost_source  # what the ledger records (a cache hit: 0, "cache")
    saved = False
    if page is not None and pages is not None:
        pages.save(
            page,
            data["field"],
            result,
            cost,
            request.api_scope.user_id,
            {k: data[k] for k in ("model", "provider", "max_tokens", "temperature") if k in data},
            (data.get("system_prompt"), data["prompt"]),
        )
        saved = True
    return JsonResponse(
        {
            "content": result.content,
            "provider": result.provider,
            "model": result.model,
            "usage": {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.total_tokens,
            },
            "cost": str(cost) if cost is not None else None,
            "cost_source": cost_source or None,
            "finish_reason": result.finish_reason,
            "latency_ms": round(result.latency_ms, 1),
            "request_id": result.request_id,
            "saved": saved,
        }
    )
