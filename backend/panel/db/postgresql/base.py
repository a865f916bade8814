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
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base


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
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        try:
            readable, _, _ = select.select([connection.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable
