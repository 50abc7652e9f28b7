"""One pipelined Redis connection on an asyncio Protocol, for the decision log's writes.

Every routed request waits for its decision's write, so the write's client cost is
on every request's latency. One EVALSHA at a time under uvloop took 109 µs through
redis-py's asyncio client (stream reader and writer, an ``asyncio.timeout`` per
read, the pool's lock) and 77 µs through this Protocol with hiredis's packer and
reader, whose bare PING took 72 µs (``bench/_resp_cost.py``). This client does only that: send
commands, match replies in order, fail everything in flight when the connection
drops or a reply is late (after a timeout the replies would be out of step, so
the connection is closed, not reused). It speaks RESP2 over plain TCP to
``redis://`` URLs with an optional user, password and database; anything else
(TLS, unix sockets, query options) stays with redis-py (:func:`supports`): TLS
could not be tested here against a certificate the default context trusts.

Errors are redis-py's classes, so callers handle both clients alike:
``ConnectionError`` (refused, dropped), ``TimeoutError`` (connect or reply late),
``ResponseError`` (an error reply, e.g. ``NOSCRIPT``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = str | bytes | int | float


def supports(url: str) -> bool:
    """Whether :class:`RespConnection` can talk to ``url``."""
    parts = urlsplit(url)
    if parts.scheme != "redis" or not parts.hostname or parts.query:
        return False
    db = parts.path.lstrip("/")
    return db == "" or db.isdigit()


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.reader = hiredis.Reader()
        self.failure: Exception | None = None  # why the connection is being closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport (uvloop's is not an asyncio.Transport subclass).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self.abort(RedisConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            if not self.waiting:  # a reply nobody asked for: out of step
                self.abort(RedisConnectionError("unexpected reply from Redis"))
                return
            future = self.waiting.popleft()
            if future.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(ResponseError(str(reply)))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        failure = self.failure or RedisConnectionError(
            f"connection to Redis lost{f': {exc}' if exc else ''}")
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(failure)

    def abort(self, failure: Exception) -> None:
        if self.failure is None:
            self.failure = failure
        if self.transport is not None:
            self.transport.abort()


class RespConnection:
    """Connects on first use and again after a failure; commands may overlap."""

    def __init__(self, url: str, *, connect_timeout_s: float, reply_timeout_s: float) -> None:
        if not supports(url):
            raise ValueError(f"RespConnection cannot talk to {url!r}")
        parts = urlsplit(url)
        self._host = parts.hostname or ""
        self._port = parts.port or 6379
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._db = int(parts.path.lstrip("/") or 0)
        self._connect_timeout_s = connect_timeout_s
        self._reply_timeout_s = reply_timeout_s
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def call(self, *args: Arg) -> Any:
        """One command's reply."""
        replies = await self.pipeline([args])
        return replies[0]

    async def pipeline(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        """Each command's reply, all sent in one write; the first error reply raises."""
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            protocol = await self._connect()
        return await self._send(protocol, commands)

    async def close(self) -> None:
        """Close the connection (commands in flight fail with ConnectionError)."""
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()

    async def _send(self, protocol: _Protocol, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        transport = protocol.transport
        if transport is None:
            raise protocol.failure or RedisConnectionError("connection to Redis lost")
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        protocol.waiting.extend(futures)
        # hiredis's stub types the argument as a 1-tuple; it takes any length.
        transport.write(b"".join(hiredis.pack_command(tuple(command))  # type: ignore[arg-type]
                                 for command in commands))
        # One timer for the batch: cheaper than asyncio.timeout around each await.
        timer = loop.call_later(self._reply_timeout_s, protocol.abort, RedisTimeoutError(
            f"no reply from Redis within {self._reply_timeout_s} s"))
        try:
            if len(futures) == 1:  # the live path: one EVALSHA per batch
                return [await futures[0]]
            # Every reply is collected before the first error is raised: no failed
            # future is left behind unread.
            replies = await asyncio.gather(*futures, return_exceptions=True)
        finally:
            timer.cancel()
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            protocol = self._protocol
            if protocol is not None and protocol.transport is not None:
                return protocol  # another caller connected while this one waited
            loop = asyncio.get_running_loop()
            try:
                _, connected = await asyncio.wait_for(
                    loop.create_connection(_Protocol, self._host, self._port),
                    self._connect_timeout_s)
            except TimeoutError as exc:
                raise RedisTimeoutError(f"connecting to Redis at {self._host}:{self._port} "
                                        f"took over {self._connect_timeout_s} s") from exc
            except OSError as exc:
                raise RedisConnectionError(f"cannot connect to Redis at {self._host}:"
                                           f"{self._port}: {exc}") from exc
            setup: list[list[Arg]] = []
            username, password = self._username, self._password
            if password is not None:
                setup.append(["AUTH", username, password] if username else ["AUTH", password])
            if self._db:
                setup.append(["SELECT", self._db])
            if setup:
                try:
                    await self._send(connected, setup)
                except BaseException:
                    connected.abort(RedisConnectionError("Redis connection set-up failed"))
                    raise
            self._protocol = connected
            return connected
