"""A local append-only journal of the ledger rows a process still holds in memory, so a kill -9 loses none.

The in-process ledger writer (`ledger_writer._LocalWriter`) keeps rows in a queue until its thread writes
them; a process killed with SIGKILL (an OOM kill, an evicted container) used to lose that queue. Now the
caller's thread first appends the call's rows as one JSON line to this process's journal file with a
plain `os.write` (no query; the kernel has the bytes once it returns, so they survive the process dying),
then queues them. The writer thread `fdatasync`s the file with its batches, at most once a second (power
loss), and truncates it when everything handed over is written.

One file per process (`<dir>/<database>/<host>-<pid>-<random>.jsonl`), held with an exclusive `flock`
while the process lives. The next writer that starts (and any process about to seed its budget counters)
takes the lock of every file whose owner died, writes its rows and deletes it. Every row carries a unique
`ledger_key`, so a row the dead process had already written is skipped, not written twice.

Rows pushed to the Redis ledger list go to a second file of the process (`open_extra`, `*-redis.jsonl`)
and stay there until the database is seen to hold them (`writer._RedisLedger.confirm`): a Redis restart
without persistence loses its list, not the rows. Replay treats both files alike.

Off when `AI_LEDGER_JOURNAL_DIR` is empty, and for an in-memory database (nothing survives it anyway).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import itertools
import json
import logging
import os
import socket
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from integrations.ai.runtime import conf

logger = logging.getLogger("integrations.ai")
STOCK_ENGINES = {"panel.db.postgresql": "django.db.backends.postgresql"}
SYNC_INTERVAL = 1.0  # seconds between fdatasyncs: a power loss may cost the last second's rows, a kill none


def _directory() -> Path | None:
    """This database's journal directory, or None when journaling is off."""
    from integrations.ai.ports import store

    base = conf.journal_dir()
    engine, host, port, name = store().database_identity()
    if not base or not name or "memory" in name:
        return None
    # panel.db.postgresql is Django's PostgreSQL backend with a cheaper health check: the same database, so
    # the same directory as before it was swapped in (journals left by a killed worker are still replayed)
    engine = STOCK_ENGINES.get(engine, engine)
    tag = hashlib.sha256(f"{engine}|{host}|{port}|{name}".encode())
    return Path(base) / tag.hexdigest()[:16]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value


def encode(rows: list[dict[str, Any]]) -> bytes:
    """One JSON line (values made plain first: json's C encoder then does the rest, ~5x faster than default=)."""
    plain = [{name: _plain(value) for name, value in row.items()} for row in rows]
    return (json.dumps(plain, separators=(",", ":")) + "\n").encode()


def decode(line: bytes | str) -> list[dict[str, Any]]:
    """Rows from one JSON line (a journal's, or an entry of the Redis ledger list)."""
    rows = json.loads(line)
    for row in rows:
        for name in ("cost", "saved_cost"):
            if row.get(name) is not None:
                row[name] = Decimal(row[name])
        if row.get("created_at"):
            row["created_at"] = datetime.datetime.fromisoformat(row["created_at"])
    return rows


_prefix = ""
_calls = itertools.count()


def keyed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows, each with a unique `ledger_key` (a replay after a partial write skips what is in): the key
    the call's record gave it (`usage.row_fields`), else one made here (`call_key`)."""
    call = None
    for index, row in enumerate(rows):
        if not row.get("ledger_key"):
            call = call or call_key()
            row["ledger_key"] = f"{call}:{index}"
    return rows


def call_key() -> str:
    """A key unique to one call: a random prefix per process (made again after a fork) and a call counter;
    cheaper on the caller's thread than a uuid4 per call."""
    global _prefix
    if not _prefix.startswith(f"{os.getpid()}."):
        _prefix = f"{os.getpid()}.{uuid.uuid4().hex[:12]}"
    return f"{_prefix}:{next(_calls)}"


