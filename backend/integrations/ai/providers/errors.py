"""One exception hierarchy for every vendor.

Callers catch these, never an SDK's exceptions: each vendor module maps its SDK errors here
(`map_status_error`), so a CMS view can tell "fix your key" from "try again later" without
knowing which vendor answered. Messages say what to fix and pass through `redact()`, so a key
echoed back by a vendor (OpenAI quotes part of a bad key) never reaches a log or a page.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

# Shapes of vendor secrets: the generic "sk-" prefix most vendors use, whatever follows "Bearer" in
# an Authorization header, and each registered provider's own `key_pattern` (registry.register).
_key_patterns: list[str] = [r"\bsk-[A-Za-z0-9_\-*.]{6,}", r"(?i:\bbearer\s+)[^\s'\",;]{6,}"]
_KEY_PATTERN = re.compile("|".join(_key_patterns))


def register_key_pattern(pattern: str) -> None:
    """Redact text matching `pattern` everywhere `redact()` runs (a provider's key shape)."""
    global _KEY_PATTERN
    if pattern not in _key_patterns:
        re.compile(pattern)  # fail at registration, not at redaction
        _key_patterns.append(pattern)
        _KEY_PATTERN = re.compile("|".join(f"(?:{p})" for p in _key_patterns))


VENDOR_MESSAGE_MAX = 300


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Remove known secrets and anything shaped like a vendor key from `text`."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return _KEY_PATTERN.sub("[redacted]", text)


class AIProviderError(Exception):
    """Base of every error the AI layer raises. `code` is stable and safe to show to API clients."""

    code = "provider_error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = redact(message)
        self.provider = provider
        self.status_code = status_code
        self.request_id = request_id
        super().__init__(self.message)

    def __str__(self) -> str:
        prefix = f"[{self.provider}] " if self.provider else ""
        return f"{prefix}{self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, status={self.status_code})"


class ProviderNotConfigured(AIProviderError):
    """A provider was asked for but lacks what it needs (usually an API key)."""

    code = "provider_not_configured"


class URLNotAllowed(ProviderNotConfigured):
    """A site's base URL is outside the outbound policy (see `providers.outbound`); nothing was sent."""

    code = "url_not_allowed"


class UnknownProvider(AIProviderError, ValueError):
    code = "unknown_provider"


class InvalidRequest(AIProviderError, ValueError):
    """The request itself is wrong (empty prompt, out-of-range parameter, 400 from the vendor)."""

    code = "invalid_request"


class ModelNotFound(InvalidRequest):
    code = "model_not_found"


class ContentRefused(InvalidRequest):
    """Moderation flagged the input (OpenRouter 403) or the model refused."""

    code = "content_refused"


class AuthenticationFailed(AIProviderError):
    code = "authentication_failed"


class PermissionDenied(AIProviderError):
    code = "permission_denied"


class InsufficientCredits(AIProviderError):
    code = "insufficient_credits"


class BudgetExceeded(AIProviderError):
    code = "budget_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after  # seconds until the refusing window's next period, when known


class BudgetBusy(BudgetExceeded):
    """The cap is full only because of reservations still in flight (other calls' worst cases): the settled
    spend leaves room for this call, so it is worth retrying when they finish (`retry_after`, seconds).
    Answered 429 with `Retry-After`, unlike a spent budget."""

    code = "budget_busy"
    retryable = True


class PolicyViolation(AIProviderError):
    """The site's model/data policy refuses this call; raised before any upstream request.

    `rule` names the setting that refused it (`allowed_providers`, `allowed_models`), so the
    message can tell an admin what to change. Never a provider failure: no cooldown, no retry.
    """

    code = "policy_violation"

    def __init__(self, message: str, *, rule: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.rule = rule


class UnpricedModel(PolicyViolation):
    """A capped site asked for a model no price source knows, and the deployment refuses those
    (`AI_UNPRICED=refuse`). Raised before any upstream request; `.rule` is `AI_UNPRICED`."""


class RateLimited(AIProviderError):
    code = "rate_limited"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ProviderUnavailable(AIProviderError):
    """5xx, Anthropic 529 (overloaded), a dropped connection or an unreadable response."""

    code = "provider_unavailable"
    retryable = True


class ProviderTimeout(ProviderUnavailable):
    code = "provider_timeout"


class StreamCancelled(AIProviderError):
    """The caller went away mid-stream (a client disconnect): the upstream request was closed at once. Never
    retried or failed over; the ledger row is `cancelled`, charged the tokens streamed until then."""

    code = "cancelled"


class Overloaded(AIProviderError):
    """This process already holds as many upstream streams as it may (`AI_MAX_STREAMS`): retry after
    `retry_after` seconds (another process, or this one a moment later). Never a provider failure."""

    code = "overloaded"
    retryable = True

    def __init__(self, message: str, retry_after: float = 1.0, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class EmptyResponse(ProviderUnavailable):
    """A 200 with no answer in it (an OpenAI-format body with empty `choices`): a vendor failure, so it is
    retried and failed over like a 5xx, never returned as an empty answer."""

    code = "empty_response"


class NotSupported(InvalidRequest):
    """The provider or model cannot do what the request asks (tools, a schema, images, embeddings); raised
    before any upstream call from the capability table (`providers/capabilities.py`)."""

    code = "not_supported"


class InvalidOutput(AIProviderError):
    """The model's answer could not be used: JSON that does not match the requested schema after the
    corrective retry, or tool arguments that are not JSON. Nothing invalid is returned to the caller."""

    code = "invalid_output"

    def __init__(self, message: str, *, errors: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.errors = list(errors or [])


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms`, `retry-after` (seconds or HTTP date)."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    if (ms := lowered.get("retry-after-ms")) is not None:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        import email.utils  # only for an HTTP-date Retry-After: keeps `import integrations.ai` light

        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(parsed.timestamp() - time.time(), 0.0)


def _vendor_message(body: object) -> tuple[str, dict]:
    """Pull (message, error dict) out of an OpenAI, OpenRouter or Anthropic JSON error body.

    Only a parsed JSON error's message is kept, truncated: a body that is not JSON (an HTML page,
    whatever a site's own endpoint answers) is never echoed back to the user.
    """
    message, err = "", {}
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            message, err = str(inner.get("message") or ""), dict(inner)
        elif isinstance(inner, str):
            message = inner
    message = " ".join(message.split())
    if len(message) > VENDOR_MESSAGE_MAX:
        message = message[: VENDOR_MESSAGE_MAX - 1] + "…"
    return message, err


_STATUS_HINTS = {
    400: "The provider rejected the request; check the model id and parameters.",
    401: "The API key was rejected; set a valid key in the site's AI settings or the environment.",
    402: "The account has no credits left; add credits with the provider.",
    403: "The provider refused the request.",
    404: "The model or endpoint was not found; check the model id.",
    408: "The provider timed out.",
    413: "The request is too large; shorten the prompt.",
    429: "Rate limited by the provider; wait and retry.",
    529: "The provider is overloaded; retry later.",
}


def map_status_error(
    provider: str,
    status: int,
    body: object,
    headers: Mapping[str, str] | None = None,
    request_id: str | None = None,
    secrets: Iterable[str] = (),
) -> AIProviderError:
    """Turn an HTTP error status and vendor body into the matching typed error."""
    vendor_msg, err = _vendor_message(body)
    hint = _STATUS_HINTS.get(status, "The provider returned an error.")
    message = redact(f"{hint} Provider said: {vendor_msg}" if vendor_msg else hint, secrets)
    kwargs: dict[str, Any] = {"provider": provider, "status_code": status, "request_id": request_id}
    err_type = str(err.get("type") or err.get("code") or "")
    if status == 401:
        return AuthenticationFailed(message, **kwargs)
    if status == 402:
        return InsufficientCredits(message, **kwargs)
    if status == 403:
        metadata = err.get("metadata") or {}
        if isinstance(metadata, Mapping) and metadata.get("reasons"):
            reasons = ", ".join(map(str, metadata["reasons"]))
            return ContentRefused(f"The input was flagged by moderation ({reasons}).", **kwargs)
        return PermissionDenied(message, **kwargs)
    if status == 404 or err_type in {"model_not_found", "not_found_error"}:
        return ModelNotFound(message, **kwargs)
    if (
        status == 400
        and "model" in vendor_msg.lower()
        and ("not a valid model" in vendor_msg.lower() or "does not exist" in vendor_msg.lower())
    ):
        return ModelNotFound(message, **kwargs)
    if status == 408:
        return ProviderTimeout(message, **kwargs)
    if status == 429:
        return RateLimited(message, retry_after=parse_retry_after(headers), **kwargs)
    if status == 409 or status >= 500:
        return ProviderUnavailable(message, **kwargs)
    if 400 <= status < 500:
        return InvalidRequest(message, **kwargs)
    return AIProviderError(message, **kwargs)
