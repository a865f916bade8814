"""The gateway's one exception hierarchy as the status codes and retry hints OpenAI/Anthropic clients act on.

Both SDKs pick their exception class by status (400 BadRequest, 401 Authentication, 403
PermissionDenied, 404 NotFound, 429 RateLimit, >= 500 InternalServer) and retry 408/409/429/5xx
unless `x-should-retry: false`, waiting `Retry-After` when it is at most a minute. So: the site's or
key's rate limit is a 429 with the seconds to the next window (worth retrying); a spent budget is a
429 too (OpenAI's `insufficient_quota`) but says not to retry; a budget held only by calls in flight
(`BudgetBusy`) is a 429 worth retrying after its `Retry-After`; a policy refusal is a 403; an unknown
model a 404; a failure of the vendors behind the gateway a 502 (503 when every provider is cooling
down or none is configured). Upstream credential or credit problems are the site's, not the
client's: a 502 that says not to retry, never a 401 that would blame the client's key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from integrations.ai.providers import errors


@dataclass(frozen=True)
class Failure:
    status: int
    message: str
    code: str
    param: str | None = None
    retry_after: float | None = None
    should_retry: bool | None = None  # None: let the SDK decide by status
    openai_type: str | None = None
    anthropic_type: str | None = None

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        if self.should_retry is not None:
            headers["x-should-retry"] = "true" if self.should_retry else "false"
        return headers


def unauthenticated(message: str) -> Failure:
    return Failure(
        401,
        message,
        "invalid_api_key",
        openai_type="invalid_request_error",
        anthropic_type="authentication_error",
        should_retry=False,
    )


def failure_for(exc: errors.AIProviderError) -> Failure:
    """The status, code and retry hints for a gateway error (most specific class first)."""
    message, code = exc.message, exc.code
    param = getattr(exc, "param", None)
    if isinstance(exc, errors.BudgetBusy):
        return Failure(
            429,
            message,
            "budget_busy",
            retry_after=exc.retry_after or 1.0,
            should_retry=True,
            openai_type="rate_limit_error",
            anthropic_type="rate_limit_error",
        )
    if isinstance(exc, errors.BudgetExceeded):
        return Failure(
            429,
            message,
            "insufficient_quota",
            retry_after=exc.retry_after,
            should_retry=False,
            openai_type="insufficient_quota",
            anthropic_type="rate_limit_error",
        )
    if isinstance(exc, errors.RateLimited):
        # The gateway's own limits name their next window; an upstream 429 that survived failover, its hint.
        return Failure(
            429,
            message,
            "rate_limit_exceeded",
            retry_after=exc.retry_after or 1.0,
            should_retry=True,
            openai_type="rate_limit_error",
            anthropic_type="rate_limit_error",
        )
    if isinstance(exc, errors.Overloaded):  # this process holds AI_MAX_STREAMS streams: another moment, or process
        return Failure(
            503,
            message,
            "overloaded",
            retry_after=exc.retry_after,
            should_retry=True,
            openai_type="server_error",
            anthropic_type="overloaded_error",
        )
    if isinstance(exc, errors.PolicyViolation):
        return Failure(
            403, message, "model_not_allowed", param="model", should_retry=False, anthropic_type="permission_error"
        )
    if isinstance(exc, errors.ModelNotFound):
        return Failure(
            404, message, "model_not_found", param="model", should_retry=False, anthropic_type="not_found_error"
        )
    if isinstance(exc, errors.ContentRefused):
        return Failure(400, message, "content_refused", should_retry=False, anthropic_type="invalid_request_error")
    if isinstance(exc, errors.InvalidRequest | errors.UnknownProvider):
        return Failure(400, message, code, param=param, should_retry=False, anthropic_type="invalid_request_error")
    if isinstance(exc, errors.ProviderNotConfigured):
        return Failure(
            503,
            "This site has no usable AI provider configured; ask its admin to set one up.",
            code,
            should_retry=False,
            openai_type="server_error",
            anthropic_type="api_error",
        )
    if isinstance(exc, errors.AuthenticationFailed | errors.PermissionDenied | errors.InsufficientCredits):
        return Failure(
            502,
            f"The site's AI provider refused the gateway's credentials or account: {message}",
            code,
            should_retry=False,
            openai_type="server_error",
            anthropic_type="api_error",
        )
    if isinstance(exc, errors.ProviderTimeout):
        return Failure(504, message, code, openai_type="server_error", anthropic_type="api_error")
    if isinstance(exc, errors.ProviderUnavailable):
        status = 502 if exc.provider else 503  # a vendor failed, or every provider is cooling down
        return Failure(
            status,
            message,
            code,
            openai_type="server_error",
            anthropic_type="api_error" if status == 502 else "overloaded_error",
        )
    return Failure(502, message, code, openai_type="server_error", anthropic_type="api_error")
