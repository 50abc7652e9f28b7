"""The decision log's own Redis connection, against a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from router.store._resp import RespConnection, supports
from tests._redis_server import RedisServer
from tests._servers import free_port
from tests._wait import wait_for_async


def connection(url: str, reply_timeout_s: float = 1.0) -> RespConnection:
    return RespConnection(url, connect_timeout_s=0.5, reply_timeout_s=reply_timeout_s)


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://127.0.0.1:6380/0", True),
    ("redis://localhost", True),
    ("redis://user:pw@cache.example:6380/2", True),
    ("rediss://user:pw@cache.example:6380/2", False),  # TLS stays with redis-py
    ("redis://h:1/x", False),
    ("redis://h:1/0?health_check_interval=5", False),
    ("unix:///tmp/redis.sock", False),
    ("memory://", False),
])
def test_which_urls_it_speaks(url: str, expected: bool) -> None:
    assert supports(url) is expected


def test_replies_in_order_pipelined_and_overlapping(redis_url: str) -> None:
    async def scenario() -> tuple[object, list[object], list[object]]:
        conn = connection(redis_url)
        pong = await conn.call("PING")
        piped = await conn.pipeline([("SET", "resp:a", "1"), ("INCR", "resp:a"),
                                     ("GET", "resp:a")])
        overlapping = await asyncio.gather(*(conn.call("ECHO", str(i)) for i in range(50)))
        await conn.close()
        return pong, piped, overlapping

    pong, piped, overlapping = asyncio.run(scenario())
    assert pong == b"PONG"
    assert piped == [b"OK", 2, b"2"]
    assert overlapping == [str(i).encode() for i in range(50)]


def test_error_replies_raise_and_leave_the_connection_usable(redis_url: str) -> None:
    async def scenario() -> object:
        conn = connection(redis_url)
        with pytest.raises(ResponseError, match="NOSCRIPT"):
            await conn.call("EVALSHA", "0" * 40, 0)
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await conn.pipeline([("SET", "resp:s", "x"), ("LPUSH", "resp:s", "y"),
                                 ("DEL", "resp:s")])
        reply = await conn.call("EXISTS", "resp:s")  # the DEL after the error ran
        await conn.close()
        return reply

    assert asyncio.run(scenario()) == 0


@pytest.fixture
def acl_user(redis_url: str) -> Iterator[tuple[str, str]]:
    with redis.Redis.from_url(redis_url) as client:
        client.execute_command("ACL", "SETUSER", "resp-tester", "on", ">s3cret/pass", "~*",
                               "+@all")
        yield "resp-tester", "s3cret/pass"
        client.execute_command("ACL", "DELUSER", "resp-tester")


def test_user_password_and_database_from_the_url(redis_url: str,
                                                 acl_user: tuple[str, str]) -> None:
    host_port = redis_url.split("//")[1].split("/")[0]
    user, password = acl_user

    async def scenario() -> None:
        conn = connection(f"redis://{user}:s3cret%2Fpass@{host_port}/3")
        await conn.call("SET", "resp:db3", "here")
        await conn.close()
        bad = connection(f"redis://{user}:wrong@{host_port}/0")
        with pytest.raises(ResponseError, match="WRONGPASS"):
            await bad.call("PING")

    asyncio.run(scenario())
    with redis.Redis(host=host_port.split(":")[0], port=int(host_port.split(":")[1]), db=3,
                     username=user, password=password) as client:
        assert client.get("resp:db3") == b"here"


def test_a_late_reply_times_out_and_the_next_call_reconnects(redis_url: str) -> None:
    async def scenario() -> tuple[float, object]:
        conn = connection(redis_url, reply_timeout_s=0.2)
        await conn.call("PING")
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError, match=r"no reply from Redis within 0\.2 s"):
            await conn.call("BLPOP", "resp:late", "10")  # Redis would answer after 10 s
        waited = time.monotonic() - started
        # Make the late reply happen now: if the call reused the old connection, that
        # reply would be read as the PING's.
        with redis.Redis.from_url(redis_url) as other:
            other.lpush("resp:late", "now")
        reply = await conn.call("PING")  # a new connection: no stale reply in the way
        await conn.close()
        return waited, reply

    waited, reply = asyncio.run(scenario())
    # It gave up at the timeout (not before; timers may fire a hair early), far sooner
    # than Redis would have answered, however busy the machine.
    assert 0.19 <= waited < 5.0
    assert reply == b"PONG"


def test_a_dead_server_fails_everything_in_flight() -> None:
    server = RedisServer()
    server.start()
    try:
        async def scenario() -> None:
            conn = connection(server.url)
            await conn.call("PING")
            in_flight = asyncio.gather(conn.call("BLPOP", "resp:never", "2"), conn.call("PING"),
                                       return_exceptions=True)
            with redis.Redis.from_url(server.url) as other:  # the BLPOP reached Redis
                await wait_for_async(lambda: other.info("clients")["blocked_clients"] == 1)
            server.stop(kill=True)
            replies = await in_flight
            assert all(isinstance(reply, RedisConnectionError) for reply in replies), replies
            with pytest.raises(RedisConnectionError, match="cannot connect"):
                await conn.call("PING")

        asyncio.run(scenario())
    finally:
        server.close()


def test_nothing_listening_is_a_connection_error() -> None:
    async def scenario() -> None:
        with pytest.raises(RedisConnectionError, match="cannot connect to Redis"):
            await connection(f"redis://127.0.0.1:{free_port()}/0").call("PING")

    asyncio.run(scenario())
