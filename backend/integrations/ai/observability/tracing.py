"""OpenTelemetry for AI calls: GenAI-convention spans and the two GenAI client metrics.

Names, units and bucket boundaries follow the OpenTelemetry GenAI semantic conventions
(https://opentelemetry.io/docs/specs/semconv/gen-ai/): an inference span named
"{gen_ai.operation.name} {gen_ai.request.model}" per call covering all its retries and failovers,
a child span per upstream attempt, and the histograms `gen_ai.client.token.usage` ({token}) and
`gen_ai.client.operation.duration` (s). The attribute names are spelled out here: the
`opentelemetry-semantic-conventions` package marks its GenAI constants deprecated (they moved to the
GenAI conventions repository), and the wire names are what backends read.

Nothing is imported from OpenTelemetry until `install` or `configure_from_env` runs: with no
`OTEL_*` exporter configured the gateway never loads it and the hot path checks one attribute.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

OPERATION = "chat"  # every call the gateway makes is a chat completion
INSTRUMENTATION = "integrations.ai"

OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TOKEN_TYPE = "gen_ai.token.type"
ERROR_TYPE = "error.type"

TOKEN_USAGE = "gen_ai.client.token.usage"
OPERATION_DURATION = "gen_ai.client.operation.duration"
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)


class _State:
    tracer: Any = None
    token_usage: Any = None
    duration: Any = None
    capture_content = False
    owned: tuple[Any, ...] = ()  # providers built from the environment (shut down with the process)


STATE = _State()


def install(tracer_provider: Any = None, meter_provider: Any = None, *, capture_content: bool = False) -> None:
    """Trace and meter AI calls through these providers (either may be None: that signal stays off).

    `configure_from_env` calls it with providers built from `OTEL_*`; tests and the benchmark pass
    their own (an in-memory exporter or reader).
    """
    STATE.tracer = tracer_provider.get_tracer(INSTRUMENTATION) if tracer_provider is not None else None
    STATE.token_usage = STATE.duration = None
    if meter_provider is not None:
        meter = meter_provider.get_meter(INSTRUMENTATION)
        STATE.token_usage = meter.create_histogram(
            TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
        )
        STATE.duration = meter.create_histogram(
            OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
    STATE.capture_content = capture_content


def uninstall() -> None:
    STATE.tracer = STATE.token_usage = STATE.duration = None
    STATE.capture_content = False


def enabled() -> bool:
    return STATE.tracer is not None or STATE.duration is not None


def configure_from_env(env: dict[str, str]) -> bool:
    """Build the SDK's providers from the standard variables (`conf.otel_environment()`); True when on.

    Traces and metrics each go to OTLP over HTTP/protobuf (the exporters read OTEL_EXPORTER_OTLP_*
    themselves: endpoint, headers, timeout) or to the console (`OTEL_TRACES_EXPORTER=console`);
    the resource reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, the sampler
    OTEL_TRACES_SAMPLER, the batch processor OTEL_BSP_*. Django requests are traced too
    (opentelemetry-instrumentation-django), so an AI call's span sits under its request's span.
    """
    traces, metrics = env.get("traces", "none"), env.get("metrics", "none")
    if traces == "none" and metrics == "none":
        return False
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import OTEL_SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create({} if env.get("service_name") else {OTEL_SERVICE_NAME: "panel"})
    tracer_provider = meter_provider = None
    if traces != "none":
        if traces == "console":
            span_exporter: Any = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            span_exporter = OTLPSpanExporter()
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
        trace.set_tracer_provider(tracer_provider)
    if metrics != "none":
        if metrics == "console":
            metric_exporter: Any = ConsoleMetricExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            metric_exporter = OTLPMetricExporter()
        reader = PeriodicExportingMetricReader(metric_exporter)  # OTEL_METRIC_EXPORT_INTERVAL
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        otel_metrics.set_meter_provider(meter_provider)
    if tracer_provider is not None:
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        DjangoInstrumentor().instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    install(tracer_provider, meter_provider, capture_content=env.get("capture_content") == "true")
    STATE.owned = tuple(p for p in (tracer_provider, meter_provider) if p is not None)
    return True


# -- spans ------------------------------------------------------------------------------------------
def start_call(
    operation: str,
    model: str,
    provider: str,
    max_tokens: int | None,
    temperature: float | None,
    messages: Any = None,
    system_prompt: str | None = None,
    attach: bool = True,
    extra: dict[str, Any] | None = None,
) -> Any:
    """Start a call's span ("chat gpt-4o-mini", kind CLIENT); returns (span, context token or None)."""
    from opentelemetry import context, trace

    attributes: dict[str, Any] = {
        OPERATION_NAME: operation,
        REQUEST_MODEL: model,
        PROVIDER_NAME: provider,
        **(extra or {}),
    }
    if max_tokens is not None:
        attributes[REQUEST_MAX_TOKENS] = max_tokens
    if temperature is not None:
        attributes[REQUEST_TEMPERATURE] = float(temperature)
    if STATE.capture_content and messages is not None:
        attributes[INPUT_MESSAGES] = input_messages(messages, system_prompt)
    span = STATE.tracer.start_span(f"{operation} {model}", kind=trace.SpanKind.CLIENT, attributes=attributes)
    token = context.attach(trace.set_span_in_context(span)) if attach else None
    return span, token


