"""Benchmarks for the AI layer, printed as tables (run on demand: `bin/bench`, or `bin/bench --quick`).

All numbers come from one run against the loopback upstream emulator, which runs in its own
process (as a vendor is), so they measure our overhead, not a vendor's: the emulator answers in
well under a millisecond unless told to wait.

- overhead (in-process): p50/p99 of the raw `openai` SDK (one reused client, `chat.completions.create`),
  of `AIService(site=...).generate_content` the way every caller gets it (the headline: usage ledger
  written as usual, on a site with a monthly budget), of named variants beside it (among them the raw
  SDK's `client.post`, the call the gateway itself makes: the like-for-like baseline), and of
  LiteLLM's `completion()`: same emulator, same prompt. Each contender runs alone in its own process,
  6 rounds in turn, so one contender's background threads never slow another's calls. The
  "OpenTelemetry on" variant is the headline with spans and GenAI metrics recorded to in-memory
  exporters; the headline itself runs with observability off (no OTEL_* set), as by default.
- http: `POST /api/ai/generate/` and `POST /v1/chat/completions` (a virtual key, OpenAI's request
  shape) under the production server (`bin/serve`: gunicorn, uvicorn workers) at concurrency 1, 16 and 64,
  beside the emulator called directly with the same body and LiteLLM's proxy pointed at the same
  emulator; p50/p99 latency and requests per second, measured with `wrk`. Then the same chat body
  streamed: time to the first content chunk for the emulator, Panel's /v1 and LiteLLM's proxy.
- long streams (`benchmarks/streams.py`; alone: `bin/bench --streams`): 1,000 concurrent streams of 200
  tokens at 20 tokens/s through Panel's /v1 and LiteLLM's proxy beside the emulator direct: TTFT p50/p99
  and its overhead, errors, the most streams open at once, server RSS per open stream.
- http shapes: the same server on SQLite + local memory and on PostgreSQL + Redis (the production shape: the
  PostgreSQL server of `BENCH_POSTGRES_URL` or `DATABASE_URL`, a fresh `<name>_bench` database on it, and a
  throwaway redis-server), both endpoints at every concurrency: requests per second, their ratio, and the
  CPU milliseconds per request of the server, Redis and PostgreSQL (`--shapes-only` runs just this).
- batch: 100 prompts at concurrency 16 against a 50 ms upstream, wall time vs the ideal 7 x 50 ms.
- import time of `integrations.ai` (fresh interpreter) and peak memory over 1,000 sequential calls.

The database is its own file, `var/bench.sqlite3` (recreated and migrated on every run); the
development database is never touched. Everything listens on 127.0.0.1 only.

`bin/bench --search [--search-pages N]` runs only search by meaning (`benchmarks/search.py`): 50,000 pages
of one site embedded in batches through the gateway (requests and cost printed), then search p50/p95.

`bin/bench --dashboard [--dashboard-rows N]` runs only the usage dashboard step: a ledger of
1,000,000 rows (`seed_usage`, over the last 90 days, two sites; seeded once, topped up if short)
and the dashboard page rendered through the test client as a superuser and as a site admin,
median of 5 renders each. It uses `DATABASE_URL` when set (e.g. PostgreSQL), else its own kept
file `var/bench-dashboard.sqlite3`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backend"))
sys.path.insert(0, str(ROOT))

KEY = "sk-bench-" + "0" * 40
PROXY_KEY = "sk-bench-proxy-" + "7" * 24  # LiteLLM's proxy refuses to start without a master key
BENCH_DB = ROOT / "var" / "bench.sqlite3"
PROMPT = "Write a one-line tagline for a bakery"
MODEL = "gpt-4o-mini"
BUDGET = Decimal("1000000")  # a cap never reached: the reserve/settle path runs on every call
HEADLINE = "AIService (default)"  # ledger journal on, as by default (ledger_journal.py)
NO_JOURNAL = "variant: ledger journal off"
CONCURRENCIES = (1, 16, 64)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine() -> str:
    """CPU model, cores, memory, Python and kernel: numbers mean nothing without them."""
    cpu = platform.processor() or platform.machine()
    memory = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name"))
        kib = int(
            next(
                line.split()[1]
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            )
        )
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return (
        f"machine: {cpu} ({platform.machine()}), {os.cpu_count()} cores{memory}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def setup_django(fresh: bool = True) -> None:
    """Production settings (DEBUG off) on a fresh, migrated `var/bench.sqlite3`, never the dev database
    (`fresh=False`: the one the parent run made, for a contender's own process)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "panel.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{BENCH_DB}"
    os.environ["DJANGO_DEBUG"] = "0"  # as deployed: no per-connection query log
    os.environ["DJANGO_ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    # The bench sites' base URLs point at the loopback emulator (ephemeral ports): the deployment allows
    # loopback for sites, as a deployment with a local model server would (the policy's check still runs).
    os.environ["AI_OUTBOUND_ALLOWLIST"] = "127.0.0.1"
    # Plain HTTP on loopback, as behind a proxy that terminates TLS: no redirect to https.
    os.environ["DJANGO_SECURE_SSL_REDIRECT"] = "0"
    # The load test measures the endpoint, not its per-token limiter (60 requests a minute by default).
    os.environ["AI_API_RATE_LIMIT"] = "off"
    BENCH_DB.parent.mkdir(exist_ok=True)
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{BENCH_DB}{suffix}").unlink(missing_ok=True)
    import django

    django.setup()
    if fresh:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


DASHBOARD_DB = ROOT / "var" / "bench-dashboard.sqlite3"
DASHBOARD_SITES = ("dash-a.bench.local", "dash-b.bench.local")
DASHBOARD_URL = "/admin/integrations/aiusage/dashboard/"


def setup_dashboard_django() -> str:
    """Production settings on `DATABASE_URL` if set, else a kept `var/bench-dashboard.sqlite3`; migrated."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "panel.settings"
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{DASHBOARD_DB}")
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ["DJANGO_ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    DASHBOARD_DB.parent.mkdir(exist_ok=True)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    db = connection.settings_dict
    return f"{db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}"


def dashboard_bench(rows: int, renders: int = 5) -> None:
    """Seed the ledger to `rows` rows (once), then time the dashboard page as superuser and site admin."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.contrib.sites.models import Site
    from django.test import Client

    from integrations.management.commands.seed_usage import seed
    from integrations.models import AIProviderSettings, AIUsage, UsageDaily
    from tenancy.models import SiteMembership

    sites = []
    for domain, cap in zip(DASHBOARD_SITES, (Decimal("5000"), Decimal("800")), strict=True):
        site, _ = Site.objects.get_or_create(domain=domain, defaults={"name": domain})
        AIProviderSettings.objects.get_or_create(site=site, defaults={"provider_type": "openai", "monthly_budget": cap})
        sites.append(site)
    Site.objects.get_or_create(domain="localhost", defaults={"name": "bench admin host"})
    have = AIUsage.objects.filter(site__in=sites).count()
    if have < rows:
        print(f"seeding {rows - have:,} ledger rows (seed_usage, batches of 10,000) ...", flush=True)
        started = time.perf_counter()
        seed(rows - have, [s.pk for s in sites], 90, seed_value=have)
        print(f"seeded in {time.perf_counter() - started:.0f} s", flush=True)
    users = get_user_model().objects
    root = users.filter(username="bench-root").first() or users.create_superuser("bench-root", "root@bench.local")
    admin = users.filter(username="bench-site-admin").first() or users.create_user("bench-site-admin", is_staff=True)
    SiteMembership.objects.get_or_create(user=admin, site=sites[0])
    admin.user_permissions.add(Permission.objects.get(codename="view_aiusage"))

    ledger_rows = AIUsage.objects.count()
    print(
        f"\ndashboard: {ledger_rows:,} ledger rows, {UsageDaily.objects.count():,} daily roll-up rows; "
        f"GET {DASHBOARD_URL} through the test client (middleware, admin, template), median of {renders}"
    )
    print(f"{'user':<34}{'range':<10}{'median ms':>11}{'min ms':>9}{'max ms':>9}")
    for label, user in (("superuser (all sites)", root), ("site admin (one site)", admin)):
        client = Client(HTTP_HOST="localhost")
        client.force_login(user)
        for range_label, query in (
            ("30 days", {}),
            ("90 days", {"start": (datetime.date.today() - datetime.timedelta(days=89)).isoformat()}),
        ):

            def render(query=query, client=client) -> None:
                response = client.get(DASHBOARD_URL, query, secure=True)
                assert response.status_code == 200, response.status_code
                assert b"chart-cost" in response.content

            render()  # warm: templates, connections, permission caches
            samples = measure(render, renders)
            print(
                f"{label:<34}{range_label:<10}{statistics.median(samples):>11.1f}{min(samples):>9.1f}"
                f"{max(samples):>9.1f}"
            )


def make_site(domain: str, base_url: str, budget: Decimal | None):
    """A site whose own OpenAI settings point at the emulator, as an admin would configure it."""
    from django.contrib.sites.models import Site

    from integrations.models import AIProviderSettings, ProviderCredential

    site = Site.objects.create(domain=domain, name=domain)
    record = AIProviderSettings.objects.create(site=site, provider_type="openai", monthly_budget=budget)
    ProviderCredential.objects.create(settings=record, provider="openai", api_key=KEY, base_url=base_url)
    return site


def measure(fn, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


RAW_POST = "raw SDK, client.post"  # the SDK call the gateway itself makes: the like-for-like baseline
DEFERRED = "variant: ledger deferred, no journal"  # rows written by the caller every 500 calls
OTEL_ON = "variant: OpenTelemetry on"  # the headline with spans and GenAI metrics to in-memory exporters
CONTENDERS = (
    "raw openai SDK",
    HEADLINE,
    NO_JOURNAL,
    "variant: site without budget",
    DEFERRED,
    OTEL_ON,
    RAW_POST,
    "LiteLLM completion()",
)


def contender_call(name: str, base_url: str):
    """The call one contender makes, built in the process that measures it."""
    import openai

    from integrations.ai.gateway.service import AIService
    from integrations.ai.ledger import usage

    messages = [{"role": "user", "content": PROMPT}]
    if name == "raw openai SDK":
        raw = openai.OpenAI(api_key=KEY, base_url=base_url, max_retries=0)
        return lambda: raw.chat.completions.create(model=MODEL, messages=messages, max_tokens=100, temperature=0.7)
    if name == RAW_POST:  # the documented custom-request call, as providers/openai_provider.py sends
        raw = openai.OpenAI(api_key=KEY, base_url=base_url, max_retries=0)
        body = {"model": MODEL, "messages": messages, "max_tokens": 100, "temperature": 0.7}
        chat_completion = openai.types.chat.ChatCompletion
        return lambda: raw.post("/chat/completions", body=body, cast_to=chat_completion)
    if name == "LiteLLM completion()":
        import litellm

        return lambda: litellm.completion(
            model=f"openai/{MODEL}", messages=messages, max_tokens=100, temperature=0.7, api_key=KEY, api_base=base_url
        )
    if name == OTEL_ON:  # as a deployment with OTEL_* set, but exported to memory (no collector's I/O measured)
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from integrations.ai import observability
        from integrations.ai.observability import tracing

        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
        tracing.install(tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()]))
        observability.refresh()
    domain = "unbudgeted.bench.local" if name == "variant: site without budget" else "budgeted.bench.local"
    service = AIService(site=domain_site(domain), service="bench")
    if name == DEFERRED:  # what batch workers do; no normal caller gets it
        rows: list = []

        def deferred() -> None:
            with usage.deferred(rows):
                service.generate_content(PROMPT, model=MODEL, max_tokens=100)
            if len(rows) >= 500:
                usage.flush(rows)  # written in one go every 500 calls (one slow call in 500: not the p50)

        return deferred
    return lambda: service.generate_content(PROMPT, model=MODEL, max_tokens=100)  # ledger on, budget checked


def domain_site(domain: str):
    from django.contrib.sites.models import Site

    return Site.objects.get(domain=domain)


def overhead_worker(name: str, base_url: str, calls: int) -> None:
    """`run.py --overhead-worker NAME URL N`: one contender alone in its own process; prints its samples.

    Each contender measured in its own interpreter: a background thread of one (our ledger writer,
    LiteLLM's logging workers) can only slow the calls it belongs to.
    """
    from integrations.ai.ledger import usage
    from integrations.ai.ledger import writer as ledger_writer

    fn = contender_call(name, base_url)
    measure(fn, 50)  # warm up: clients, pools, snapshots, budget counters, lazy imports
    usage.flush()
    before = thread_cpu(ledger_writer._local.thread)
    samples = measure(fn, calls)
    usage.flush()  # the writer's last batch belongs to these calls: its CPU is counted below
    writer = thread_cpu(ledger_writer._local.thread) - before
    print("SAMPLES " + json.dumps({"samples": samples, "writer_cpu_ms": writer * 1000 / calls}), flush=True)


def overhead(upstream: Emulator, n: int, with_litellm: bool) -> list[tuple[str, float, float]]:
    """In-process p50/p99 per contender; the raw SDK first, the headline second.

    Every contender runs alone in its own process, one after another, in 6 rounds (so drift of the
    machine over the run hits every contender alike); samples of the rounds are pooled.
    """
    make_site("budgeted.bench.local", upstream.openai_base_url, BUDGET)
    make_site("unbudgeted.bench.local", upstream.openai_base_url, None)
    names = [c for c in CONTENDERS if with_litellm or c != "LiteLLM completion()"]
    samples: dict[str, list[float]] = {name: [] for name in names}
    writer_cpu: list[float] = []
    rounds = 6
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    for _ in range(rounds):
        for name in names:
            out = subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--overhead-worker",
                    name,
                    upstream.openai_base_url,
                    str(max(1, n // rounds)),
                ],
                capture_output=True,
                text=True,
                cwd=ROOT,
                env={**env, "AI_LEDGER_JOURNAL_DIR": ""} if name == NO_JOURNAL else env,
            )
            line = next((x for x in out.stdout.splitlines() if x.startswith("SAMPLES ")), None)
            if out.returncode != 0 or line is None:
                raise RuntimeError(f"{name} failed: {out.stderr[-2000:]}")
            result = json.loads(line[len("SAMPLES ") :])
            samples[name] += result["samples"]
            if name == HEADLINE:
                writer_cpu.append(result["writer_cpu_ms"])
    global WRITER_CPU_PER_CALL
    WRITER_CPU_PER_CALL = statistics.median(writer_cpu)
    return [(name, percentile(s, 50), percentile(s, 99)) for name, s in samples.items()]


WRITER_CPU_PER_CALL = 0.0


def thread_cpu(thread) -> float:
    """CPU seconds a thread has used so far (Linux), 0 when it does not run."""
    if thread is None or not thread.is_alive():
        return 0.0
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def print_overhead(results: list[tuple[str, float, float]], n: int) -> None:
    raw_p50 = results[0][1]
    by_name = {name: p50 for name, p50, _ in results}
    print(
        f"\noverhead, in-process ({n} calls each; every contender alone in its own process, 6 rounds in turn; "
        "the loopback emulator in its own process, no added latency)"
    )
    print(
        f"headline = {HEADLINE}: AIService(site=...).generate_content as every caller gets it, "
        "usage ledger written as usual (each call's rows appended to the process's ledger journal first), "
        "site with a monthly budget"
    )
    print(f"{'contender':<40}{'p50 ms':>10}{'p99 ms':>10}{'p50 / raw':>12}{'added p50 ms':>15}")
    for name, p50, p99 in results:
        print(f"{name:<40}{p50:>10.3f}{p99:>10.3f}{p50 / raw_p50:>12.3f}{p50 - raw_p50:>15.3f}")
    if "LiteLLM completion()" in by_name:
        ours, theirs = by_name[HEADLINE] - raw_p50, by_name["LiteLLM completion()"] - raw_p50
        print(
            f"added over raw SDK at p50: {HEADLINE} {ours:.3f} ms, LiteLLM completion() {theirs:.3f} ms "
            f"(ratio {ours / theirs if theirs > 0 else float('nan'):.3f})"
        )
    if RAW_POST in by_name:
        print(
            f"like for like: {HEADLINE} over the raw SDK's client.post (the call the gateway makes) at p50: "
            f"{by_name[HEADLINE] - by_name[RAW_POST]:+.3f} ms; create()'s own transform of the request: "
            f"{raw_p50 - by_name[RAW_POST]:+.3f} ms"
        )
    if OTEL_ON in by_name:
        print(
            f"OpenTelemetry on (a span per call and per attempt, GenAI metrics; in-memory exporter and reader): "
            f"{by_name[OTEL_ON] - by_name[HEADLINE]:+.3f} ms at p50 over the headline (off, no OTEL_* set)"
        )
    print(f"observability off: its three hooks cost {observability_off_cost() * 1000:.2f} us per call (timeit)")
    print(f"ledger writer thread (off the caller's thread): {WRITER_CPU_PER_CALL * 1000:.0f} us CPU per headline call")


def observability_off_cost(n: int = 200_000) -> float:
    """Milliseconds the pipeline's observability hooks add to one call with everything off: the execute
    wrapper, the attempt hook and the ledger hook, timed around empty functions."""
    import timeit

    from integrations.ai.observability import calls

    assert not calls.STATE.active

    def plain(service, prep):
        return None

    wrapped = calls.traced_call(plain)
    bare = min(timeit.repeat(lambda: plain(None, None), number=n, repeat=5))
    hooked = min(
        timeit.repeat(
            lambda: (wrapped(None, None), calls.attempt_ended(None), calls.call_ended(None, None)), number=n, repeat=5
        )
    )
    return (hooked - bare) / n * 1000


# -- HTTP ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_emulator(port: int, delay: float = 0.0, token_rate: float = 0.0, stream_words: int = 0) -> None:
    """`run.py --serve-emulator PORT [--emulator-delay S]`: the emulator in its own process, as a vendor is
    (its work never shares the measured interpreter), answering every request after `delay` seconds;
    streams paced at `token_rate` deltas a second, `stream_words` long (the streaming step's)."""
    from integrations.ai.testing.upstream import Upstream

    upstream = Upstream("127.0.0.1", port).start()
    upstream.token_rate, upstream.stream_words = token_rate, stream_words
    if delay:
        upstream.script(delay=delay, times=10**12)
    print(f"emulator on {upstream.url}", flush=True)
    try:
        while True:
            time.sleep(1)
            with upstream._lock:  # tens of thousands of recorded requests would skew memory and GC
                upstream.requests.clear()
                upstream._generations.clear()
    except KeyboardInterrupt:
        upstream.stop()


class Emulator:
    """The upstream emulator in its own process (`--serve-emulator`), ready when its port answers."""

    def __init__(self, name: str, delay: float = 0.0, token_rate: float = 0.0, stream_words: int = 0) -> None:
        self.port = free_port()
        args = [sys.executable, str(Path(__file__).resolve()), "--serve-emulator", str(self.port)]
        if delay:
            args += ["--emulator-delay", str(delay)]
        if token_rate:
            args += ["--emulator-token-rate", str(token_rate), "--emulator-stream-words", str(stream_words)]
        self._start(name, args, "the emulator")

    def _start(self, name: str, args: list[str], what: str) -> None:
        """Start `args` as this upstream's process; return once its port answers (or fail naming `what`)."""
        self.process = Process(name, args, ROOT / "var" / f"bench-{name}.log")
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.popen.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{what} did not start; see {self.process.log}") from None
                time.sleep(0.1)

    @property
    def openai_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/openai/v1"

    def stop(self) -> None:
        self.process.stop()


class StreamUpstream(Emulator):
    """The long-streams step's upstream: `benchmarks/stream_upstream.py`, OpenAI's format on one event loop (the
    test emulator's thread per stream could not pace 1,000 streams itself)."""

    def __init__(self, rate: float, tokens: int) -> None:
        self.port = free_port()
        script = Path(__file__).resolve().with_name("stream_upstream.py")
        args = [sys.executable, str(script), "--port", str(self.port), "--rate", str(rate), "--tokens", str(tokens)]
        self._start("stream-upstream", args, "the stream upstream")


class Process:
    """A server started for the benchmark, in its own process group, stopped by its id."""

    def __init__(
        self,
        name: str,
        args: list[str],
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
        drop: tuple[str, ...] = (),
    ) -> None:
        self.name, self.log = name, log
        self._file = log.open("w")
        child_env = {k: v for k, v in os.environ.items() if k not in drop}
        self.popen = subprocess.Popen(
            args,
            cwd=cwd,
            env={**child_env, **(env or {})},
            stdout=self._file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._file.close()

    def pause(self) -> None:
        """Stop the whole group (SIGSTOP): while another contender is measured, this one's idle work (timers,
        background tasks) takes none of the shared cores."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGCONT)


@contextlib.contextmanager
def alone(measured: Any, servers: list[Any]) -> Iterator[None]:
    """Run a cell with every other server paused: each contender is measured with only itself, the upstream
    and the load generator on the cores (the emulator, which every contender calls, always runs)."""
    paused = [server for server in servers if server is not measured]
    for server in paused:
        server.pause()
    try:
        yield
    finally:
        for server in paused:
            server.resume()


def post(url: str, body: dict, headers: dict[str, str], timeout: float = 10) -> int:
    request = urllib.request.Request(
        url, method="POST", data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_ready(process: Process, url: str, body: dict, headers: dict[str, str], limit: float) -> None:
    """Until the contender answers 200 a few times in a row (every worker warm), or fail loudly."""
    deadline, ok = time.monotonic() + limit, 0
    while ok < 8:
        if process.popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{process.name} did not come up; see {process.log}")
        try:
            status = post(url, body, headers)
        except OSError:
            status = 0
        if status not in (0, 200):
            raise RuntimeError(f"{process.name} answered {status}; see {process.log}")
        ok = ok + 1 if status == 200 else 0
        if status != 200:
            time.sleep(0.5)


WRK_SCRIPT = """wrk.method = "POST"
wrk.body = [[%(body)s]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = [[%(auth)s]]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def wrk(name: str, url: str, body: dict, auth: str, concurrency: int, seconds: int) -> dict:
    """One closed-loop wrk run; latencies in ms, throughput in requests per second."""
    script = ROOT / "var" / f"bench-wrk-{name}.lua"
    script.write_text(WRK_SCRIPT % {"body": json.dumps(body), "auth": auth})
    threads = min(concurrency, 2)
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(concurrency),
            "-d",
            f"{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH "))
    requests, duration_us, p50_us, p99_us, status_errors, socket_errors = (int(x) for x in line.split()[1:])
    return {
        "p50": p50_us / 1000,
        "p99": p99_us / 1000,
        "rps": requests / (duration_us / 1e6),
        "requests": requests,
        "errors": status_errors + socket_errors,
    }


FIRST_CONTENT = b'"content":"'


def ttft(url: str, body: dict, auth: str, concurrency: int, seconds: float) -> dict:
    """Streamed requests back to back from `concurrency` threads for `seconds`: time from sending a request to
    the first SSE line carrying content text (ms, p50/p99), each on a fresh connection (as wrk's are reused,
    these are not: every contender pays the same connect)."""
    import http.client
    import threading
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    payload = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Authorization": auth}
    samples: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker() -> None:
        while time.monotonic() < stop_at:
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            started, first = time.perf_counter(), None
            try:
                connection.request("POST", parts.path, payload, headers)
                response = connection.getresponse()
                for line in iter(response.readline, b""):
                    if (
                        first is None
                        and line.startswith(b"data:")
                        and FIRST_CONTENT in line.replace(b": ", b":")
                        and b'"content":""' not in line.replace(b": ", b":")
                    ):
                        first = (time.perf_counter() - started) * 1000
                ok = response.status == 200 and first is not None
            except OSError:
                ok = False
            finally:
                connection.close()
            with lock:
                if ok:
                    samples.append(first)  # type: ignore[arg-type]
                else:
                    errors[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    samples.sort()
    return {
        "p50": percentile(samples, 50) if samples else 0.0,
        "p99": percentile(samples, 99) if samples else 0.0,
        "requests": len(samples),
        "errors": errors[0],
    }


def litellm_proxy(emulator_base: str, port: int, name: str) -> Process:
    """LiteLLM's proxy (2 uvicorn workers, master key, no database) serving MODEL from the emulator."""
    var = ROOT / "var"
    litellm_bin = Path(sys.executable).parent / "litellm"
    config = var / f"{name}.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {emulator_base}\n"
        f"      api_key: {KEY}\n"
        "general_settings:\n"
        f"  master_key: {PROXY_KEY}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    return Process(
        "LiteLLM proxy",
        [str(litellm_bin), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "2"],
        var / f"{name}.log",
        {"LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        cwd=var,
        drop=("DATABASE_URL", "REDIS_URL"),
    )  # ours, not the proxy's: it would try to use them


def streams_bench(quick: bool, with_litellm: bool, count: int | None = None) -> None:
    """N concurrent long streams (200 tokens at 20 tokens/s each) through Panel's /v1 (bin/serve, ASGI) and
    LiteLLM's proxy, beside the emulator direct (benchmarks/streams.py)."""
    from django.contrib.auth import get_user_model

    from benchmarks.streams import RATE, TOKENS, run_streams
    from integrations.api.v1 import keys

    streams, ramp = (300, 3.0) if quick else (1000, 5.0)
    if count:
        streams, ramp = count, max(ramp * count / streams, 0.5)
    emulator = StreamUpstream(RATE, TOKENS)
    server_port, proxy_port = free_port(), free_port()
    processes: list[Process] = []
    try:
        base = emulator.openai_base_url
        site = make_site("streams.bench.local", base, BUDGET)
        user = get_user_model().objects.create_user("bench-streams")
        _, virtual_key = keys.issue(site, user, "streams")
        server = Process(
            "bin/serve (ASGI)",
            [str(ROOT / "bin" / "serve")],
            ROOT / "var" / "bench-serve-streams.log",
            {"GUNICORN_BIND": f"127.0.0.1:{server_port}"},
        )
        processes.append(server)
        proxy = litellm_proxy(base, proxy_port, "bench-litellm-streams") if with_litellm else None
        if proxy is not None:
            processes.append(proxy)
        chat = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 300}
        contenders = [
            ("emulator direct", emulator.process, f"{base}/chat/completions", f"Bearer {KEY}"),
            (
                "Panel /v1 (bin/serve)",
                server,
                f"http://127.0.0.1:{server_port}/v1/chat/completions",
                f"Bearer {virtual_key}",
            ),
        ]
        if proxy is not None:
            contenders.append(
                ("LiteLLM proxy", proxy, f"http://127.0.0.1:{proxy_port}/v1/chat/completions", f"Bearer {PROXY_KEY}")
            )
        for _name, process, url, auth in contenders:
            wait_ready(process, url, chat, {"Authorization": auth}, 240 if process is proxy else 30)
        print(
            f"\nlong streams: {streams} concurrent streams of {TOKENS} tokens at {RATE:g} tokens/s (opened over "
            f"{ramp:g} s; each ~{TOKENS / RATE:g} s), one asyncio client; Panel = bin/serve default (gunicorn + "
            "uvicorn workers, 2 workers, ASGI), ledger on, budgeted site; LiteLLM proxy: 2 uvicorn workers"
        )
        print(
            f"{'contender':<24}{'TTFT p50':>10}{'TTFT p99':>10}{'+p50 ms':>9}{'+p99 ms':>9}{'peak open':>11}"
            f"{'ok':>7}{'errors':>8}{'RSS/stream':>12}"
        )
        results: dict[str, dict] = {}
        servers = [c[1] for c in contenders if c[0] != "emulator direct"]
        for name, process, url, auth in contenders:
            pgid = None if name == "emulator direct" else process.popen.pid  # its own session: pgid == pid
            with alone(process, servers):
                results[name] = result = run_streams(url, chat, auth, streams, ramp, pgid)
            direct = results["emulator direct"]
            added = (
                ("", "")
                if name == "emulator direct"
                else (
                    f"{result['p50'] - direct['p50']:.1f}",
                    f"{result['p99'] - direct['p99']:.1f}",
                )
            )
            rss = f"{result['rss_per_stream'] / 1024:.0f} KiB" if result["rss_per_stream"] else "-"
            print(
                f"{name:<24}{result['p50']:>10.1f}{result['p99']:>10.1f}{added[0]:>9}{added[1]:>9}"
                f"{result['peak']:>11}{result['completed']:>7}{result['errors']:>8}{rss:>12}"
            )
        print("time to first token (p50 / p99 ms) by how many streams were open when it started")
        highs = results["emulator direct"]["bands"]
        print(f"{'contender':<24}" + "".join(f"{f'<= {high:,} open':>25}" for high in highs))
        for name, result in results.items():
            cells = (f"{p50:.1f} / {p99:.1f} ({n})" for p50, p99, n in result["bands"].values())
            print(f"{name:<24}" + "".join(f"{cell:>25}" for cell in cells))
    finally:
        for process in reversed(processes):
            process.stop()
        emulator.stop()


def http_bench(emulator_process: Emulator, quick: bool, with_litellm: bool) -> None:
    from django.contrib.auth import get_user_model

    from integrations.models import APIToken
    from tenancy.models import SiteMembership

    if not shutil.which("wrk"):
        print("\nhttp: wrk not found (apt-get install wrk; bin/bench installs it); skipping")
        return
    var = ROOT / "var"
    server_port, proxy_port = free_port(), free_port()
    emulator = emulator_process.process
    processes: list[Process] = []
    try:
        emulator_base = emulator_process.openai_base_url
        site = make_site("127.0.0.1", emulator_base, BUDGET)  # the site comes from the request's host
        user = get_user_model().objects.create_user("bench", is_staff=True)
        SiteMembership.objects.create(user=user, site=site)
        from django.contrib.auth.models import Permission

        user.user_permissions.add(Permission.objects.get(codename="use_ai"))  # the generate endpoint asks for it
        _, token = APIToken.issue(user, "bench")
        from integrations.api.v1 import keys

        _, virtual_key = keys.issue(site, user, "bench")  # the /v1 endpoints' key for the same site

        server = Process(
            "gunicorn (bin/serve)",
            [str(ROOT / "bin" / "serve")],
            var / "bench-gunicorn.log",
            {"GUNICORN_BIND": f"127.0.0.1:{server_port}"},
        )
        processes.append(server)
        proxy = None
        if with_litellm:
            proxy = litellm_proxy(emulator_base, proxy_port, "bench-litellm")
            processes.append(proxy)

        chat = {
            "model": MODEL,
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 100,
            "temperature": 0.7,
        }
        ours = {"prompt": PROMPT, "model": MODEL, "max_tokens": 100, "temperature": 0.7}
        contenders = [  # name, process, url, body, Authorization
            ("emulator direct", emulator, f"{emulator_base}/chat/completions", chat, f"Bearer {KEY}"),
            (
                "Panel /api/ai/generate/",
                server,
                f"http://127.0.0.1:{server_port}/api/ai/generate/",
                ours,
                f"Token {token}",
            ),
        ]
        contenders.append(
            (
                "Panel /v1/chat/completions",
                server,
                f"http://127.0.0.1:{server_port}/v1/chat/completions",
                chat,
                f"Bearer {virtual_key}",
            )
        )  # the same request shape as LiteLLM's proxy
        if proxy is not None:
            contenders.append(
                (
                    "LiteLLM proxy",
                    proxy,
                    f"http://127.0.0.1:{proxy_port}/v1/chat/completions",
                    chat,
                    f"Bearer {PROXY_KEY}",
                )
            )
        for _name, process, url, body, auth in contenders:
            wait_ready(process, url, body, {"Authorization": auth}, 240 if process is proxy else 30)

        seconds, warm = (3, 1) if quick else (8, 2)
        print(
            f"\nhttp: POST under load (wrk, closed loop, {seconds} s per cell after {warm} s warm-up; "
            "server, emulator and wrk share the machine's cores)"
        )
        print(
            "Panel = bin/serve (gunicorn, its default ASGI shape: 2 uvicorn workers, DEBUG off, "
            "SQLite var/bench.sqlite3, "
            "ledger on, site with a monthly budget); LiteLLM proxy: 2 uvicorn workers, master key, no database"
        )
        print(f"{'conc.':>5}  {'contender':<26}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'added p50 ms':>14}{'errors':>8}")
        servers = [server, *([proxy] if proxy is not None else [])]
        for concurrency in CONCURRENCIES:
            cell: dict[str, dict] = {}
            for index, (name, process, url, body, auth) in enumerate(contenders):
                with alone(process, servers):
                    wrk(f"c{index}", url, body, auth, concurrency, warm)
                    cell[name] = wrk(f"c{index}", url, body, auth, concurrency, seconds)
            base = cell["emulator direct"]["p50"]
            for name, result in cell.items():
                if not result["requests"]:
                    print(f"{concurrency:>5}  {name:<26}   no request completed within {seconds} s")
                    continue
                added = "" if name == "emulator direct" else f"{result['p50'] - base:.3f}"
                print(
                    f"{concurrency:>5}  {name:<26}{result['p50']:>9.3f}{result['p99']:>9.3f}{result['rps']:>9.0f}"
                    f"{added:>14}{result['errors']:>8}"
                )
            if "LiteLLM proxy" in cell and all(result["requests"] for result in cell.values()):
                theirs = cell["LiteLLM proxy"]["p50"] - base
                for ours_name in ("Panel /api/ai/generate/", "Panel /v1/chat/completions"):
                    ours_added = cell[ours_name]["p50"] - base
                    ratio = ours_added / theirs if theirs > 0 else float("nan")
                    print(
                        f"{'':>5}  added p50, {ours_name} / LiteLLM proxy: {ours_added:.3f} / {theirs:.3f} ms "
                        f"= {ratio:.3f}"
                    )
        streamed = [
            (name, process, url, {**body, "stream": True}, auth)
            for name, process, url, body, auth in contenders
            if body is chat
        ]
        print(
            f"\nhttp streamed: time to the first content chunk, same chat body with stream: true ({seconds} s per "
            "cell, closed loop of Python client threads in one process: the client's own cost is in every row)"
        )
        print(
            f"{'conc.':>5}  {'contender':<26}{'p50 ms':>9}{'p99 ms':>9}{'streams':>9}{'added p50 ms':>14}{'errors':>8}"
        )
        for concurrency in CONCURRENCIES:
            cell = {}
            for name, process, url, body, auth in streamed:
                with alone(process, servers):
                    ttft(url, body, auth, concurrency, warm)
                    cell[name] = ttft(url, body, auth, concurrency, seconds)
            base = cell["emulator direct"]["p50"]
            for name, result in cell.items():
                if not result["requests"]:
                    print(f"{concurrency:>5}  {name:<26}   no stream completed within {seconds} s")
                    continue
                added = "" if name == "emulator direct" else f"{result['p50'] - base:.3f}"
                print(
                    f"{concurrency:>5}  {name:<26}{result['p50']:>9.3f}{result['p99']:>9.3f}"
                    f"{result['requests']:>9}{added:>14}{result['errors']:>8}"
                )
            if "LiteLLM proxy" in cell and all(result["requests"] for result in cell.values()):
                ours_added = cell["Panel /v1/chat/completions"]["p50"] - base
                theirs = cell["LiteLLM proxy"]["p50"] - base
                ratio = ours_added / theirs if theirs > 0 else float("nan")
                print(
                    f"{'':>5}  added TTFT p50, Panel /v1 / LiteLLM proxy: {ours_added:.3f} / {theirs:.3f} ms "
                    f"= {ratio:.3f}"
                )
    finally:
        for process in reversed(processes):
            process.stop()


# -- HTTP: the two deployment shapes --------------------------------------------------------------------

SHAPES = ("SQLite", "PostgreSQL + Redis")
SHAPE_DB = ROOT / "var" / "bench-http.sqlite3"


def postgres_url() -> str | None:
    """The PostgreSQL server for the production shape: `BENCH_POSTGRES_URL` (bin/bench sets it from
    bin/services) or a PostgreSQL `DATABASE_URL`; the benchmark makes its own database `<name>_bench` on it."""
    for name in ("BENCH_POSTGRES_URL", "DATABASE_URL"):
        url = os.environ.get(name, "")
        if url.startswith(("postgres://", "postgresql://")):
            return url
    return None


def fresh_postgres(url: str) -> str:
    """Drop and create `<name>_bench` on the server of `url`; its URL."""
    import urllib.parse

    import psycopg

    parts = urllib.parse.urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'panel'}_bench"
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return parts._replace(path=f"/{name}").geturl()


