"""Django's PostgreSQL backend, whose kept connections are health-checked without a query.

With `CONN_HEALTH_CHECKS` (on by default: a database restart must not turn the next request on each
kept connection into a 500) Django runs `SELECT 1` at the start of every request that uses the
database: one more round trip per request, on the request thread. Under load that was a tenth of a
production worker's time on `POST /api/ai/generate/`, whose only query is the token lookup.

A connection the server has ended (restart, `pg_terminate_backend`, idle timeout) is told so on its
socket: the server sends its FATAL message and closes, so the socket turns readable. An idle, healthy
connection has nothing to read. So the check is a zero-timeout `select` on the socket, the way HTTP
clients (httpcore, urllib3) check a kept-alive connection before reusing it: readable, closed or
broken means unusable, and Django opens a new one. A readable socket that was healthy after all (an
asynchronous notice) costs a reconnect, never an error. After a failed query Django still asks
`is_usable`, which keeps its real `SELECT 1`.

Pooled connections (`OPTIONS["pool"]`, psycopg_pool; settings.py turns it on for PostgreSQL): the production
server is ASGI, where Django runs each request's sync code on a fresh thread, and connections are per thread, so
`CONN_MAX_AGE` kept nothing: every request opened a new connection (a third of a worker's time under load) and
left the old one open until garbage collection. A pool lends each request a connection and takes it back at the
request's end. Django's pool checks every connection it lends with a query (`ConnectionPool.check_connection`);
this backend's pool checks it the same way as above, on its socket.
"""

from __future__ import annotations

import select
from typing import Any

from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base


def _alive_without_query(connection: Any) -> bool:
    """A psycopg connection looks usable from the client side and its socket alone (nothing to read)."""
    if connection is None or connection.closed or connection.broken:
        return False
    try:
        readable, _, _ = select.select([connection.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def check_pooled(connection: Any) -> None:
    """psycopg_pool's `check` before a connection is lent: raise for one the server ended (the pool replaces it)."""
    import psycopg

    if not _alive_without_query(connection):
        connection.close()  # closed, the pool discards it and opens another (open, it would lend it again)
        raise psycopg.OperationalError("the server ended this pooled connection")


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

    @property
    def pool(self) -> Any:
        """Django's pool (`DatabaseWrapper.pool`, Django 5.2), its check made on the socket (`check_pooled`)."""
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not pool_options:
            return None
        if self.alias not in self._connection_pools:
            from django.core.exceptions import ImproperlyConfigured
            from psycopg_pool import ConnectionPool

            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True  # as Django: it sets the mode it wants later
            pool = ConnectionPool(
                kwargs=connect_kwargs,
                open=False,
                configure=self._configure_connection,
                check=check_pooled if self.settings_dict["CONN_HEALTH_CHECKS"] else None,
                **({} if pool_options is True else pool_options),
            )
            self._connection_pools.setdefault(self.alias, pool)  # two threads at once: the first one wins
        return self._connection_pools[self.alias]
