"""Gunicorn settings for the production server (`bin/serve`), all overridable from the environment.

Why these defaults: a request to the AI layer spends almost all its time waiting on the vendor, so
one process per core with many threads (`gthread`) serves far more concurrent calls than sync
workers would, at a fraction of the memory. SIGTERM stops accepting and lets in-flight requests
finish for `GUNICORN_GRACEFUL_TIMEOUT` seconds, so a deploy or scale-down drains instead of cutting
answers off. Its default is what the slowest AI call may take (`AI_REQUEST_TIMEOUT` times its
attempts, `AI_MAX_RETRIES` + 1, plus the backoffs between them) plus 10 s to write the ledger, so a
drain never drops a call that would still have been answered. The access log is off by default: a
reverse proxy in front usually keeps one.

Environment (defaults in brackets; the README's Production section has the full table):
SERVER [asgi: uvicorn workers serving panel.asgi; wsgi: gthread workers serving panel.wsgi],
GUNICORN_BIND [127.0.0.1:8000, comma-separated for several], GUNICORN_WORKERS or WEB_CONCURRENCY [2],
GUNICORN_THREADS [16], GUNICORN_TIMEOUT [120], GUNICORN_GRACEFUL_TIMEOUT [192 with the AI defaults],
GUNICORN_KEEPALIVE [5],
GUNICORN_MAX_REQUESTS [0: never recycle], GUNICORN_ACCESS_LOG [off; `-` for stdout],
GUNICORN_LOG_LEVEL [info], GUNICORN_CONTROL_SOCKET [off: its default path is one per user, and two
servers on one machine would fight over it], PROMETHEUS_MULTIPROC_DIR [a fresh private directory: see
`on_starting`].
"""

from __future__ import annotations

import gc
import math
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

BACKEND = Path(__file__).resolve().parent.parent  # panel/ lives in backend/, next to the other apps


def _int(name: str, default: int, minimum: int) -> int:
    """Read an integer setting; a bad value stops startup with a message naming the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}.") from None
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    return value


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}.") from None


def slowest_call() -> int:
    """Seconds the slowest AI call may take: every attempt timing out, with the backoffs between them
    (`AI_REQUEST_TIMEOUT`, `AI_MAX_RETRIES`, `AI_RETRY_BACKOFF`, read as panel/settings.py reads them)."""
    timeout, retries = _float("AI_REQUEST_TIMEOUT", 60.0), _int("AI_MAX_RETRIES", 2, 0)
    backoff = _float("AI_RETRY_BACKOFF", 0.5)
    return math.ceil(timeout * (retries + 1) + sum(backoff * 2**n for n in range(retries)))


# SERVER=asgi (default): panel.asgi on uvicorn workers, one event loop per process, where an open stream
# holds no thread. SERVER=wsgi: panel.wsgi on gthread workers (GUNICORN_THREADS requests at once per worker).
SERVER = os.environ.get("SERVER", "asgi").strip().lower() or "asgi"
if SERVER not in ("asgi", "wsgi"):
    raise ValueError(f"SERVER must be asgi or wsgi, got {SERVER!r}.")
wsgi_app = "panel.asgi:application" if SERVER == "asgi" else "panel.wsgi:application"
pythonpath = str(BACKEND)
bind = [address.strip() for address in os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",") if address.strip()]
worker_class = "uvicorn_worker.UvicornWorker" if SERVER == "asgi" else "gthread"
backlog = _int("GUNICORN_BACKLOG", 4096, 64)  # a burst of new streams waits in the kernel, not refused
workers = _int("GUNICORN_WORKERS", _int("WEB_CONCURRENCY", 2, 1), 1)
threads = _int("GUNICORN_THREADS", 16, 1)
timeout = _int("GUNICORN_TIMEOUT", 120, 1)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", slowest_call() + 10, 0)  # + the ledger flush
keepalive = _int("GUNICORN_KEEPALIVE", 5, 0)
max_requests = _int("GUNICORN_MAX_REQUESTS", 0, 0)
max_requests_jitter = max_requests // 10
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# The heartbeat file on tmpfs: a disk-backed /tmp can stall workers long enough to be killed.
SHM = "/dev/shm"  # noqa: S108  (gunicorn makes its own unique, private files in it)
worker_tmp_dir = SHM if os.path.isdir(SHM) else None
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]


def post_worker_init(worker: object) -> None:
    """Freeze what the loaded app allocated so the garbage collector stops rescanning it.

    A worker holds ~150,000 long-lived objects (Django, the models, the URL conf); every full
    collection walked all of them, a ~160 ms pause for every thread of the process, once every
    few thousand requests under load (p99 at concurrency 1: ~100 ms before, ~20 ms after).
    Frozen objects are never freed, which suits objects that live as long as the worker anyway.
    """
    gc.freeze()
    # The ledger writer starts now rather than at the first AI call: it first writes the journals of
    # workers that were killed (kill -9, OOM) before writing the rows they held (ledger_journal.py).
    from integrations.ai.ledger import writer as ledger_writer

    ledger_writer.start()
    if SERVER == "asgi":
        # uvicorn drains on SIGTERM, then raises it again to the handler it found: exit normally there, so
        # the interpreter's exit hooks run (the ledger's final flush, the batch of OpenTelemetry spans).
        signal.signal(signal.SIGTERM, _exit_normally)


def _exit_normally(signum: int, frame: object) -> None:
    sys.exit(0)


_owned_metrics_dir: list[str] = []


def on_starting(server: object) -> None:
    """Prometheus multiprocess mode: every worker keeps its metrics in files in PROMETHEUS_MULTIPROC_DIR
    and a scrape of `/metrics` served by any worker adds them all up.

    Set here, in the master before any worker starts, so every worker inherits it. Without one, a
    fresh private directory is made (on tmpfs when there is one) and removed at exit; a directory
    given is emptied first, so counts of an earlier run are not added to this one's.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if not directory:
        directory = tempfile.mkdtemp(prefix="panel-prometheus-", dir=SHM if os.path.isdir(SHM) else None)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        _owned_metrics_dir.append(directory)
        return
    os.makedirs(directory, exist_ok=True)
    for stale in Path(directory).glob("*.db"):
        stale.unlink()


def child_exit(server: object, worker: object) -> None:
    """A worker exited: its live gauges (the ledger queue depth) stop counting; its counters stay summed."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]


def on_exit(server: object) -> None:
    for directory in _owned_metrics_dir:
        shutil.rmtree(directory, ignore_errors=True)
