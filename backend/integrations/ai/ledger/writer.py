"""The ledger writer: usage rows leave the caller's thread and reach the database in batches, none lost.

`submit(entry)` is all a caller does after an AI call (no query): the entry (call record, prices,
cached result) goes to an in-process bounded queue that a daemon thread drains, building the rows
there and handing each batch to the Django side's store (`integrations.ai.ports`), which inserts it with one
prepared `executemany` (`integrations.usage.insert`).
When the queue is full the caller writes its own rows
(back-pressure, never a drop). A process's journal (`journal`) keeps what it holds across a kill -9; that is
the default whatever the database (`AI_LEDGER_QUEUE=local`). With `AI_LEDGER_QUEUE=redis` (for web
machines whose disk does not outlive them; it costs a round trip per call and a drainer), the caller
instead serialises the rows to JSON and pushes them onto a Redis list; that push is the acknowledgement,
and a drainer thread in any process moves them to a per-process processing list (LMOVE), writes them,
then deletes that list, so a killed process loses nothing it pushed: its processing list is re-queued by the next
drainer. Each pushed row carries a unique `ledger_key`, so a batch drained twice (a drainer that died between
its commit and its acknowledgement) is written once: a crash never makes a site pay twice.
If Redis is unreachable, rows take the in-process path.

The same transaction that inserts the rows adds them to their daily roll-ups (`UsageDaily`, what
the dashboard reads; `integrations.usage.rollups`) and their cost to the sites' `BudgetPeriod` of
the month, so the roll-ups and the periods the budget counters are seeded from always match the ledger.

A call made inside an open transaction (`transaction.atomic`, ATOMIC_REQUESTS, a test case) may
reference rows another connection cannot see yet, and on SQLite another connection would wait for
that transaction's lock; its rows are handed over when the transaction commits (`on_commit`), or
written inside it by `flush()`, and roll back with it, as a synchronous write would.

Everything pending is written at interpreter exit, on SIGTERM (the handler chains to the previous
one), at Celery worker shutdown and on `flush()`. A failed write is logged (type and redacted
message) and retried with backoff while the database is unreachable; rows stay queued meanwhile. A
row the database refuses for itself is set aside instead (`ledger_dead_letter`), never the batch.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import signal
import socket
import threading
import time
import uuid
from typing import Any

from integrations.ai.ledger import journal as ledger_journal
from integrations.ai.ledger.dead_letter import write_or_set_aside
from integrations.ai.ports import store
from integrations.ai.runtime import conf

logger = logging.getLogger("integrations.ai")

MAX_BACKOFF = 30.0


def _fields_of(entry: Any) -> list[dict[str, Any]]:
    from integrations.ai.ledger.rows import row_fields

    return row_fields(*entry)


class _Rows:
    """A call's rows already built (and journaled) on the caller's thread."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows


def _rows_of(entry: Any) -> list[dict[str, Any]]:
    return entry.rows if isinstance(entry, _Rows) else _fields_of(entry)


def start() -> None:
    """Start this process's writer now (a server worker at boot): it first replays dead processes' journals,
    then writes what an earlier deployment left in the shared Redis list (`drain_redis_leftovers`)."""
    _local._ensure()
    drain_redis_leftovers()


def drain_redis_leftovers() -> int:
    """With REDIS_URL set and the ledger queue `local` (the default), write the calls an earlier deployment
    that queued through Redis (`AI_LEDGER_QUEUE=redis`) left in the shared list, and those stopped processes
    left in their processing lists, so switching queues loses nothing. Returns how many calls were written.

    Living processes' processing lists are theirs (a rolling deploy); a row written twice is skipped by its
    `ledger_key`. Never raises: a Redis or database error is logged and the list stays for the next start."""
    url = conf.redis_url()
    if not url or conf.ledger_queue() == "redis":
        return 0
    written = 0
    ledger: _RedisLedger | None = None
    try:
        ledger = _RedisLedger(url)
        ledger.recover()
        while batch := ledger._take(conf.ledger_batch_size()):
            ledger._write_taken(batch)
            written += len(batch)
    except Exception as exc:
        logger.warning(
            "could not write the AI usage calls left in Redis (%s); trying at the next start", _describe(exc)
        )
        return written
    finally:
        if ledger is not None:
            ledger.pool.disconnect()
    if written:
        logger.warning("wrote %d AI usage call(s) an earlier deployment left in Redis", written)
    return written


