"""Observability (issue 24): OpenTelemetry GenAI spans and metrics, Prometheus `/metrics`, the JSON call
log and the health endpoints, all through real SDK clients against the loopback emulator.

Spans go to the OpenTelemetry SDK's own in-memory exporter and metrics to its in-memory reader,
installed with `tracing.install` as a deployment's providers would be."""

from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from integrations.ai import observability
from integrations.ai.gateway.service import AIService
from integrations.ai.ledger import usage
from integrations.ai.observability import call_log, tracing
from integrations.ai.providers import errors
from integrations.ai.runtime import clock
from integrations.models import AIUsage, ModelPrice

from .factories import AIProviderSettingsFactory, SiteFactory

OR_KEY = "sk-or-v1-" + "5e" * 24
ANT_KEY = "sk-ant-api03-" + "6f" * 24
OAI_KEY = "sk-proj-" + "7d" * 24
PROMPT = "A secret tagline about our sourdough"


class Telemetry:
    def __init__(self, capture_content: bool = False) -> None:
        self.exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        tracing.install(tracer_provider, MeterProvider(metric_readers=[self.reader]), capture_content=capture_content)
        observability.refresh()

    def spans(self) -> list:
        return list(self.exporter.get_finished_spans())

    def tree(self) -> tuple:
        """(the call's span, its children in the order they ended); fails unless there is exactly one root."""
        spans = self.spans()
        roots = [s for s in spans if s.parent is None]
        assert len(roots) == 1, [s.name for s in spans]
        root = roots[0]
        children = [s for s in spans if s.parent is not None]
        assert all(s.parent.span_id == root.context.span_id for s in children)
        assert all(s.context.trace_id == root.context.trace_id for s in children)
        return root, children

    def metric(self, name: str) -> list:
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [
            (metric, point)
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture
def telemetry():
    installed = Telemetry()
    yield installed
    tracing.uninstall()
    observability.refresh()


def openai_site(upstream, domain="obs.example.test", **extra):
    return AIProviderSettingsFactory(
        site=SiteFactory(domain=domain),
        provider_type="openai",
        openai_api_key=OAI_KEY,
        openai_base_url=upstream.openai_base_url,
        **extra,
    ).site


@pytest.fixture
def mini_price(db):
    return ModelPrice.objects.create(
        provider="openai",
        model_id="gpt-4o-mini",
        prompt_per_million=Decimal("0.15"),
        completion_per_million=Decimal("0.6"),
    )


def no_text_anywhere(spans, *texts: str) -> None:
    for span in spans:
        for value in span.attributes.values():
            for text in texts:
                assert text not in str(value), (span.name, value)


def test_a_plain_call_is_one_genai_span_with_one_attempt_child(db, upstream, telemetry, mini_price):
    site = openai_site(upstream)
    result = AIService(site=site, service="blog").generate_content(PROMPT, model="gpt-4o-mini", max_tokens=50)

    call, children = telemetry.tree()
    assert call.name == "chat gpt-4o-mini" and call.kind == SpanKind.CLIENT
    assert call.status.status_code != StatusCode.ERROR
    a = call.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == result.model
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.usage.input_tokens"] == result.prompt_tokens > 0
    assert a["gen_ai.usage.output_tokens"] == result.completion_tokens > 0
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
    assert a["panel.site"] == site.id and a["panel.service"] == "blog"
    assert a["panel.cache_hit"] is False and a["panel.status"] == "ok"
    expected_cost = (Decimal("0.15") * result.prompt_tokens + Decimal("0.6") * result.completion_tokens) / 1_000_000
    assert a["panel.cost_usd"] == pytest.approx(float(expected_cost))
    assert "error.type" not in a
    [attempt] = children
    assert attempt.name == "chat gpt-4o-mini" and attempt.kind == SpanKind.CLIENT
    assert attempt.attributes["panel.attempt"] == 1 and attempt.attributes["gen_ai.provider.name"] == "openai"
    assert "panel.failover_from" not in attempt.attributes
    assert call.start_time <= attempt.start_time <= attempt.end_time <= call.end_time
    no_text_anywhere(telemetry.spans(), PROMPT, result.content, OAI_KEY)  # no content unless opted in

    [(duration, point)] = telemetry.metric("gen_ai.client.operation.duration")
    assert duration.unit == "s" and point.count == 1
    assert tuple(point.explicit_bounds) == tracing.DURATION_BUCKETS
    assert point.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    tokens = {p.attributes["gen_ai.token.type"]: (m, p) for m, p in telemetry.metric("gen_ai.client.token.usage")}
    assert tokens["input"][0].unit == "{token}" and tokens["input"][1].sum == result.prompt_tokens
    assert tokens["output"][1].sum == result.completion_tokens
    assert tuple(tokens["input"][1].explicit_bounds) == tracing.TOKEN_BUCKETS


def test_a_failover_is_one_call_span_with_a_child_per_attempt(db, upstream, telemetry, settings):
    settings.AI_MAX_RETRIES = 1
    settings.AI_RETRY_BACKOFF = 0.01
    site = AIProviderSettingsFactory(
        site=SiteFactory(domain="failover.example.test"),
        provider_type="openrouter",
        openrouter_api_key=OR_KEY,
        openrouter_base_url=upstream.openrouter_base_url,
        anthropic_api_key=ANT_KEY,
        anthropic_base_url=upstream.anthropic_base_url,
        fallback_chain=[{"provider": "anthropic", "model": "claude-3-5-haiku"}],
    ).site
    upstream.script(flavor="openrouter", status=503, times=5)

    with clock.use(clock.FakeClock()):
        result = AIService(site=site).generate_content(PROMPT)

    call, children = telemetry.tree()
    assert result.provider == "anthropic"
    assert call.attributes["gen_ai.provider.name"] == "anthropic"  # who served it
    assert call.attributes["gen_ai.response.model"] == "claude-3-5-haiku-20241022"
    assert call.attributes["panel.attempts"] == 3 and "error.type" not in call.attributes
    assert [(s.attributes["gen_ai.provider.name"], s.attributes["panel.attempt"]) for s in children] == [
        ("openrouter", 1),
        ("openrouter", 2),
        ("anthropic", 1),
    ]
    assert [s.attributes.get("error.type") for s in children] == ["ProviderUnavailable"] * 2 + [None]
    assert [s.status.status_code == StatusCode.ERROR for s in children] == [True, True, False]
    assert [s.attributes.get("panel.failover_from") for s in children] == [None, None, "openrouter"]
    assert children[2].name == "chat claude-3-5-haiku-20241022"


def test_a_stream_is_traced_while_it_is_read(db, upstream, telemetry, mini_price):
    site = openai_site(upstream)
    stream = AIService(site=site).generate_stream(PROMPT, model="gpt-4o-mini")
    assert telemetry.spans() == []  # nothing happens before the caller reads
    text = "".join(stream)

    call, children = telemetry.tree()
    assert call.name == "chat gpt-4o-mini"
    assert call.attributes["panel.status"] == "ok"
    assert call.attributes["gen_ai.usage.output_tokens"] == stream.result.completion_tokens > 0
    assert call.attributes["panel.cost_usd"] > 0
    [attempt] = children
    assert attempt.attributes["panel.attempt"] == 1
    no_text_anywhere(telemetry.spans(), PROMPT, text)


def test_a_refused_call_is_one_error_span_and_no_request(db, upstream, telemetry, mini_price):
    site = openai_site(upstream, monthly_budget=Decimal("0.01"))
    AIUsage.objects.create(site=site, provider="openai", status="ok", cost=Decimal("0.01"))

    with pytest.raises(errors.BudgetExceeded):
        AIService(site=site).generate_content(PROMPT, model="gpt-4o-mini")

    call, children = telemetry.tree()
    assert children == [] and upstream.requests == []
    assert call.name == "chat gpt-4o-mini"
    assert call.status.status_code == StatusCode.ERROR
    assert call.attributes["error.type"] == "BudgetExceeded"
    assert call.attributes["panel.status"] == "refused"
    assert telemetry.metric("gen_ai.client.operation.duration") == []  # no model was asked


def test_a_stream_refused_by_policy_before_it_starts_is_still_one_span(db, upstream, telemetry):
    record = AIProviderSettingsFactory(
        site=SiteFactory(domain="policy.example.test"),
        provider_type="openai",
        openai_api_key=OAI_KEY,
        openai_base_url=upstream.openai_base_url,
        allowed_models=["gpt-4o"],
    )
    with pytest.raises(errors.PolicyViolation):
        AIService(site=record.site).generate_stream(PROMPT, model="gpt-4o-mini")
    call, children = telemetry.tree()
    assert children == [] and call.attributes["error.type"] == "PolicyViolation"
    assert call.attributes["gen_ai.request.model"] == "gpt-4o-mini"


def test_prompt_and_completion_are_recorded_only_when_the_deployment_opts_in(db, upstream):
    opted_in = Telemetry(capture_content=True)
    try:
        result = AIService(site=openai_site(upstream)).generate_content(PROMPT, model="gpt-4o-mini")
    finally:
        tracing.uninstall()
        observability.refresh()
    call, _ = opted_in.tree()
    assert json.loads(call.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": PROMPT}]}
    ]
    assert json.loads(call.attributes["gen_ai.output.messages"])[0]["parts"][0]["content"] == result.content


def test_without_otel_variables_nothing_is_set_up():
    from integrations.ai.observability import calls
    from integrations.ai.runtime import conf

    assert conf.otel_environment()["traces"] == "none" and conf.otel_environment()["metrics"] == "none"
    assert calls.STATE.active is False and tracing.STATE.tracer is None


def test_otel_variables_choose_the_exporters(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from integrations.ai.runtime import conf

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4318/v1/traces")
    assert conf.otel_environment()["traces"] == "otlp" and conf.otel_environment()["metrics"] == "none"
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "console")
    assert conf.otel_environment()["metrics"] == "console"
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert conf.otel_environment()["traces"] == "none"
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ImproperlyConfigured, match="http/protobuf"):
        conf.otel_environment()