class Journal:
    """This process's journal file. `append` is the caller's part; `sync`/`truncate` the writer's."""

    def __init__(self, directory: Path, suffix: str = "") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.suffix = suffix
        self.path = directory / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}.jsonl"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held while this process lives
        self.pid = os.getpid()
        self.dirty = False
        self.synced_at = 0.0

    def append(self, data: bytes) -> None:
        """One write of one call's rows (the caller holds the writer's lock: no truncate in between)."""
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self.dirty = True

    def sync(self) -> None:
        """fdatasync, at most once a second (a caller's write to the file waits while it runs)."""
        now = time.monotonic()
        if self.dirty and now - self.synced_at >= SYNC_INTERVAL:
            self.dirty = False
            self.synced_at = now
            os.fdatasync(self.fd)

    def truncate(self) -> None:
        """Everything this process handed over is written: start the file again."""
        os.ftruncate(self.fd, 0)
        self.dirty = False

    def rewrite(self, lines: list[bytes]) -> Journal:
        """A new file of this process holding only `lines`; this one is removed (the caller holds the lock
        its appends take, so none is lost in between)."""
        fresh = Journal(self.path.parent, self.suffix)
        for line in lines:
            fresh.append(line)
        self.close(remove=True)
        return fresh

    def close(self, remove: bool) -> None:
        with contextlib.suppress(OSError):
            if remove:
                self.path.unlink()
            os.close(self.fd)


_journal: Journal | None = None
_lock = threading.Lock()


def current() -> Journal | None:
    """This process's journal (opened on first use, again after a fork), or None when off."""
    global _journal
    journal = _journal
    if journal is not None and journal.pid == os.getpid():
        return journal
    with _lock:
        if _journal is None or _journal.pid != os.getpid():
            directory = _directory()
            try:
                _journal = Journal(directory) if directory is not None else None
            except OSError as exc:
                logger.error(
                    "could not open the AI usage ledger journal in %s (%s); rows are held in memory only",
                    directory,
                    type(exc).__name__,
                )
                _journal = None
        return _journal


def open_extra() -> Journal | None:
    """A second journal of this process, for rows handed to Redis: kept until the database has them (the
    Redis ledger's `confirm`), so a Redis restart without persistence loses none. None when journaling is off."""
    directory = _directory()
    if directory is None:
        return None
    try:
        return Journal(directory, "-redis")
    except OSError as exc:
        logger.error("could not open the AI usage Redis journal in %s (%s)", directory, type(exc).__name__)
        return None


def forget() -> None:
    """After `close`: the next `current()` opens a new file (a process that goes on after a flush at exit)."""
    global _journal
    with _lock:
        _journal = None


def existing() -> Journal | None:
    """This process's journal if it opened one (never opens a file)."""
    journal = _journal
    return journal if journal is not None and journal.pid == os.getpid() else None


_replayed_pid = 0
_replay_lock = threading.Lock()


def replay(write_rows: Any) -> int:
    """Write the rows of every journal whose process died, then delete it; the number of rows written.

    `write_rows` is `ledger_writer.write_rows` (rows with a `ledger_key` already in the ledger are skipped).
    A journal whose owner still lives is locked and left alone.
    """
    directory = _directory()
    if directory is None or not directory.is_dir():
        return 0
    mine = _journal.path if _journal is not None else None
    total = 0
    with _replay_lock:
        for path in sorted(directory.glob("*.jsonl")):
            if path == mine:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:  # another process replayed it meanwhile
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # its process lives
                    continue
                with os.fdopen(os.dup(fd), "rb") as handle:
                    lines = [line for line in handle.read().splitlines() if line.strip()]
                rows = []
                for line in lines:
                    try:
                        rows.extend(decode(line))
                    except ValueError:  # a line cut short by the kill: that call had not been answered
                        logger.warning("skipped an unreadable line of the AI usage journal %s", path.name)
                if rows:
                    write_rows(rows)
                    total += len(rows)
                path.unlink()
            finally:
                os.close(fd)
    if total:
        logger.warning("replayed %d AI usage row(s) from the journals of stopped processes", total)
    return total


def replay_once(write_rows: Any) -> None:
    """`replay` once per process (before its budget counters are first seeded); never raises."""
    global _replayed_pid
    if _replayed_pid == os.getpid():
        return
    try:
        replay(write_rows)
        _replayed_pid = os.getpid()
    except Exception as exc:
        from integrations.ai.providers.errors import redact

        logger.error("could not replay the AI usage journals: %s", redact(f"{type(exc).__name__}: {exc}")[:300])