def _describe(exc: BaseException) -> str:
    from integrations.ai.providers.errors import redact

    return redact(f"{type(exc).__name__}: {exc}")[:300]


def write_rows(fields: list[dict[str, Any]]) -> None:
    """Insert ledger rows, add them to their daily roll-ups and their cost to this month's budget
    periods, in one transaction: the Django side's store does it (`integrations.store.DjangoStore.write_rows`).
    """
    store().write_rows(fields)


class _LocalWriter:
    """The in-process queue and its daemon thread.

    The queue is a deque the caller appends to (no lock, no wake-up per call): the writer is woken
    once when rows arrive after it went idle, then sleeps the flush interval (or until a batch is
    full or `flush()` asks) and takes everything queued. Waking it on every call would make it
    compete with the callers for the interpreter once per call instead of once per batch.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.RLock())  # re-entrant: the SIGTERM handler may interrupt a submit
        self.items: collections.deque[Any] = collections.deque()
        self.arrived = threading.Event()  # rows are queued (set by the first put after the writer went idle)
        self.hurry = threading.Event()  # write now: a full batch, or a flush waiting
        self.parked = threading.Event()  # idle, its database connection handed back (`quiesce`)
        self.thread: threading.Thread | None = None
        self.pid = 0
        self.maxsize = 0
        self.batch_size = 0
        self.submitted = 0
        self.written = 0

    def _ensure(self) -> None:
        if self.thread is not None and self.pid == os.getpid() and self.thread.is_alive():
            return
        with self.cond:
            if self.thread is None or self.pid != os.getpid() or not self.thread.is_alive():
                if self.pid != os.getpid():  # new process (or fork): the parent writes what it queued
                    self.items = collections.deque()
                    self.arrived, self.hurry = threading.Event(), threading.Event()
                    self.parked = threading.Event()
                    self.submitted = self.written = 0
                    self.pid = os.getpid()
                self.maxsize, self.batch_size = conf.ledger_queue_size(), conf.ledger_batch_size()
                self.thread = threading.Thread(target=self._run, name="ai-ledger-writer", daemon=True)
                self.thread.start()
                _register_exit_flush()

    def put(self, entry: Any) -> None:
        self._ensure()
        journal = ledger_journal.current()
        if journal is not None:  # the rows reach the kernel before the caller's answer does (kill -9 safe)
            rows = ledger_journal.keyed(_rows_of(entry))
            data, entry = ledger_journal.encode(rows), _Rows(rows)
        with self.cond:
            self.submitted += 1
            room = len(self.items) < self.maxsize
            if journal is not None and (journal := ledger_journal.current()) is not None:
                journal.append(data)  # under the lock: the writer never truncates between this and the queue
            if room:
                self.items.append(entry)
        if room:
            if not self.arrived.is_set():
                self.arrived.set()
            if len(self.items) >= self.batch_size and not self.hurry.is_set():
                self.hurry.set()
            return
        try:  # back-pressure: the caller writes its own rows
            write_or_set_aside(write_rows, _rows_of(entry))
        except Exception as exc:
            logger.warning("ledger queue full and a direct write failed (%s); waiting for room", _describe(exc))
            with self.cond:
                self.cond.wait_for(lambda: len(self.items) < self.maxsize)
                self.items.append(entry)
            self.arrived.set()
            return
        self._done(1)

    def _done(self, count: int) -> None:
        with self.cond:
            self.written += count
            journal = ledger_journal.existing()
            if journal is not None and not self.items and self.written >= self.submitted:
                journal.truncate()  # everything handed over is in the database
            self.cond.notify_all()

    def wait(self, deadline: float) -> bool:
        with self.cond:
            target = self.submitted
            if self.written >= target:
                return True
        with self.cond:
            while self.written < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.hurry.set()  # again each time: the writer may have cleared it for an earlier batch
                self.arrived.set()
                self.cond.wait(min(remaining, 0.05))
            return True

    def _take(self) -> list[Any]:
        batch: list[Any] = []
        items = self.items
        while items and len(batch) < self.batch_size:
            batch.append(items.popleft())
        return batch

    def _run(self) -> None:
        db = store()

        batch: list[Any] = []
        backoff = 0.5
        try:  # the journals of processes that died (kill -9) before writing what they held
            ledger_journal.replay(write_rows)
        except Exception as exc:
            logger.error("could not replay the AI usage journals: %s", _describe(exc))
        db.release_connection()
        while True:
            if not batch:
                if not self.items:
                    db.release_connection()  # idle: hold no database connection (nor lock a test database's drop)
                    self.parked.set()
                    self.arrived.wait()
                    self.parked.clear()
                self.arrived.clear()
                if not self.items:
                    continue
                if len(self.items) < self.batch_size:  # let more arrive, unless a flush or a full batch asks
                    self.hurry.wait(conf.ledger_flush_interval())
                self.hurry.clear()
                with self.cond:  # taken under the callers' lock: a holder of it sees the queue as it is
                    batch = self._take()
                journal = ledger_journal.existing()
                if journal is not None:
                    journal.sync()  # one fdatasync per batch: the rows also survive a power loss
            try:
                db.refresh_connections()
                write_or_set_aside(write_rows, [row for entry in batch for row in _rows_of(entry)])
            except Exception as exc:
                logger.error(
                    "could not write %d AI usage call(s), will retry in %.1fs: %s", len(batch), backoff, _describe(exc)
                )
                db.release_connection()
                self.hurry.wait(backoff)  # a flush waiting (SIGTERM, exit) retries at once, not after the backoff
                self.hurry.clear()
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = 0.5
            self._done(len(batch))  # wakes flush() waiters, and callers waiting for room
            batch = []


# KEYS: the shared list, this process's processing list; ARGV: how many. Moves up to that many entries
# atomically and returns them: a batch in one round trip instead of one LMOVE per entry.
MOVE_SCRIPT = """
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local entry = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  if not entry then break end
  out[i] = entry