# -- the JSON call log -------------------------------------------------------------------------------
def test_json_log_has_one_line_per_call_without_key_or_prompt(db, upstream, settings, caplog, mini_price):
    settings.AI_LOG_FORMAT = "json"
    observability.configure()
    try:
        site = openai_site(upstream)
        with caplog.at_level(logging.INFO, logger="integrations.ai.calls"):
            result = AIService(site=site, service="blog").generate_content(PROMPT, model="gpt-4o-mini")
    finally:
        settings.AI_LOG_FORMAT = "text"
        observability.configure()
    records = [r for r in caplog.records if r.name == "integrations.ai.calls"]
    assert len(records) == 1
    line = call_log.JsonFormatter().format(records[0])
    assert "\n" not in line
    data = json.loads(line)
    assert data["site"] == site.id and data["service"] == "blog" and data["provider"] == "openai"
    assert data["model"] == "gpt-4o-mini" and data["served_model"] == result.model and data["status"] == "ok"
    assert data["request_id"] == result.request_id and data["request_id"]
    assert data["latency_ms"] > 0 and Decimal(data["cost_usd"]) > 0
    assert data["input_tokens"] == result.prompt_tokens and data["cache_hit"] is False
    assert OAI_KEY not in line and PROMPT not in line and result.content not in line


