"""The production server (issue 12): gunicorn's config comes from the environment, and `bin/serve` serves
the JSON endpoint and drains in-flight requests on SIGTERM."""

from __future__ import annotations

import gc
import importlib.util
import json
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from integrations.models import AIUsage, APIToken

from .factories import AIProviderSettingsFactory, SiteFactory, SiteMembershipFactory, UserFactory, may_use_ai
from .test_scaleout import child_env

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "backend" / "panel" / "gunicorn.conf.py"
GUNICORN_VARS = (
    "SERVER",
    "GUNICORN_BIND",
    "GUNICORN_WORKERS",
    "WEB_CONCURRENCY",
    "GUNICORN_THREADS",
    "GUNICORN_TIMEOUT",
    "GUNICORN_GRACEFUL_TIMEOUT",
    "GUNICORN_KEEPALIVE",
    "GUNICORN_MAX_REQUESTS",
    "GUNICORN_ACCESS_LOG",
    "GUNICORN_LOG_LEVEL",
    "GUNICORN_CONTROL_SOCKET",
    "AI_REQUEST_TIMEOUT",
    "AI_MAX_RETRIES",
    "AI_RETRY_BACKOFF",
)


def load_config(monkeypatch, **env: str):
    for name in GUNICORN_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("panel_gunicorn_conf", CONFIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_defaults_suit_a_small_box(monkeypatch):
    conf = load_config(monkeypatch)
    assert conf.wsgi_app == "panel.asgi:application"  # ASGI by default: a long stream holds no thread (issue 22)
    assert conf.pythonpath == str(ROOT / "backend")
    assert conf.bind == ["127.0.0.1:8000"]
    assert (conf.worker_class, conf.workers) == ("uvicorn_worker.UvicornWorker", 2)
    wsgi = load_config(monkeypatch, SERVER="wsgi")  # the documented WSGI option
    assert (wsgi.wsgi_app, wsgi.worker_class, wsgi.threads) == ("panel.wsgi:application", "gthread", 16)
    with pytest.raises(ValueError, match="SERVER must be asgi or wsgi"):
        load_config(monkeypatch, SERVER="fastcgi")
    assert conf.graceful_timeout == 192  # 3 attempts of 60 s, 0.5 + 1 s of backoff, 10 s for the ledger
    assert conf.accesslog is None
    assert conf.control_socket_disable is True


def test_a_worker_freezes_the_loaded_app_out_of_the_garbage_collectors_scans(monkeypatch):
    conf = load_config(monkeypatch)
    gc.unfreeze()
    try:
        conf.post_worker_init(worker=None)
        assert gc.get_freeze_count() > 10_000  # everything loaded so far: Django, the apps, the test modules
    finally:
        gc.unfreeze()


def test_settings_come_from_the_environment(monkeypatch):
    conf = load_config(
        monkeypatch,
        GUNICORN_BIND="0.0.0.0:9000, unix:/run/panel.sock",
        GUNICORN_WORKERS="3",
        GUNICORN_THREADS="4",
        GUNICORN_GRACEFUL_TIMEOUT="45",
        GUNICORN_TIMEOUT="90",
        GUNICORN_MAX_REQUESTS="1000",
        GUNICORN_ACCESS_LOG="-",
        GUNICORN_LOG_LEVEL="warning",
        GUNICORN_CONTROL_SOCKET="/run/panel.ctl",
    )
    assert conf.bind == ["0.0.0.0:9000", "unix:/run/panel.sock"]
    assert (conf.workers, conf.threads, conf.graceful_timeout, conf.timeout) == (3, 4, 45, 90)
    assert (conf.max_requests, conf.max_requests_jitter) == (1000, 100)
    assert (conf.accesslog, conf.loglevel) == ("-", "warning")
    assert (conf.control_socket_disable, conf.control_socket) == (False, "/run/panel.ctl")
    assert load_config(monkeypatch, WEB_CONCURRENCY="5").workers == 5  # the platform convention, when set


def test_the_graceful_timeout_outlasts_the_slowest_ai_call(monkeypatch):
    """SIGTERM must not drop a call still within its timeout times attempts (issue 25)."""
    conf = load_config(monkeypatch, AI_REQUEST_TIMEOUT="30", AI_MAX_RETRIES="3", AI_RETRY_BACKOFF="1")
    assert conf.graceful_timeout >= 30 * 4 + 1 + 2 + 4
    assert load_config(monkeypatch, AI_REQUEST_TIMEOUT="5", AI_MAX_RETRIES="0").graceful_timeout == 15
    with pytest.raises(ValueError, match="AI_REQUEST_TIMEOUT must be a number"):
        load_config(monkeypatch, AI_REQUEST_TIMEOUT="soon")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("GUNICORN_WORKERS", "two", "GUNICORN_WORKERS must be an integer, got 'two'."),
        ("GUNICORN_THREADS", "0", "GUNICORN_THREADS must be at least 1, got 0."),
    ],
)
def test_a_bad_value_names_the_variable(monkeypatch, name, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        load_config(monkeypatch, **{name: value})


class Server:
    """`bin/serve` on an ephemeral loopback port, against the test database."""

    def __init__(self, **env: str) -> None:
        environment = child_env(
            **{"GUNICORN_BIND": "127.0.0.1:0", "GUNICORN_WORKERS": "1", "GUNICORN_THREADS": "4", **env}
        )
        self.process = subprocess.Popen(
            [str(ROOT / "bin" / "serve")],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        listening = threading.Event()
        self.port = 0
        # ready: under ASGI (the default) when every uvicorn worker has loaded the app; under WSGI at the first boot
        asgi = environment.get("SERVER", "asgi") == "asgi"
        workers, started = int(environment["GUNICORN_WORKERS"]), 0

        def read() -> None:
            nonlocal started
            for line in self.process.stderr:
                self.log.append(line)
                found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
                if found:
                    self.port = int(found.group(1))
                started += "Application startup complete" in line
                if (asgi and started >= workers) or (not asgi and "Booting worker" in line):
                    listening.set()
            listening.set()

        threading.Thread(target=read, daemon=True).start()
        assert listening.wait(60) and self.port, "".join(self.log)

    def post(self, body: dict, headers: dict[str, str] | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/ai/generate/",
            method="POST",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        deadline = time.monotonic() + 60  # an upper bound: a loaded machine imports slowly
        while True:  # the worker may still be importing Django when the master already listens
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())
            except (ConnectionError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


@pytest.mark.django_db(transaction=True)
def test_bin_serve_answers_json_and_drains_on_sigterm(upstream):
    site = SiteFactory(domain="127.0.0.1")
    AIProviderSettingsFactory(
        site=site,
        provider_type="openai",
        openai_api_key="sk-proj-" + "d4" * 24,
        openai_base_url=upstream.openai_base_url,
    )
    user = UserFactory(username="server-editor")
    SiteMembershipFactory(user=user, site=site)
    may_use_ai(user)
    _, raw_token = APIToken.issue(user, "server test")
    server = Server()
    try:
        status, body = server.post({"prompt": "Tagline for a bakery"})
        assert status == 401 and body["error"]["code"] == "not_authenticated"

        upstream.script(flavor="openai", delay=1.0)  # in flight when SIGTERM arrives
        answer: dict = {}

        def call() -> None:
            answer["status"], answer["body"] = server.post(
                {"prompt": "Tagline for a bakery", "model": "gpt-4o-mini"}, {"Authorization": f"Token {raw_token}"}
            )

        caller = threading.Thread(target=call)
        caller.start()
        deadline = time.monotonic() + 10
        while not upstream.requests_for("openai") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert upstream.requests_for("openai"), "".join(server.log)
        assert server.stop() == 0
        caller.join(10)
        assert answer.get("status") == 200, (answer, "".join(server.log))
        assert answer["body"]["content"].startswith("Emulated openai reply")
    finally:
        if server.process.poll() is None:
            server.process.kill()
    assert AIUsage.objects.filter(site=site, status="ok").count() == 1