end
return out
"""


class _RedisLedger:
    """Rows pushed to a Redis list, drained into the database by a thread in any process.

    Under load the drainer gathers a batch as the in-process writer does: woken by the first entry, it
    waits the flush interval (or until a flush asks), then moves the rest of a batch in one round trip.
    Taking one entry per wake-up made it write, and compete with the request threads, once per call.
    """

    HEARTBEAT_TTL = 10
    CONFIRM_INTERVAL = 1.0  # seconds between checks that held rows reached the database
    REQUEUE_AFTER = 60.0  # a held row still missing after this long is written in-process (Redis kept it?)

    def __init__(self, url: str) -> None:
        import redis

        self.errors = (redis.RedisError, OSError)
        self.pool = redis.ConnectionPool.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self.client = redis.Redis(connection_pool=self.pool)
        engine, host, _, name = store().database_identity()
        # One list per database, so a dev server and a test run sharing a Redis never mix rows.
        self.key = f"panel:ai-ledger:{engine.rsplit('.', 1)[-1]}:{host}:{name}"
        self.host = socket.gethostname()
        self.owner = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.processing = f"{self.key}:processing:{self.owner}"
        self.alive = f"{self.key}:alive:{self.owner}"
        self.down_until = 0.0
        self.down = False  # logged once per outage
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.hurry = threading.Event()  # a flush is waiting: write what has arrived now
        self.move: Any = None
        # rows pushed but not yet seen in the database, by their call's first ledger_key
        self.pending: dict[str, tuple[float, list[dict[str, Any]], bytes]] = {}
        self.pending_lock = threading.Lock()
        self.journal: ledger_journal.Journal | None = None
        self.confirmed_at = 0.0
        self.drainer_down = False
        self.wake = threading.Event()  # set by wait(): a drainer backing off retries now
        self.parked = threading.Event()  # a wait for the list found nothing: no database connection held (`quiesce`)

    def push(self, entry: Any) -> bool:
        """Push one call's rows; True is the acknowledgement, False means use the in-process path.

        The rows are first appended to this process's Redis journal and held until the database has them
        (`confirm`): a Redis that restarts without persistence loses its list, not the rows."""
        if time.monotonic() < self.down_until:
            return False
        # each row carries its call's ledger_key (usage.row_fields): written once even if a batch is
        # drained twice, or a push that timed out had arrived and the caller writes the rows itself
        rows = ledger_journal.keyed(_fields_of(entry))
        payload = ledger_journal.encode(rows)
        key = rows[0]["ledger_key"] if rows else None
        self._hold(key, rows, payload)
        try:
            self.client.rpush(self.key, payload)
        except self.errors as exc:
            if not self.down:
                logger.warning("Redis unreachable for the AI usage ledger (%s); writing in-process", _describe(exc))
            self.down = True
            self.down_until = time.monotonic() + 5
            self._release([key])  # the in-process path owns these rows now (the same keys: written once)
            return False
        if self.down:
            self.down = False
            logger.warning("Redis reachable again for the AI usage ledger")
        self.ensure_drainer()
        return True

    def _hold(self, key: str | None, rows: list[dict[str, Any]], payload: bytes) -> None:
        if key is None:
            return
        with self.pending_lock:
            journal = self._journal()
            if journal is not None:
                journal.append(payload)
            self.pending[key] = (time.monotonic(), rows, payload)

    def _release(self, keys: list[str | None]) -> None:
        with self.pending_lock:
            for key in keys:
                self.pending.pop(key, None)  # type: ignore[arg-type]
            journal = self.journal if self.journal is not None and self.journal.pid == os.getpid() else None
            if journal is not None and journal.dirty:
                if not self.pending:
                    journal.truncate()
                else:  # keep only what the database does not have yet
                    self.journal = journal.rewrite([payload for _, _, payload in self.pending.values()])

    def _journal(self) -> ledger_journal.Journal | None:
        """This process's journal of rows pushed to Redis (a file of its own beside the in-process one)."""
        journal = self.journal
        if journal is not None and journal.pid == os.getpid():
            return journal
        if journal is not None:  # forked: the parent keeps its file and its rows
            self.pending = {}
        self.journal = ledger_journal.open_extra()
        return self.journal

    def confirm(self, *, requeue_after: float | None = None) -> int:
        """Forget held rows the database has; hand to the in-process writer those Redis lost (or sat on too
        long). Returns how many calls were handed over. Raises when the database cannot be asked."""
        with self.pending_lock:
            held = dict(self.pending)
        if not held:
            return 0
        keys = list(held)
        done: set[str] = set()
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            # a row the database refused is set aside, not lost: never hand it over again
            done.update(store().known_keys(chunk))
        waiting = [key for key in keys if key not in done]
        lost: list[str] = []
        if waiting:
            try:
                queued = self._backlog()
            except self.errors:
                queued = -1  # Redis is away: what it held may be gone
            limit = self.REQUEUE_AFTER if requeue_after is None else requeue_after
            now = time.monotonic()
            # nothing waits in Redis any more, yet the database lacks them: Redis lost them (a restart); or Redis
            # is away: written in-process now (a copy drained later is skipped by its ledger_key), so the month's
            # spend in the database, which holds the cap during the outage (`governance.budget`), has them
            lost = [key for key in waiting if queued <= 0 or now - held[key][0] >= limit]
        for key in lost:
            _local.put(_Rows(held[key][1]))  # same ledger_key: a copy that still reaches the database is skipped
        if lost:
            logger.warning(
                "%d AI usage call(s) pushed to Redis never reached the database; writing them in-process", len(lost)
            )
        self._release([*done, *lost])
        return len(lost)

    def _backlog(self) -> int:
        prefix = f"{self.key}:processing:*"
        total = int(self.client.llen(self.key))
        for name in self.client.scan_iter(match=prefix, count=100):
            total += int(self.client.llen(name))
        return total

    def ensure_drainer(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="ai-ledger-drainer", daemon=True)
                self.thread.start()
                _register_exit_flush()

    def _owner_dead(self, owner: str) -> bool:
        if self.client.exists(f"{self.key}:alive:{owner}"):
            host, _, rest = owner.partition(":")
            if host != self.host:
                return False
            try:
                os.kill(int(rest.split(":")[0]), 0)
            except ProcessLookupError:
                return True
            except (PermissionError, ValueError):
                return False
            return False
        return True

    def recover(self) -> int:
        """Re-queue the processing lists of processes that died before writing them."""
        moved = 0
        prefix = f"{self.key}:processing:"
        for raw in self.client.scan_iter(match=f"{prefix}*", count=100):
            name = raw.decode() if isinstance(raw, bytes) else raw
            owner = name[len(prefix) :]
            if owner == self.owner or not self._owner_dead(owner):
                continue
            while self.client.lmove(name, self.key, "RIGHT", "LEFT") is not None:
                moved += 1
        if moved:
            logger.warning("re-queued %d AI usage call(s) left by a stopped process", moved)
        return moved

    def _confirm_quietly(self) -> None:
        try:
            self.confirm()
            journal = self.journal
            if journal is not None and journal.pid == os.getpid():
                journal.sync()  # at most once a second: held rows also survive a power loss
        except Exception as exc:  # the database is away: the rows stay held and journaled
            logger.debug("could not check held AI usage rows (%s)", _describe(exc))
            store().release_connection()

    @staticmethod
    def decode(raw: bytes | str) -> list[dict[str, Any]]:
        return ledger_journal.decode(raw)  # the same JSON rows as a journal line

    def _write_taken(self, items: list[Any]) -> None:
        """Write entries moved to this process's processing list, then delete it: the acknowledgement."""
        write_or_set_aside(write_rows, [row for raw in items for row in self.decode(raw)])
        self.client.delete(self.processing)

    def _take(self, count: int) -> list[Any]:
        """Up to `count` entries moved from the list to this process's processing list, in one round trip."""
        if self.move is None:
            self.move = self.client.register_script(MOVE_SCRIPT)
        return list(self.move(keys=[self.key, self.processing], args=[count]))

    def _run(self) -> None:
        db = store()

        last_beat = last_recover = 0.0
        backoff = 0.5
        unacknowledged = True  # the processing list may hold a batch (a failed write): retried first
        full = False  # the last batch was full: more are waiting, take them without gathering
        while True:
            try:
                now = time.monotonic()
                if now - last_beat > 1:
                    self.client.set(self.alive, "1", ex=self.HEARTBEAT_TTL)
                    last_beat = now
                if now - last_recover > 5:
                    self.recover()
                    last_recover = now
                if now - self.confirmed_at > self.CONFIRM_INTERVAL and self.pending:
                    self.confirmed_at = now
                    self._confirm_quietly()
                items = self.client.lrange(self.processing, 0, -1) if unacknowledged else []
                if not items:
                    first = self.client.blmove(self.key, self.processing, 1, "LEFT", "RIGHT")
                    if first is None:
                        db.release_connection()  # idle for a second: hold no database connection
                        self.parked.set()
                        continue
                    self.parked.clear()
                    # Let a batch gather (the entry is safe in the processing list meanwhile), unless a
                    # flush asks: one write per interval instead of one per call under load.
                    size = conf.ledger_batch_size()
                    if size > 1 and not full and self.hurry.wait(conf.ledger_flush_interval()):
                        self.hurry.clear()
                    items = [first, *self._take(size - 1)] if size > 1 else [first]
                    full = len(items) >= size
                unacknowledged = True
                db.refresh_connections()
                self._write_taken(items)
                unacknowledged = False
                backoff = 0.5
                if self.drainer_down:
                    self.drainer_down = False
                    logger.warning("AI usage drainer: Redis answers again")
            except self.errors as exc:
                if not self.drainer_down:  # once per outage, not every second
                    self.drainer_down = True
                    logger.warning("AI usage drainer: Redis error (%s); retrying every second", _describe(exc))
                if self.pending:  # Redis is away: rows it may have lost are checked all the same
                    self._confirm_quietly()
                time.sleep(1)
            except Exception as exc:
                logger.error(
                    "could not write AI usage rows from Redis, will retry in %.1fs: %s", backoff, _describe(exc)
                )
                db.release_connection()
                self.wake.wait(backoff)  # a flush waiting (SIGTERM, exit) retries at once, not after the backoff
                self.wake.clear()
                backoff = min(backoff * 2, MAX_BACKOFF)

    def wait(self, deadline: float) -> bool:
        """Until the list and every processing list are empty (written by this or another drainer)."""
        try:
            self.ensure_drainer()
            while True:
                self.hurry.set()
                if not self._backlog():
                    try:  # what Redis lost goes to the in-process writer (flush() waits for it next)
                        self.confirm()
                    except Exception as exc:
                        if isinstance(exc, self.errors):
                            raise
                        logger.warning("could not check held AI usage rows (%s)", _describe(exc))
                        return False
                    return True
                if time.monotonic() >= deadline:
                    return False
                self.wake.set()
                time.sleep(0.02)
        except self.errors as exc:
            logger.warning("could not check the Redis AI usage ledger (%s)", _describe(exc))
            try:  # rows Redis held may be gone with it: the database decides
                self.confirm(requeue_after=0)
            except Exception as confirm_exc:
                logger.warning("could not check held AI usage rows (%s)", _describe(confirm_exc))
                return False
            return not self.pending  # what this process pushed is written, or with the in-process writer


