"""`/metrics` under the production server (issue 24): two gunicorn workers, one scrape, both workers' counts.

Prometheus' multiprocess mode keeps each worker's values in a file of PROMETHEUS_MULTIPROC_DIR; the
test gives the server its own directory, calls the JSON endpoint until both workers have served
(each worker's file shows its own count), then checks that one scrape adds them up."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from integrations.models import APIToken

from .factories import AIProviderSettingsFactory, SiteFactory, SiteMembershipFactory, UserFactory, may_use_ai
from .test_server_config import Server

TOKEN = "scrape-" + "ab" * 16


def get(server: Server, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def calls_in(files: list[Path]) -> float:
    """panel_ai_calls_total summed over these workers' files (read as the scrape reads them)."""
    metrics = MultiProcessCollector.merge([str(f) for f in files], accumulate=True)
    return sum(
        s.value for m in metrics if m.name == "panel_ai_calls" for s in m.samples if s.name == "panel_ai_calls_total"
    )


@pytest.mark.django_db(transaction=True)
def test_one_scrape_sums_both_workers_counts(upstream, tmp_path):
    site = SiteFactory(domain="127.0.0.1")
    AIProviderSettingsFactory(
        site=site,
        provider_type="openai",
        openai_api_key="sk-proj-" + "e5" * 24,
        openai_base_url=upstream.openai_base_url,
    )
    user = may_use_ai(UserFactory(username="metrics-editor"))
    SiteMembershipFactory(user=user, site=site)
    _, raw_token = APIToken.issue(user, "metrics test")
    directory = tmp_path / "prometheus"
    (directory).mkdir()
    (directory / "counter_1.db").write_bytes(b"stale")  # a previous run's file: emptied at start
    server = Server(
        GUNICORN_WORKERS="2", GUNICORN_THREADS="2", AI_METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(directory)
    )
    try:
        made = 0
        per_worker: dict[Path, float] = {}
        while made < 200 and len([n for n in per_worker.values() if n > 0]) < 2:
            status, body = server.post(
                {"prompt": "Tagline for a bakery", "model": "gpt-4o-mini"},
                {"Authorization": f"Token {raw_token}", "Connection": "close"},
            )
            assert status == 200, (body, "".join(server.log))
            made += 1
            per_worker = {f: calls_in([f]) for f in directory.glob("counter_*.db")}
        assert len([n for n in per_worker.values() if n > 0]) == 2, "one worker served every call"
        assert sum(per_worker.values()) == made

        status, _ = get(server, "/metrics")
        assert status == 401
        status, text = get(server, "/metrics", {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        scraped = sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "panel_ai_calls_total" and s.labels["site"] == str(site.id) and s.labels["status"] == "ok"
        )
        assert scraped == made

        status, body = get(server, "/healthz")
        assert status == 200 and json.loads(body) == {"status": "ok"}
        status, body = get(server, "/readyz")
        assert status == 200 and json.loads(body)["status"] == "ok", body
    finally:
        server.stop()


OTLP_CHILD = """
import sys
sys.path.insert(0, "backend")
import django
django.setup()
from integrations.ai.gateway.service import AIService
AIService(site=int(sys.argv[1]), service="seo").generate_content("Meta description for a bakery", model="gpt-4o-mini")
"""


class Collector:
    """A loopback OTLP/HTTP receiver: keeps the bodies posted to /v1/traces and /v1/metrics."""

    def __init__(self) -> None:
        import http.server
        import threading

        received: dict[str, list[bytes]] = {"/v1/traces": [], "/v1/metrics": []}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.setdefault(self.path, []).append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.received = received
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.django_db(transaction=True)
def test_otel_variables_alone_send_genai_spans_and_metrics_to_a_collector(upstream):
    import subprocess
    import sys

    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from .test_scaleout import ROOT, child_env

    site = AIProviderSettingsFactory(
        provider_type="openai", openai_api_key="sk-proj-" + "f6" * 24, openai_base_url=upstream.openai_base_url
    ).site
    collector = Collector()
    try:
        out = subprocess.run(
            [sys.executable, "-c", OTLP_CHILD, str(site.id)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env=child_env(OTEL_EXPORTER_OTLP_ENDPOINT=collector.url, OTEL_SERVICE_NAME="panel-test"),
        )
    finally:
        collector.stop()
    assert out.returncode == 0, out.stderr[-2000:]
    spans = {}
    for body in collector.received["/v1/traces"]:
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
            assert service == "panel-test"
            for scope in resource.scope_spans:
                for span in scope.spans:
                    spans[span.span_id] = span
    roots = [s for s in spans.values() if not s.parent_span_id]
    assert [s.name for s in roots] == ["chat gpt-4o-mini"], [s.name for s in spans.values()]
    attributes = {a.key: a.value for a in roots[0].attributes}
    assert attributes["gen_ai.provider.name"].string_value == "openai"
    assert attributes["panel.service"].string_value == "seo" and attributes["panel.site"].int_value == site.id
    assert [s.name for s in spans.values() if s.parent_span_id == roots[0].span_id] == ["chat gpt-4o-mini"]
    names = {
        metric.name
        for body in collector.received["/v1/metrics"]
        for resource in ExportMetricsServiceRequest.FromString(body).resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert {"gen_ai.client.operation.duration", "gen_ai.client.token.usage"} <= names


def spans_in(bodies: list[bytes]) -> dict:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    return {
        span.span_id: span
        for body in bodies
        for resource in ExportTraceServiceRequest.FromString(body).resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    }


@pytest.mark.django_db(transaction=True)
def test_under_gunicorn_a_calls_span_sits_under_its_requests_span(upstream):
    site = SiteFactory(domain="127.0.0.1")
    AIProviderSettingsFactory(
        site=site,
        provider_type="openai",
        openai_api_key="sk-proj-" + "a7" * 24,
        openai_base_url=upstream.openai_base_url,
    )
    user = may_use_ai(UserFactory(username="traced-editor"))
    SiteMembershipFactory(user=user, site=site)
    _, raw_token = APIToken.issue(user, "trace test")
    collector = Collector()
    try:
        server = Server(
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{collector.url}/v1/traces", OTEL_PYTHON_DJANGO_EXCLUDED_URLS="healthz"
        )
        try:
            status, body = server.post(
                {"prompt": "Tagline for a bakery", "model": "gpt-4o-mini"}, {"Authorization": f"Token {raw_token}"}
            )
            assert status == 200, body
            assert get(server, "/healthz")[0] == 200  # excluded: no span
        finally:
            assert server.stop() == 0  # the worker's exit flushes its batch of spans
    finally:
        collector.stop()
    spans = spans_in(collector.received["/v1/traces"])
    by_name = {s.name: s for s in spans.values()}
    request = next((s for s in spans.values() if "generate" in s.name), None)
    assert request is not None, sorted(by_name)
    assert by_name["chat gpt-4o-mini"].parent_span_id == request.span_id, sorted(by_name)
    assert by_name["chat gpt-4o-mini"].trace_id == request.trace_id
    assert not any("healthz" in name for name in by_name)
    assert collector.received.get("/v1/metrics", []) == []  # only traces were asked for
