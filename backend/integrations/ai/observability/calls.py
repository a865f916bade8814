"""Where the gateway's pipeline meets observability: a scope per call, a hook per attempt, one end per call.

`AIService.execute` and `GatewayStream.__iter__` are wrapped by `traced_call` / `traced_stream`
(the call's span, its start time, the provider it began with); every provider attempt reaches
`attempt_ended` through the hooks the factory injects (`hooks.GATEWAY_HOOKS`), so the
Django-free providers never import this; and `usage.write_ledger`, the one place every call ends
(served, failed, cached or refused), calls `call_ended`, which fans the call's outcome out to the
span, the OpenTelemetry GenAI metrics, Prometheus and the JSON call log.

With all of them off (`STATE.active` False, the default) each entry point returns after one
attribute check. Nothing here may break a call: a failure of ours is logged and swallowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from . import tracing

logger = logging.getLogger("integrations.ai")


class _Active:
    active = False  # any of tracing, OpenTelemetry metrics, Prometheus, the JSON call log


STATE = _Active()


@dataclass
class CallScope:
    """One call in flight: who made it, what it asked for, its span, and the providers tried so far."""

    site_id: int | None
    service: str
    requested: str
    provider: str
    started: float = field(default_factory=time.perf_counter)
    span: Any = None
    token: Any = None
    last_provider: str | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


_scope: ContextVar[CallScope | None] = ContextVar("integrations_ai_observed_call", default=None)


def _open(service: Any, prep: Any, attach: bool) -> CallScope:
    scope = CallScope(service.site_id, service.service, prep.requested, prep.primary.name)
    if tracing.STATE.tracer is not None:
        request = prep.request
        scope.span, scope.token = tracing.start_call(
            tracing.OPERATION,
            prep.requested,
            scope.provider,
            request.max_tokens,
            request.temperature,
            request.messages,
            request.system_prompt,
            attach=attach,
            extra={"panel.site": scope.site_id or 0, "panel.service": scope.service},
        )
    return scope


def _close(scope: CallScope, error: BaseException | None) -> None:
    if scope.span is not None:
        tracing.end_call(scope.span, scope.token, error)


def traced_call(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap `AIService.execute(prep, ...)`: one scope (and span) for the call, retries and failovers included."""

    @functools.wraps(fn)
    def execute(service: Any, prep: Any, *args: Any, **kwargs: Any) -> Any:
        if not STATE.active:
            return fn(service, prep, *args, **kwargs)
        scope = _open(service, prep, attach=True)
        token = _scope.set(scope)
        error: BaseException | None = None
        try:
            return fn(service, prep, *args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _scope.reset(token)
            _close(scope, error)

    return execute


def traced_stream(fn: Callable[[Any], Iterator[str]]) -> Callable[[Any], Iterator[str]]:
    """Wrap `GatewayStream.__iter__`: the scope lives while the caller consumes the stream.

    The span is not made the current context: between deltas the caller's own code runs, and its
    spans are not the stream's children.
    """

    @functools.wraps(fn)
    def iterate(stream: Any) -> Iterator[str]:
        if not STATE.active:
            yield from fn(stream)
            return
        scope = _open(stream.service, stream.prep, attach=False)
        token = _scope.set(scope)
        error: BaseException | None = None
        try:
            yield from fn(stream)
        except GeneratorExit:  # the caller stopped reading: not a failure of the call
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            with contextlib.suppress(ValueError):  # consumed in another context: its value goes with it
                _scope.reset(token)
            _close(scope, error)

    return iterate


def atraced_call(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`traced_call` for `AIService.aexecute` (a coroutine)."""

    @functools.wraps(fn)
    async def execute(service: Any, prep: Any, *args: Any, **kwargs: Any) -> Any:
        if not STATE.active:
            return await fn(service, prep, *args, **kwargs)
        scope = _open(service, prep, attach=True)
        token = _scope.set(scope)
        error: BaseException | None = None
        try:
            return await fn(service, prep, *args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _scope.reset(token)
            _close(scope, error)

    return execute


def atraced_stream(fn: Callable[[Any], AsyncIterator[str]]) -> Callable[[Any], AsyncIterator[str]]:
    """`traced_stream` for `GatewayStream.__aiter__` (an async generator)."""

    @functools.wraps(fn)
    async def iterate(stream: Any) -> AsyncIterator[str]:
        inner = fn(stream)
        if not STATE.active:
            try:
                async for piece in inner:
                    yield piece
            finally:  # closed early (aclose): the inner generator, and with it the upstream request, now
                await inner.aclose()  # type: ignore[attr-defined]
            return
        scope = _open(stream.service, stream.prep, attach=False)
        token = _scope.set(scope)
        error: BaseException | None = None
        try:
            async for piece in inner:
                yield piece
        except (GeneratorExit, asyncio.CancelledError):  # the caller stopped reading: not a failure of the call
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            await inner.aclose()  # type: ignore[attr-defined]
            with contextlib.suppress(ValueError):
                _scope.reset(token)
            _close(scope, error)

    return iterate


def attempt_ended(attempt: Any) -> None:
    """One upstream attempt ended (the providers' `on_attempt` hook): its span under the call's."""
    if not STATE.active:
        return
    scope = _scope.get()
    if scope is None:
        return
    try:
        previous, scope.last_provider = scope.last_provider, attempt.provider
        if scope.span is None:
            return
        attributes: dict[str, Any] = {
            tracing.OPERATION_NAME: tracing.OPERATION,
            tracing.PROVIDER_NAME: attempt.provider,
            tracing.REQUEST_MODEL: attempt.model,
            "panel.site": scope.site_id or 0,
            "panel.service": scope.service,
            "panel.attempt": attempt.number,
        }
        if previous is not None and previous != attempt.provider:
            attributes["panel.failover_from"] = previous
        result, error = attempt.result, attempt.error
        if result is not None:
            attributes[tracing.RESPONSE_MODEL] = result.model
            attributes[tracing.RESPONSE_FINISH_REASONS] = [result.finish_reason]
            if result.request_id:
                attributes[tracing.RESPONSE_ID] = result.request_id
        if error is not None:
            attributes[tracing.ERROR_TYPE] = type(error).__name__
        tracing.attempt_span(scope.span, tracing.OPERATION, attributes, attempt.latency_ms, error)
    except Exception:
        logger.exception("could not record an AI attempt's span")


@dataclass
class CallOutcome:
    """A finished call as every observer sees it: no key, no prompt or completion text."""

    site_id: int | None
    service: str
    requested_model: str
    provider: str
    status: str  # ok, error, cached, refused
    seconds: float
    response_model: str = ""
    error_type: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: Decimal | None = None
    finish_reason: str = ""
    request_id: str = ""
    attempts: int = 0
    trace_id: str = ""
    content: str = field(default="", repr=False)  # the completion, only for spans with content capture on

    @property
    def cache_hit(self) -> bool:
        return self.status == "cached"


def outcome_of(record: Any, prices: Any, cached: Any, scope: CallScope | None) -> CallOutcome:
    from integrations.ai.ledger import usage

    seconds = scope.elapsed() if scope is not None else sum(a.latency_ms for a in record.attempts) / 1000
    outcome = CallOutcome(
        record.site_id,
        record.service,
        record.requested_model,
        scope.provider if scope is not None else "",
        "error",
        seconds,
    )
    served = cached
    if cached is not None:
        outcome.status, outcome.provider, outcome.cost = "cached", cached.provider, Decimal(0)
    elif record.refusal is not None:
        provider, error = record.refusal
        outcome.status, outcome.provider, outcome.error_type = "refused", provider, type(error).__name__
        outcome.cost = Decimal(0)
    else:
        outcome.attempts = len(record.attempts)
        cost: Decimal | None = Decimal(0)
        input_tokens = output_tokens = 0
        for attempt in record.attempts:
            if attempt.result is not None:
                spent, _ = usage.cost_of(prices, attempt.result)
                cost = None if spent is None or cost is None else cost + spent
                input_tokens += attempt.result.prompt_tokens
                output_tokens += attempt.result.completion_tokens
        outcome.cost, outcome.input_tokens, outcome.output_tokens = cost, input_tokens, output_tokens
        if record.attempts:
            last = record.attempts[-1]
            outcome.provider = last.provider
            if last.error is None and last.result is not None:
                outcome.status, served = "ok", last.result
            else:
                outcome.error_type = type(last.error).__name__ if last.error is not None else ""
                outcome.request_id = getattr(last.error, "request_id", None) or ""
    if served is not None:
        outcome.response_model, outcome.finish_reason = served.model, served.finish_reason
        outcome.request_id = served.request_id or ""
        outcome.content = served.content
    return outcome


def call_ended(record: Any, prices: Any, cached: Any = None) -> None:
    """A call ended (`usage.write_ledger`): its outcome to the span, the metrics and the call log."""
    if not STATE.active:
        return
    try:
        _observe(record, prices, cached)
    except Exception:
        logger.exception("could not record an AI call's telemetry")


def _observe(record: Any, prices: Any, cached: Any) -> None:
    from . import call_log, prometheus

    scope = _scope.get()
    outcome = outcome_of(record, prices, cached, scope)
    attributes = {
        tracing.OPERATION_NAME: tracing.OPERATION,
        tracing.PROVIDER_NAME: outcome.provider,
        tracing.REQUEST_MODEL: outcome.requested_model or (scope.requested if scope else ""),
    }
    if outcome.response_model:
        attributes[tracing.RESPONSE_MODEL] = outcome.response_model
    if outcome.error_type:
        attributes[tracing.ERROR_TYPE] = outcome.error_type
    if scope is not None and scope.span is not None:
        _annotate(scope.span, outcome)
        context = scope.span.get_span_context()
        outcome.trace_id = f"{context.trace_id:032x}"
    elif tracing.STATE.tracer is not None and outcome.status == "refused":
        tracing.refused_span(
            tracing.OPERATION,
            {
                **attributes,
                "panel.site": outcome.site_id or 0,
                "panel.service": outcome.service,
                "panel.status": "refused",
            },
            outcome.error_type,
        )
    if outcome.status != "refused":  # a refused call reached no model: no GenAI operation to measure
        tracing.record_metrics(attributes, outcome.seconds, outcome.input_tokens, outcome.output_tokens)
    prometheus.observe(outcome, record)
    call_log.emit(outcome)


def _annotate(span: Any, outcome: CallOutcome) -> None:
    attributes: dict[str, Any] = {
        tracing.PROVIDER_NAME: outcome.provider,
        "panel.status": outcome.status,
        "panel.cache_hit": outcome.cache_hit,
        "panel.attempts": outcome.attempts,
    }
    if outcome.cost is not None:
        attributes["panel.cost_usd"] = float(outcome.cost)
    if outcome.response_model:
        attributes[tracing.RESPONSE_MODEL] = outcome.response_model
        attributes[tracing.RESPONSE_FINISH_REASONS] = [outcome.finish_reason]
    if outcome.request_id and outcome.status in ("ok", "cached"):
        attributes[tracing.RESPONSE_ID] = outcome.request_id
    if outcome.input_tokens is not None:
        attributes[tracing.USAGE_INPUT_TOKENS] = outcome.input_tokens
    if outcome.output_tokens is not None:
        attributes[tracing.USAGE_OUTPUT_TOKENS] = outcome.output_tokens
    if outcome.error_type:
        attributes[tracing.ERROR_TYPE] = outcome.error_type
    if tracing.STATE.capture_content and outcome.content:
        attributes[tracing.OUTPUT_MESSAGES] = tracing.output_messages(outcome.content, outcome.finish_reason)
    span.set_attributes(attributes)  # one lock and one validation pass, not one per attribute