_local = _LocalWriter()
_redis: _RedisLedger | None = None
_redis_url: str | None = None
_redis_lock = threading.Lock()


def _redis_ledger() -> _RedisLedger | None:
    global _redis, _redis_url
    url = conf.redis_url()
    if not url or conf.ledger_queue() != "redis":
        return None
    if _redis is None or _redis_url != url:
        with _redis_lock:
            if _redis is None or _redis_url != url:
                _redis, _redis_url = _RedisLedger(url), url
    return _redis


class _Held:
    """One call made inside an open transaction: handed over when it commits (`on_commit`)."""

    __slots__ = ("done", "entry")

    def __init__(self, entry: Any) -> None:
        self.entry = entry
        self.done = False

    def __call__(self) -> None:
        if not self.done:
            self.done = True
            _route(self.entry)


def submit(entry: Any) -> None:
    """Hand one call's ledger entry to the writer. No query on this thread; never raises."""
    try:
        db = store()
        if db.in_transaction():
            db.on_commit(_Held(entry))
        else:
            _route(entry)
    except Exception as exc:  # a served answer must never fail on its bookkeeping
        logger.error("could not hand an AI usage entry to the ledger writer: %s", _describe(exc))


def _route(entry: Any) -> None:
    redis_ledger = _redis_ledger()
    if redis_ledger is not None and redis_ledger.push(entry):
        return
    _local.put(entry)