def end_call(span: Any, token: Any, error: BaseException | None) -> None:
    from opentelemetry import context
    from opentelemetry.trace import Status, StatusCode

    if error is not None:
        span.set_attribute(ERROR_TYPE, type(error).__name__)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()
    if token is not None:
        with contextlib.suppress(ValueError):  # ended in another context: nothing there to restore
            context.detach(token)


def attempt_span(
    parent: Any, operation: str, attributes: dict[str, Any], latency_ms: float, error: BaseException | None
) -> None:
    """The span of one upstream attempt, recorded when it ended: it started `latency_ms` earlier."""
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    end = time.time_ns()
    start = end - int(max(latency_ms, 0.0) * 1_000_000)
    span = STATE.tracer.start_span(
        f"{operation} {attributes[REQUEST_MODEL]}",
        context=trace.set_span_in_context(parent),
        kind=trace.SpanKind.CLIENT,
        attributes=attributes,
        start_time=start,
    )
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end(end_time=end)


def refused_span(operation: str, attributes: dict[str, Any], error_type: str) -> None:
    """A call refused before any span was open (a stream's policy check, a batch's reservation): one span."""
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    span = STATE.tracer.start_span(
        f"{operation} {attributes[REQUEST_MODEL]}",
        kind=trace.SpanKind.CLIENT,
        attributes={**attributes, ERROR_TYPE: error_type},
    )
    span.set_status(Status(StatusCode.ERROR, error_type))
    span.end()


def record_metrics(
    attributes: dict[str, Any], seconds: float, input_tokens: int | None, output_tokens: int | None
) -> None:
    """The two GenAI client metrics for one call (token usage only when the provider reported it)."""
    if STATE.duration is None:
        return
    STATE.duration.record(seconds, attributes)
    if input_tokens is not None:
        STATE.token_usage.record(input_tokens, {**attributes, TOKEN_TYPE: "input"})
    if output_tokens is not None:
        STATE.token_usage.record(output_tokens, {**attributes, TOKEN_TYPE: "output"})


def input_messages(messages: Any, system_prompt: str | None) -> str:
    """The prompt as the conventions' `gen_ai.input.messages` JSON (only when content capture is opted into)."""
    items = [{"role": "system", "parts": [{"type": "text", "content": system_prompt}]}] if system_prompt else []
    items += [{"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]} for m in messages]
    return json.dumps(items, ensure_ascii=False)


def output_messages(text: str, finish_reason: str) -> str:
    return json.dumps(
        [{"role": "assistant", "parts": [{"type": "text", "content": text}], "finish_reason": finish_reason}],
        ensure_ascii=False,
    )