# -- Prometheus, in one process -----------------------------------------------------------------------
def scrape(client, **headers) -> dict:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples: dict = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


@pytest.fixture
def metrics_on(settings):
    settings.AI_METRICS_TOKEN = "scrape-me"
    observability.configure()
    yield {"HTTP_AUTHORIZATION": "Bearer scrape-me"}
    settings.AI_METRICS_TOKEN = ""
    observability.configure()


def test_metrics_count_calls_tokens_cost_cache_hits_and_errors(db, upstream, client, metrics_on, mini_price):
    site = openai_site(upstream, monthly_budget=Decimal("5"))
    labels = {"site": str(site.id)}
    before = scrape(client, **metrics_on)
    service = AIService(site=site)
    first = service.generate_content(PROMPT, model="gpt-4o-mini", temperature=0)  # cached for the second
    service.generate_content(PROMPT, model="gpt-4o-mini", temperature=0)
    upstream.script(flavor="openai", status=400, times=1)
    with pytest.raises(errors.InvalidRequest):
        service.generate_content(PROMPT, model="gpt-4o-mini")
    usage.flush()
    after = scrape(client, **metrics_on)

    def delta(name: str, **more: str) -> float:
        return total(after, name, **labels, **more) - total(before, name, **labels, **more)

    assert delta("panel_ai_calls_total", status="ok") == 1
    assert delta("panel_ai_calls_total", status="cached") == 1
    assert delta("panel_ai_calls_total", status="error") == 1
    assert delta("panel_ai_cache_hits_total") == 1
    assert delta("panel_ai_errors_total", error_class="InvalidRequest", provider="openai") == 1
    assert delta("panel_ai_tokens_total", type="input") == first.prompt_tokens
    assert delta("panel_ai_tokens_total", type="output") == first.completion_tokens
    assert delta("panel_ai_cost_usd_total") == pytest.approx(
        float(usage.cost_of({("openai", first.model): (Decimal("0.15"), Decimal("0.6"))}, first)[0])
    )
    count = ("panel_ai_call_duration_seconds_count", (("model", "gpt-4o-mini"), ("provider", "openai")))
    assert after[count] - before.get(count, 0) == 3
    spent = sum(row.cost or 0 for row in AIUsage.objects.filter(site=site))
    assert spent > 0
    assert after[("panel_ai_budget_remaining_usd", (("site", str(site.id)),))] == pytest.approx(float(5 - spent))
    assert ("panel_ai_ledger_queue_depth", ()) in after


