"""`panel.cache._Lane`: the connections the budget's counter script and the health read use without redis-py's
pool. What the pool's per-borrow poll guarded against must still hold: a reply is never read by the wrong
command, a connection the server closed while idle is replaced, a server that is down is reported as such, and
a script the server forgot is sent again. Against a real `redis-server` on a free loopback port."""

from __future__ import annotations

import redis

from panel.cache import INCR_EXISTING, INCR_EXISTING_SHA, _Lane

from .test_outages import RedisServer, needs_redis_server

pytestmark = needs_redis_server

SLOW = """
local start = redis.call('TIME')
repeat
  local now = redis.call('TIME')
until (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > 400000
return 'late'
"""


def _lane(url: str, **options) -> _Lane:
    return _Lane(redis.ConnectionPool.from_url(url, **options))


def test_a_command_that_timed_out_never_hands_its_late_reply_to_the_next_one():
    server = RedisServer()
    server.start()
    try:
        lane = _lane(server.url, socket_timeout=0.1)
        assert lane.run("PING") == b"PONG"
        try:
            lane.run("EVAL", SLOW, 0)  # answers after 0.4 s: the read times out first
            raise AssertionError("the slow script did not time out")
        except redis.exceptions.TimeoutError:
            pass
        assert list(lane.idle) == []  # the connection that timed out was closed, not kept
        server.client().ping()  # answered once the script has ended (and sent its late reply)
        replies = [lane.run("ECHO", f"call {n}") for n in range(3)]
        assert replies == [b"call 0", b"call 1", b"call 2"]  # never b"late"
    finally:
        server.stop()


def test_a_kept_connection_the_server_closed_is_replaced_and_the_script_moves_the_counter_once():
    server = RedisServer()
    server.start()
    try:
        lane = _lane(server.url, socket_timeout=2)
        admin = server.client()
        admin.set("counter", 10)
        every = ["counter"]
        assert lane.run("EVAL", INCR_EXISTING, 1, *every, 5) == [15]
        admin.client_kill_filter(_type="normal", skipme=True)  # the server drops the lane's idle connection
        assert lane.run("EVALSHA", INCR_EXISTING_SHA, 1, *every, 5) == [20]
        assert int(admin.get("counter")) == 20
    finally:
        server.stop()


def test_a_server_that_is_down_is_a_connection_error_and_a_forgotten_script_is_reported_as_such():
    server = RedisServer()
    server.start()
    lane = _lane(server.url, socket_timeout=2, socket_connect_timeout=1)
    try:
        server.client().script_flush()
        try:
            lane.run("EVALSHA", INCR_EXISTING_SHA, 1, "missing", 1)
            raise AssertionError("EVALSHA of a flushed script answered")
        except redis.exceptions.NoScriptError:
            pass
        assert lane.run("EVAL", INCR_EXISTING, 1, "missing", 1) == [None]  # a counter that does not exist
        assert len(lane.idle) == 1  # error replies leave the connection in step: kept
    finally:
        server.stop()
    try:
        lane.run("PING")  # its kept connection is dead and no new one can be made
        raise AssertionError("a stopped server answered")
    except redis.exceptions.ConnectionError:
        pass
    assert list(lane.idle) == []
