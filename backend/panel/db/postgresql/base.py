"""Django's PostgreSQL backend, whose connections are handed from request to request and checked without a query.

Handed on: the production server is ASGI, where Django runs each request's sync code on a fresh thread, and
Django's connections are per thread, so `CONN_MAX_AGE` kept nothing: every request opened a new connection (a
third of a worker's time under load) and left the old one open until garbage collection. With `POOL_MAX_IDLE`
(settings.py: `DATABASE_POOL`, on by default, makes Django's `CONN_MAX_AGE` 0) a request's connection is not
closed at its end but kept idle in this process, at most `POOL_MAX_IDLE` of them, and the next request on any
thread takes the most recent one; a connection older than `POOL_MAX_AGE` seconds (`DATABASE_CONN_MAX_AGE`), in a
transaction or broken is closed instead. Why not psycopg_pool (Django's `OPTIONS["pool"]`): while the database is
unreachable its `getconn` waits its whole timeout for a connection it cannot make, on every query, where a new
connection fails at once; warm calls must go on serving through an outage and cold ones fail fast (503).

Checked without a query: with `CONN_HEALTH_CHECKS` (on by default: a database restart must not turn the next
request on each kept connection into a 500) Django runs `SELECT 1` at the start of every request that uses the
database, one more round trip per request. A connection the server has ended (restart, `pg_terminate_backend`,
idle timeout) is told so on its socket: the server sends its FATAL message and closes, so the socket turns
readable. An idle, healthy connection has nothing to read. So the check is a zero-timeout `select` on the socket,
the way HTTP clients (httpcore, urllib3) check a kept-alive connection before reusing it: readable, closed or
broken means unusable, and a new one is opened. A readable socket that was healthy after all (an asynchronous
notice) costs a reconnect, never an error. After a failed query Django still asks `is_usable`, which keeps its
real `SELECT 1`. An idle connection is checked the same way before a request takes it.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from typing import Any

from django.db.backends.postgresql import base

# (pid, alias, host, port, database, user) -> idle connections, each with when it was opened (monotonic)
_idle: dict[tuple[Any, ...], list[tuple[Any, float]]] = {}
_idle_lock = threading.Lock()


def _alive_without_query(connection: Any) -> bool:
    """A psycopg connection looks usable from the client side and its socket alone (nothing to read)."""
    if connection is None or connection.closed or connection.broken:
        return False
    try:
        readable, _, _ = select.select([connection.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _close_quietly(connection: Any) -> None:
    with contextlib.suppress(Exception):  # already broken: nothing more to release
        connection.close()


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self) -> None:
        done = self.health_check_done  # type: ignore[has-type]
        if self.pool or self.connection is None or not self.health_check_enabled or done:
            return super().close_if_health_check_failed()
        if not self.alive_without_query():
            self.close()
        self.health_check_done = True
        return None

    def alive_without_query(self) -> bool:
        """Whether the kept connection looks usable, judged from the client side and its socket alone."""
        return _alive_without_query(self.connection)

    # -- connections handed from request to request (POOL_MAX_IDLE) ----------------------------------------

    def _idle_key(self) -> tuple[Any, ...]:
        db = self.settings_dict
        return (os.getpid(), self.alias, db.get("HOST"), db.get("PORT"), db.get("NAME"), db.get("USER"))

    def _max_idle(self) -> int:
        return 0 if self.pool else int(self.settings_dict.get("POOL_MAX_IDLE") or 0)

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        if self._max_idle():
            max_age = self.settings_dict.get("POOL_MAX_AGE")
            with _idle_lock:
                idle = _idle.get(self._idle_key(), [])
                while idle:
                    connection, opened = idle.pop()
                    fresh = max_age is None or time.monotonic() - opened < max_age
                    if fresh and (not self.health_check_enabled or _alive_without_query(connection)):
                        return connection
                    _close_quietly(connection)
        connection = super().get_new_connection(conn_params)
        connection._panel_opened_at = time.monotonic()
        connection._panel_idle_key = self._idle_key()  # where it goes back: the address it was opened to
        return connection

    def _close(self) -> None:
        connection = self.connection
        limit = self._max_idle()
        if limit and connection is not None and self._reusable(connection):
            with _idle_lock:
                idle = _idle.setdefault(connection._panel_idle_key, [])
                if len(idle) < limit:
                    idle.append((connection, getattr(connection, "_panel_opened_at", 0.0)))
                    return None
        return super()._close()

    def close_pool(self) -> None:
        """Django closes its pool before it creates or drops a test database: the idle connections go too."""
        close_idle()
        super().close_pool()

    def _reusable(self, connection: Any) -> bool:
        """Idle outside a transaction, unbroken, in autocommit (as Django opens it), younger than POOL_MAX_AGE."""
        from psycopg.pq import TransactionStatus

        max_age = self.settings_dict.get("POOL_MAX_AGE")
        opened = getattr(connection, "_panel_opened_at", None)
        return (
            opened is not None
            and getattr(connection, "_panel_idle_key", None) is not None
            and (max_age is None or time.monotonic() - opened < max_age)
            and not connection.closed
            and not connection.broken
            and connection.autocommit
            and connection.info.transaction_status == TransactionStatus.IDLE
        )


def close_idle() -> None:
    """Close the idle connections this process keeps (tests that move the database use it)."""
    with _idle_lock:
        kept = [connection for idle in _idle.values() for connection, _ in idle]
        _idle.clear()
    for connection in kept:
        _close_quietly(connection)