def _write_held() -> None:
    """Write the calls held by this thread's open transaction, inside it."""
    db = store()
    if not db.in_transaction():
        return
    held = [func for func in db.pending_on_commit() if isinstance(func, _Held) and not func.done]
    if held:
        write_rows([row for h in held for row in _fields_of(h.entry)])
        for h in held:
            h.done = True


def flush(timeout: float | None = None, *, include_held: bool = True) -> bool:
    """Block until every call handed over so far is in the database; False if `timeout` passed first."""
    deadline = time.monotonic() + (conf.ledger_flush_timeout() if timeout is None else timeout)
    if include_held:
        _write_held()
    redis_ledger = _redis_ledger()
    done = True
    if redis_ledger is not None:  # first: rows Redis lost are handed to the in-process writer
        done = redis_ledger.wait(deadline)
    done = _local.wait(deadline) and done
    if not done:
        logger.error("the AI usage ledger was not fully written within the flush timeout; rows stay queued")
    return done


def quiesce(timeout: float = 10.0) -> bool:
    """`flush()`, then wait until this process's writer (and a Redis drainer, if one runs) is idle with its
    database connection handed back: for a caller about to count or hand out connections (tests of the
    connection pool). False if `timeout` passed first."""
    deadline = time.monotonic() + timeout
    drainer = _redis  # one an earlier `AI_LEDGER_QUEUE=redis` started runs on whatever the setting is now
    if drainer is not None:
        drainer.parked.clear()  # wait for a whole idle wait after the flush (at most a second)
    if not flush(timeout):
        return False
    waits = []
    if _local.thread is not None and _local.pid == os.getpid() and _local.thread.is_alive():
        waits.append(_local.parked)
    if drainer is not None and drainer.thread is not None and drainer.thread.is_alive():
        waits.append(drainer.parked)
    return all(event.wait(max(0.0, deadline - time.monotonic())) for event in waits)