class RedisServer:
    """A throwaway redis-server on a free loopback port (no persistence), stopped with the run."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = Process(
            "redis-server",
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            ROOT / "var" / "bench-redis.log",
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.popen.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start; see {self.process.log}") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.stop()


def cpu_by_part(server_group: int, database: str) -> dict[str, dict[str, float]]:
    """CPU seconds used so far by each process of the server (gunicorn's process group), of the bench's Redis
    (`BENCH_REDIS_PID`) and of the PostgreSQL backends serving `database` (Linux /proc; others' load excluded)."""
    tick = os.sysconf("SC_CLK_TCK")
    redis_pid = os.environ.get("BENCH_REDIS_PID", "")
    parts: dict[str, dict[str, float]] = {"server": {}, "redis": {}, "postgres": {}}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            command = Path(f"/proc/{pid}/cmdline").read_text()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if int(fields[2]) == server_group:
            parts["server"][pid] = seconds
        elif pid == redis_pid:
            parts["redis"][pid] = seconds
        elif command.startswith("postgres:") and f" {database} " in command:
            parts["postgres"][pid] = seconds
    return parts


def cpu_used(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]) -> dict[str, float]:
    """CPU seconds per part between two `cpu_by_part` readings (a process that exited meanwhile is not counted)."""
    return {
        part: sum(seconds - before[part].get(pid, 0.0) for pid, seconds in processes.items())
        for part, processes in after.items()
    }


def shape_worker(shape: str, emulator_base: str, quick: bool) -> None:
    """`run.py --http-shape SHAPE URL`: bin/serve on one deployment shape (its environment is this process's),
    its database fresh and migrated; prints `READY` with the server's process group, then runs the cells the
    parent asks for on stdin (`[endpoint index, concurrency]`, one JSON line each; `POST /api/ai/generate/` and
    `/v1/chat/completions` under wrk), printing each as a `CELL` JSON line, until stdin closes."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "panel.settings"
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ["DJANGO_ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    os.environ["AI_OUTBOUND_ALLOWLIST"] = "127.0.0.1"
    os.environ["DJANGO_SECURE_SSL_REDIRECT"] = "0"
    os.environ["AI_API_RATE_LIMIT"] = "off"
    if shape == "SQLite":
        os.environ["DATABASE_URL"] = f"sqlite:///{SHAPE_DB}"
        os.environ.pop("REDIS_URL", None)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{SHAPE_DB}{suffix}").unlink(missing_ok=True)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    from integrations.api.v1 import keys
    from integrations.models import APIToken
    from tenancy.models import SiteMembership

    site = make_site("127.0.0.1", emulator_base, BUDGET)
    user = get_user_model().objects.create_user("bench", is_staff=True)
    SiteMembership.objects.create(user=user, site=site)
    user.user_permissions.add(Permission.objects.get(codename="use_ai"))
    _, token = APIToken.issue(user, "bench")
    _, virtual_key = keys.issue(site, user, "bench")
    from django.db import connections

    connections.close_all()
    port = free_port()
    server = Process(
        f"gunicorn (bin/serve, {shape})",
        [str(ROOT / "bin" / "serve")],
        ROOT / "var" / f"bench-gunicorn-{'sqlite' if shape == 'SQLite' else 'postgres'}.log",
        {"GUNICORN_BIND": f"127.0.0.1:{port}"},
    )
    chat = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 100, "temperature": 0.7}
    ours = {"prompt": PROMPT, "model": MODEL, "max_tokens": 100, "temperature": 0.7}
    endpoints = [
        ("/api/ai/generate/", f"http://127.0.0.1:{port}/api/ai/generate/", ours, f"Token {token}"),
        ("/v1/chat/completions", f"http://127.0.0.1:{port}/v1/chat/completions", chat, f"Bearer {virtual_key}"),
    ]
    try:
        for _name, url, body, auth in endpoints:
            wait_ready(server, url, body, {"Authorization": auth}, 30)
        seconds, warm = (3, 1) if quick else (5, 2)
        database = str(connections["default"].settings_dict["NAME"])
        print("READY " + json.dumps({"group": server.popen.pid}), flush=True)
        for line in sys.stdin:
            index, concurrency = json.loads(line)
            name, url, body, auth = endpoints[index]
            wrk(f"shape{index}", url, body, auth, concurrency, warm)
            before = cpu_by_part(server.popen.pid, database)
            result = wrk(f"shape{index}", url, body, auth, concurrency, seconds)
            after = cpu_by_part(server.popen.pid, database)
            used = cpu_used(before, after)
            result["cpu_ms"] = {part: seconds * 1000 / max(1, result["requests"]) for part, seconds in used.items()}
            print("CELL " + json.dumps({"endpoint": name, "concurrency": concurrency, **result}), flush=True)
    finally:
        server.stop()


class ShapeWorker:
    """A `--http-shape` child: its server set up, its cells run one at a time when asked."""

    def __init__(self, shape: str, env: dict[str, str], emulator_base: str, quick: bool) -> None:
        self.shape = shape
        self.log = (ROOT / "var" / f"bench-shape-{'sqlite' if shape == 'SQLite' else 'postgres'}.log").open("w")
        self.popen = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--http-shape", shape, emulator_base]
            + (["--quick"] if quick else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.group = int(json.loads(self._line("READY"))["group"])

    def _line(self, prefix: str) -> str:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            if line.startswith(prefix + " "):
                return line[len(prefix) + 1 :]
        raise RuntimeError(f"http shape {self.shape} failed; see {self.log.name}")

    def cell(self, endpoint: int, concurrency: int) -> dict:
        assert self.popen.stdin is not None
        self.popen.stdin.write(json.dumps([endpoint, concurrency]) + "\n")
        self.popen.stdin.flush()
        return json.loads(self._line("CELL"))

    def pause(self) -> None:
        os.killpg(self.group, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.group, signal.SIGCONT)

    def stop(self) -> None:
        if self.popen.stdin is not None:
            self.popen.stdin.close()
        try:
            self.popen.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.popen.kill()
        self.log.close()


def shape_cell(cell: dict | None) -> str:
    if cell is None:
        return "skipped"
    errors = f" ({cell['errors']} errors)" if cell["errors"] else ""
    return f"{cell['rps']:.0f}{errors}"


SHAPE_ROUNDS = 3  # each cell this many times, the shapes alternating: the ratio is the median of the rounds


def shapes_bench(emulator_process: Emulator, quick: bool) -> None:
    """The same server (bin/serve) on SQLite + local memory and on PostgreSQL + Redis, side by side."""
    if not shutil.which("wrk"):
        return
    rounds = 2 if quick else SHAPE_ROUNDS
    results: dict[tuple[str, str, int], list[dict]] = {}  # (shape, endpoint, concurrency) -> its cell, per round
    redis = None
    workers: list[ShapeWorker] = []
    try:
        for shape in SHAPES:
            env = dict(os.environ)
            if shape != "SQLite":
                pg = postgres_url()
                if pg is None or not shutil.which("redis-server"):
                    print(
                        f"\nhttp shapes: {shape} skipped (no PostgreSQL URL or no redis-server; bin/bench sets them up)"
                    )
                    continue
                redis = RedisServer()
                env.update(
                    DATABASE_URL=fresh_postgres(pg), REDIS_URL=redis.url, BENCH_REDIS_PID=str(redis.process.popen.pid)
                )
            workers.append(ShapeWorker(shape, env, emulator_process.openai_base_url, quick))
        # Cell by cell, the shapes in turn, the other shape's server paused (SIGSTOP): a machine whose speed drifts
        # (shared cores) moves both columns of a row alike, instead of one shape's whole table. The whole table
        # runs `rounds` times: one pair of cells moves by +-20% from run to run on this machine, so a ratio is the
        # median of the rounds' ratios, each from two cells run back to back.
        for _ in range(rounds):
            for concurrency in CONCURRENCIES:
                for index in range(2):
                    for worker in workers:
                        with alone(worker, workers):
                            cell = worker.cell(index, concurrency)
                        results.setdefault((worker.shape, cell["endpoint"], concurrency), []).append(cell)
    finally:
        for worker in workers:
            worker.stop()
        if redis is not None:
            redis.stop()
    seconds = 3 if quick else 5
    print(
        f"\nhttp shapes: bin/serve (2 workers x 16 threads) on SQLite + local-memory cache and on PostgreSQL + Redis "
        f"(the production shape), each a fresh database; wrk, closed loop, {seconds} s per cell, the shapes "
        f"in turn cell by cell (the other's server paused), the table {rounds} times: req/s the median of the "
        "rounds, the ratio the median of the rounds' ratios (each round's in brackets)"
    )
    print(f"{'conc.':>5}  {'endpoint':<22}" + "".join(f"{s + ' req/s':>28}" for s in SHAPES) + f"{'SQLite / PG':>26}")
    endpoints = ("/api/ai/generate/", "/v1/chat/completions")
    for concurrency in CONCURRENCIES:
        for endpoint in endpoints:
            row = [results.get((shape, endpoint, concurrency), []) for shape in SHAPES]
            text = "".join(f"{shape_cell(_median_cell(cells)):>28}" for cells in row)
            ratio = ""
            if all(row):
                ratios = [a["rps"] / b["rps"] for a, b in zip(*row, strict=False) if b["rps"]]
                each = " ".join(f"{r:.2f}" for r in ratios)
                ratio = f"{statistics.median(ratios):.2f} ({each})" if ratios else ""
            print(f"{concurrency:>5}  {endpoint:<22}{text}{ratio:>26}")
    print(
        "CPU ms per request, by process (a machine shared with other work is measured fairly by this, not by req/s): "
        "server = gunicorn's workers (request threads and ledger writer), redis, postgres = its backends; "
        "the median of the rounds"
    )
    print(f"{'conc.':>5}  {'endpoint':<22}{'shape':<20}{'server':>9}{'redis':>9}{'postgres':>10}{'total':>9}")
    for concurrency in CONCURRENCIES:
        for endpoint in endpoints:
            for shape in SHAPES:
                cells = results.get((shape, endpoint, concurrency))
                if not cells:
                    continue
                cpu = {
                    part: statistics.median(c["cpu_ms"][part] for c in cells)
                    for part in ("server", "redis", "postgres")
                }
                total = statistics.median(sum(c["cpu_ms"].values()) for c in cells)
                print(
                    f"{concurrency:>5}  {endpoint:<22}{shape:<20}{cpu['server']:>9.2f}{cpu['redis']:>9.2f}"
                    f"{cpu['postgres']:>10.2f}{total:>9.2f}"
                )


def _median_cell(cells: list[dict]) -> dict | None:
    """The round whose throughput is the median (its errors shown with it); None when the cell never ran."""
    if not cells:
        return None
    return sorted(cells, key=lambda c: c["rps"])[len(cells) // 2]


# -- the rest ------------------------------------------------------------------------------------------


def batch(upstream: Emulator) -> tuple[float, float]:
    """100 prompts at concurrency 16 against an emulator that answers after 50 ms, on a site never used before
    in a process that has served calls (the site's settings, client and budget counters are built inside
    the timed region, as a new site's first batch gets them)."""
    from integrations.ai.gateway.service import AIService

    # A server that has served calls before (SDK imported, TLS context built, ledger writer running):
    # the batch's site is new, the process is not.
    AIService(site=make_site("warm.bench.local", upstream.openai_base_url, None)).generate_content("warm", max_tokens=5)
    prompts = [f"Tagline number {i} for a bakery" for i in range(100)]
    site = make_site("batch.bench.local", upstream.openai_base_url, BUDGET)
    started = time.perf_counter()
    items = AIService(site=site, service="bench.batch").generate_batch(prompts, concurrency=16, max_tokens=50)
    wall = time.perf_counter() - started
    assert all(item.ok for item in items), [item.error for item in items if not item.ok][:3]
    return wall * 1000, 7 * 50.0


def import_time() -> float:
    code = (
        "import sys,time; sys.path.insert(0,'backend'); t=time.perf_counter(); import integrations.ai; "
        "from integrations.ai import AIService; print((time.perf_counter()-t)*1000)"
    )
    runs = [float(subprocess.check_output([sys.executable, "-c", code], cwd=ROOT, text=True)) for _ in range(5)]
    return statistics.median(runs)


def memory(upstream: Emulator, calls: int = 1000) -> float:
    from integrations.ai.gateway.service import AIService

    service = AIService(site=make_site("memory.bench.local", upstream.openai_base_url, BUDGET), service="bench.memory")
    service.generate_content("warm up", model=MODEL, max_tokens=20)
    tracemalloc.start()
    for i in range(calls):
        service.generate_content(f"Sequential call {i}", model=MODEL, max_tokens=20)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 1024 / 1024


def versions() -> str:
    import importlib.metadata as metadata

    found = []
    for name in ("Django", "openai", "gunicorn", "litellm"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    wrk_version = (
        subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split(" [")[0]
        if shutil.which("wrk")
        else "no wrk"
    )
    return ", ".join([*found, wrk_version.strip()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, help="calls per contender in the overhead benchmark (default 2000, quick 300)")
    parser.add_argument("--quick", action="store_true", help="fewer calls and shorter HTTP cells (about 3 minutes)")
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--stream-count", type=int, help="concurrent streams of the long-streams step (default 1,000)")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP benchmark")
    parser.add_argument("--http-only", action="store_true", help="only the HTTP benchmark (plain and streamed)")
    parser.add_argument("--serve-emulator", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument(
        "--shapes-only", action="store_true", help="only bin/serve on SQLite and on PostgreSQL + Redis, side by side"
    )
    parser.add_argument("--http-shape", nargs=2, metavar=("SHAPE", "URL"), help=argparse.SUPPRESS)
    parser.add_argument("--emulator-delay", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--emulator-token-rate", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--emulator-stream-words", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--streams", action="store_true", help="only the long-streams step (1,000 concurrent streams; quick: 300)"
    )
    parser.add_argument("--overhead-worker", nargs=3, metavar=("NAME", "URL", "N"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--dashboard", action="store_true", help="only the usage dashboard on a seeded ledger (DATABASE_URL if set)"
    )
    parser.add_argument("--dashboard-rows", type=int, default=1_000_000, help="ledger rows for --dashboard")
    parser.add_argument(
        "--search",
        action="store_true",
        help="only search by meaning: embed N pages of one site (batched), then time searches",
    )
    parser.add_argument("--search-pages", type=int, default=50_000, help="pages for --search")
    args = parser.parse_args()
    if args.serve_emulator:
        return serve_emulator(
            args.serve_emulator, args.emulator_delay, args.emulator_token_rate, args.emulator_stream_words
        )
    if args.http_shape:
        return shape_worker(args.http_shape[0], args.http_shape[1], args.quick)
    if args.shapes_only:
        print(machine())
        upstream = Emulator("emulator")
        try:
            return shapes_bench(upstream, args.quick)
        finally:
            upstream.stop()
    if args.overhead_worker:
        name, url, calls = args.overhead_worker
        setup_django(fresh=False)
        return overhead_worker(name, url, int(calls))
    if args.search:
        from benchmarks.search import search_bench

        print(machine())
        os.environ["PAGES_EMBED_ON_SAVE"] = "off"
        setup_django()
        upstream = Emulator("emulator")
        try:
            return search_bench(make_site, upstream, args.search_pages)
        finally:
            upstream.stop()
    if args.dashboard:
        print(machine())
        print(f"database: {setup_dashboard_django()}")
        return dashboard_bench(args.dashboard_rows)
    n = args.n or (300 if args.quick else 2000)

    print(machine())
    setup_django()
    with_litellm = not args.no_litellm
    if with_litellm:
        try:
            import litellm  # noqa: F401
        except ImportError:
            print("litellm not installed (pip install -r benchmarks/requirements.txt); skipping it")
            with_litellm = False
    print(versions())

    if args.streams:
        return streams_bench(args.quick, with_litellm, args.stream_count)
    upstream, slow = Emulator("emulator"), Emulator("emulator-50ms", delay=0.05)
    if args.http_only:
        try:
            http_bench(upstream, args.quick, with_litellm)
            return shapes_bench(upstream, args.quick)
        finally:
            upstream.stop()
            slow.stop()
    try:
        print_overhead(overhead(upstream, n, with_litellm), n)
        if not args.no_http:
            http_bench(upstream, args.quick, with_litellm)
            streams_bench(args.quick, with_litellm, args.stream_count)
            shapes_bench(upstream, args.quick)
        wall, ideal = batch(slow)
        print(
            f"\nbatch: 100 prompts, concurrency 16, 50 ms upstream: {wall:.0f} ms wall "
            f"vs ideal {ideal:.0f} ms ({wall / ideal:.2f} x)"
        )
        peak = memory(upstream)
    finally:
        upstream.stop()
        slow.stop()
    print(f"\nimport integrations.ai (fresh interpreter, median of 5): {import_time():.1f} ms")
    print(f"peak traced memory over 1,000 sequential calls (ledger written, budgeted site): {peak:.2f} MiB")


if __name__ == "__main__":
    main()