def test_metrics_shows_providers_cooling_down(db, upstream, client, metrics_on, settings):
    settings.AI_COOLDOWN_AFTER_FAILURES = 1
    settings.AI_MAX_RETRIES = 0
    site = openai_site(upstream)
    upstream.script(flavor="openai", status=503, times=1)
    with pytest.raises(errors.ProviderUnavailable):
        AIService(site=site).generate_content(PROMPT, model="gpt-4o-mini")
    samples = scrape(client, **metrics_on)
    assert samples[("panel_ai_provider_cooling_down", (("provider", "openai"), ("site", str(site.id))))] == 1
    assert samples[("panel_ai_providers_cooling_down", ())] == 1


def test_metrics_need_the_token_or_an_allowed_address(db, client, settings):
    assert client.get("/metrics").status_code == 404  # off: no token, no allowlist
    settings.AI_METRICS_TOKEN = "scrape-me"
    try:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200
        settings.AI_METRICS_TOKEN = ""
        settings.AI_METRICS_ALLOWLIST = ["10.0.0.0/8"]
        assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
        assert client.get("/metrics", REMOTE_ADDR="192.0.2.1").status_code == 401
    finally:
        settings.AI_METRICS_TOKEN = ""
        settings.AI_METRICS_ALLOWLIST = []
        observability.configure()


# -- health ----------------------------------------------------------------------------------------------
def test_healthz_and_readyz_answer_json_for_any_host(db, client, settings):
    settings.ALLOWED_HOSTS = ["panel.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    alive = client.get("/healthz", HTTP_HOST="10.0.0.7")  # a probe reaches the pod by its IP, over HTTP
    assert alive.status_code == 200 and alive.json() == {"status": "ok"}
    ready = client.get("/readyz", HTTP_HOST="10.0.0.7")
    assert ready.status_code == 200, ready.content
    body = ready.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == {"ok": True} and body["checks"]["cache"] == {"ok": True}
    assert body["checks"]["ledger"]["ok"] is True and body["checks"]["ledger"]["backlog"] == 0
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db(transaction=True)
def test_readyz_fails_when_the_ledger_backlog_is_over_its_limit(upstream, client, settings):
    from integrations.ai.ledger import writer as ledger_writer

    settings.AI_READY_LEDGER_BACKLOG = 0
    settings.REDIS_URL = ""  # the in-process queue, which this test can hold still (a Redis drainer it cannot)
    site = openai_site(upstream)
    ledger_writer._local.cond.acquire()  # the writer cannot take the queued call while we look
    try:
        AIService(site=site).generate_content(PROMPT, model="gpt-4o-mini")
        ready = client.get("/readyz")
    finally:
        ledger_writer._local.cond.release()
    assert ready.status_code == 503
    assert ready.json()["checks"]["ledger"]["ok"] is False


def test_every_metric_the_grafana_dashboard_queries_is_served(db, client, metrics_on):
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).resolve().parent.parent / "docs/grafana/panel-ai.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"panel_ai_[a-z_]+", target["expr"])
    }
    response = client.get("/metrics", **metrics_on)
    served = set()
    for family in text_string_to_metric_families(response.content.decode()):
        kind = family.type
        served.add(family.name)
        served |= {f"{family.name}_total"} if kind == "counter" else set()
        served |= {f"{family.name}_{s}" for s in ("bucket", "count", "sum")} if kind == "histogram" else set()
    assert queried and queried <= served, queried - served


def test_a_cache_hit_is_one_span_without_attempts(db, upstream, telemetry, mini_price):
    service = AIService(site=openai_site(upstream))
    service.generate_content(PROMPT, model="gpt-4o-mini", temperature=0)
    telemetry.exporter.clear()
    service.generate_content(PROMPT, model="gpt-4o-mini", temperature=0)

    call, children = telemetry.tree()
    assert children == [] and len(upstream.requests) == 1
    assert call.attributes["panel.cache_hit"] is True and call.attributes["panel.status"] == "cached"
    assert call.attributes["panel.cost_usd"] == 0