_exit_registered = False


def _register_exit_flush() -> None:
    global _exit_registered
    if not _exit_registered:
        _exit_registered = True
        atexit.register(_flush_at_exit)


def _flush_at_exit() -> None:
    _flush_quietly(close_journal=True)


def _flush_quietly(close_journal: bool = False) -> None:
    try:
        if flush(include_held=False) and close_journal:
            with _local.cond:
                journal = ledger_journal.existing()
                if journal is not None and _local.written >= _local.submitted:
                    journal.close(remove=True)  # all written: nothing to replay
                    ledger_journal.forget()
    except Exception as exc:
        logger.error("flushing the AI usage ledger failed: %s", _describe(exc))


_installed = False


def install_signal_handler() -> bool:
    """Flush on SIGTERM, then do what the previous handler did (exit, by default). Main thread only."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return False
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        _flush_quietly()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_IGN:
            return
        else:  # the default: die of SIGTERM, as before
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    try:
        signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main interpreter
        return False
    _installed = True
    return True


def queue_depth() -> int:
    """Calls waiting in this process's ledger queue (metrics and `/readyz`)."""
    return len(_local.items) if _local.pid == os.getpid() else 0


def shared_backlog() -> int:
    """Entries waiting in the shared Redis list (0 without Redis); raises when Redis cannot be asked."""
    ledger = _redis_ledger()
    return int(ledger.client.llen(ledger.key)) if ledger is not None else 0
