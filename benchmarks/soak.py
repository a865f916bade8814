"""Soak run of issue 25: the production server through a Redis outage, a PostgreSQL outage and a killed worker.

`bin/soak [--calls 2000] [--clients 16] [--outage 10]` starts everything it needs in a temporary directory,
so stopping them is safe: a throwaway PostgreSQL cluster (`initdb`, `pg_ctl`), its own `redis-server` without
persistence (a stop loses its list: what the journal must cover), the upstream emulator in its own process,
and `bin/serve` (gunicorn, 2 gthread workers) on PostgreSQL + Redis. N client threads send `--calls` requests
to `POST /api/ai/generate/`, paced over `--duration` seconds (6 x the outage), on a site whose monthly cap is
set, after one calibration call, to 90 % of what all the calls would cost (so the cap is reached during the
run). At a quarter of the calls Redis is stopped for `--outage` seconds, at half PostgreSQL, at three quarters
one worker gets SIGKILL. Then the server stops (SIGTERM: workers flush), leftover journals are replayed, and
it prints sent / answered / ledger rows / duplicates / spend vs cap. Goal: 0 answered calls missing from the
ledger, 0 duplicated, spend <= cap.

Not a test (it takes about a minute and measures wall-clock outages); run it by hand, before a release.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        sys.exit(f"soak: {name} not found (install PostgreSQL: bin/services does)")
    return found


def as_postgres(args: list[str]) -> list[str]:
    """initdb and pg_ctl refuse to run as root: run them as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def wait_for(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            sys.exit(f"soak: {what} did not come up")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


class Postgres:
    def __init__(self, work: Path) -> None:
        self.data = work / "pg"
        self.port = free_port()
        self.log = work / "pg.log"
        self.data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(work, "postgres")
            shutil.chown(self.data, "postgres")
        subprocess.run(
            as_postgres([pg_bin("initdb"), "-D", str(self.data), "-U", "panel", "--auth=trust", "-E", "UTF8"]),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c max_connections=200"
        subprocess.run(
            as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start"]),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        subprocess.run(
            as_postgres([pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


class Redis:
    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: port_open(self.port), "redis-server")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # no persistence: what its lists held is gone
            self.process.wait()
            self.process = None


def load_env_file() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env").read_text().splitlines():
        name, _, value = line.partition("=")
        if name and not name.startswith("#"):
            values[name.strip()] = value.strip()
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--outage", type=float, default=10.0, help="seconds Redis, then PostgreSQL, stay down")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--cap-fraction", type=Decimal, default=Decimal("0.9"), help="the cap, as a share of all calls' cost"
    )
    parser.add_argument("--duration", type=float, default=0, help="seconds the calls are spread over (6 x outage)")
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="panel-soak-"))
    os.chmod(work, 0o755)
    pg, redis_server = Postgres(work), Redis()
    emulator = server = None
    try:
        pg.start()
        redis_server.start()
        emulator_port, server_port = free_port(), free_port()
        env = {
            **os.environ,
            **load_env_file(),
            "DJANGO_SETTINGS_MODULE": "panel.settings",
            "DATABASE_URL": f"postgres://panel@127.0.0.1:{pg.port}/panel_soak",
            "REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/0",
            "DJANGO_DEBUG": "0",
            "DJANGO_ALLOWED_HOSTS": "*",
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "AI_PROVIDER": "openai",
            "OPENAI_API_KEY": "sk-soak-" + "0" * 40,
            "OPENAI_BASE_URL": f"http://127.0.0.1:{emulator_port}/openai/v1",
            "AI_API_RATE_LIMIT": "off",
            "AI_LEDGER_JOURNAL_DIR": str(work / "journal"),
            "AI_MAX_RETRIES": "0",
            "GUNICORN_BIND": f"127.0.0.1:{server_port}",
            "GUNICORN_WORKERS": str(options.workers),
            "GUNICORN_THREADS": "16",
            "PYTHONPATH": str(ROOT / "backend"),
        }
        os.environ.update(env)
        subprocess.run(
            [
                PYTHON,
                "-c",
                f"import psycopg; psycopg.connect('host=127.0.0.1 port={pg.port} user=panel dbname=postgres',"
                " autocommit=True).execute('CREATE DATABASE panel_soak')",
            ],
            check=True,
        )
        subprocess.run([PYTHON, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        emulator = subprocess.Popen(
            [PYTHON, "manage.py", "ai_emulator", "--port", str(emulator_port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: port_open(emulator_port), "the emulator")

        sys.path.insert(0, str(ROOT / "backend"))
        import django

        django.setup()
        from django.contrib.auth.models import Permission
        from django.contrib.sites.models import Site

        from integrations.models import AIProviderSettings, AIUsage, APIToken
        from tenancy.models import SiteMembership

        site = Site.objects.create(domain="127.0.0.1", name="soak")
        record = AIProviderSettings.objects.create(site=site, provider_type="openai", enabled=False)
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create_user("soak", is_staff=True)
        user.user_permissions.add(Permission.objects.get(content_type__app_label="integrations", codename="use_ai"))
        SiteMembership.objects.create(user=user, site=site)
        token = APIToken.issue(user, "soak")[1]
        from django.db import connection

        connection.close()

        server_log = open(work / "server.log", "w")  # noqa: SIM115 - closed in finally
        server = subprocess.Popen([str(ROOT / "bin" / "serve")], cwd=ROOT, env=env, stderr=server_log)
        wait_for(lambda: port_open(server_port), "bin/serve")
        url = f"http://127.0.0.1:{server_port}/api/ai/generate/"
        body = json.dumps({"prompt": "Tagline for a bakery", "model": "gpt-4o-mini", "max_tokens": 20}).encode()

        def send() -> tuple[int, dict]:
            request = urllib.request.Request(
                url,
                data=body,
                method="POST",
                headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
            )
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as exc:
                raw = exc.read()
                try:
                    return exc.code, json.loads(raw)
                except ValueError:
                    return exc.code, {"error": {"code": "not_json", "message": raw[:80].decode(errors="replace")}}
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                return 0, {"error": {"code": "connection", "message": type(exc).__name__}}

        probe: list[tuple[int, dict]] = []
        wait_for(lambda: probe.append(send()) or probe[-1][0] != 0, "bin/serve's workers", timeout=60)
        _status, first = probe[-1]
        if _status != 200:
            sys.exit(f"soak: the first call answered {_status} {first}")
        per_call = Decimal(first.get("cost") or "0")
        cap = (per_call * options.calls * options.cap_fraction).quantize(Decimal("0.000001"))
        AIProviderSettings.objects.filter(pk=record.pk).update(monthly_budget=cap)
        record.refresh_from_db()
        record.save()  # the signal bumps the site's settings version: every worker sees the cap
        connection.close()

        lock = threading.Lock()
        sent = 0
        results: list[tuple[int, dict]] = []
        marks = {"redis": options.calls // 4, "postgres": options.calls // 2, "kill": options.calls * 3 // 4}
        reached = {name: threading.Event() for name in marks}
        timeline: list[str] = []
        rate = options.calls / (options.duration or 6 * options.outage)  # calls per second
        started = time.monotonic()

        def client() -> None:
            nonlocal sent
            while True:
                with lock:
                    if sent >= options.calls:
                        return
                    sent += 1
                    number = sent
                for name, mark in marks.items():
                    if number == mark:
                        reached[name].set()
                due = started + number / rate  # paced, so each fault falls inside the load
                if due > time.monotonic():
                    time.sleep(due - time.monotonic())
                outcome = send()
                with lock:
                    results.append(outcome)

        def note(text: str) -> None:
            timeline.append(f"{time.monotonic() - started:6.1f} s  {text} (sent {sent}, done {len(results)})")

        def faults() -> None:
            reached["redis"].wait()
            note("Redis stopped")
            redis_server.stop()
            time.sleep(options.outage)
            redis_server.start()
            note("Redis started (empty)")
            reached["postgres"].wait()
            note("PostgreSQL stopped")
            pg.stop()
            time.sleep(options.outage)
            pg.start()
            note("PostgreSQL started")
            reached["kill"].wait()
            with open(f"/proc/{server.pid}/task/{server.pid}/children") as handle:
                victim = int(handle.read().split()[0])
            os.kill(victim, signal.SIGKILL)
            note(f"worker {victim} killed")

        fault_thread = threading.Thread(target=faults, daemon=True)
        fault_thread.start()
        threads = [threading.Thread(target=client) for _ in range(options.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        fault_thread.join(timeout=options.outage * 3)
        note("load done")
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=300)
        note("server stopped (SIGTERM)")

        from integrations.ai.ledger import journal as ledger_journal
        from integrations.ai.ledger import writer as ledger_writer

        before_replay = AIUsage.objects.filter(site=site).count()
        ledger_journal.replay(ledger_writer.write_rows)  # journals the stopped workers left (written rows skipped)
        replayed = AIUsage.objects.filter(site=site).count() - before_replay
        import redis as redis_lib

        left_in_redis = sum(
            redis_lib.Redis(port=redis_server.port).llen(key)
            for key in redis_lib.Redis(port=redis_server.port).keys("panel:ai-ledger:*")
            if b":alive:" not in key
        )

        statuses = Counter(code for code, _ in results)
        answered = [answer["request_id"] for code, answer in results if code == 200]
        errors = Counter(f"{code} {answer.get('error', {}).get('code')}" for code, answer in results if code != 200)
        rows = AIUsage.objects.filter(site=site)
        ok_ids = list(rows.filter(status="ok").values_list("request_id", flat=True))
        ledger_keys = list(rows.values_list("ledger_key", flat=True))
        in_ledger = Counter(ok_ids)
        missing = [rid for rid in answered if in_ledger[rid] == 0]
        duplicated_ids = sum(n - 1 for n in in_ledger.values() if n > 1)
        duplicated_keys = len(ledger_keys) - len(set(ledger_keys))
        spend = sum((c or Decimal(0) for c in rows.values_list("cost", flat=True)), Decimal(0))

        print("\n".join(timeline))
        print(
            f"calls sent                 {options.calls} (+1 calibration) from {options.clients} clients, "
            f"{options.workers} workers, outages {options.outage:.0f} s"
        )
        print(f"answered (200)             {len(answered)}")
        print(f"other answers              {dict(errors) or '-'}")
        print(f"ledger rows (site)         {rows.count()} ({len(ok_ids)} ok, incl. the calibration call)")
        print(f"answered, not in ledger    {len(missing)}")
        print(f"duplicates                 {duplicated_ids} request ids, {duplicated_keys} ledger keys")
        print(f"final journal replay       {replayed} row(s) written; left in Redis: {left_in_redis}")
        print(
            f"spend vs cap               ${spend} vs ${cap} ({'<=' if spend <= cap else 'OVER'} cap; "
            f"per call ${per_call})"
        )
        print(f"statuses                   {dict(statuses)}")
        print(f"wall time                  {time.monotonic() - started:.1f} s")
        connection.close()
    finally:
        if server is not None and server.poll() is None:
            server.kill()
        if emulator is not None:
            emulator.kill()
        redis_server.stop()
        pg.stop()
        if os.environ.get("SOAK_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
