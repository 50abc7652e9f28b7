"""Leases: one active joiner, one active learner per experiment.

A lease is a key holding its owner's token, set with ``SET NX PX ttl`` and renewed by
its owner every ``ttl / 3`` with a compare-and-``PEXPIRE`` script. A worker that stops
renewing (crashed, paused, cut off) loses it after ``ttl``; another then takes it.
The lease alone does not make writes safe (a paused owner may wake up after losing
it), so every write that matters checks the token inside the same Lua script that
writes (fencing): a former owner's write is refused, never applied.

``MemoryLease`` gives the in-process workers the same API over a shared table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from redis.exceptions import RedisError

from common import redis_errors
from reward_ingest.errors import LeaseLost

logger = logging.getLogger(__name__)

DEFAULT_TTL_S = 5.0

# KEYS[1]: the lease. ARGV[1]: the owner's token, ARGV[2]: the TTL in ms. 1 if renewed.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# KEYS[1]: the lease. ARGV[1]: the owner's token. 1 if released.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class _Renewing:
    """The common part: a token per acquisition, the renewal task, ``keep()``."""

    def __init__(self, key: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl_s!r}")
        self.key = key
        self.ttl_s = ttl_s
        self.token = ""
        """The current acquisition's token ("" while not held)."""
        self.lost = False
        """Set when a renewal failed: the holder must stop writing and start over."""

    @property
    def ttl_ms(self) -> int:
        return max(1, round(self.ttl_s * 1000))

    async def try_acquire(self) -> bool:
        """Take the lease if it is free; a fresh token each time."""
        token = uuid.uuid4().hex
        if await self._set_nx(token):
            self.token, self.lost = token, False
            return True
        return False

    async def acquire(self, stop: asyncio.Event | None = None) -> bool:
        """Wait until the lease is ours (True) or ``stop`` is set (False)."""
        while stop is None or not stop.is_set():
            try:
                if await self.try_acquire():
                    return True
            except (RedisError, OSError) as exc:
                redis_errors.count("lease")
                logger.warning("lease %s: %s", self.key, exc)
            await _sleep_or_stop(self.ttl_s / 5, stop)
        return False

    async def renew(self) -> bool:
        """Extend the lease if it is still ours; sets ``lost`` otherwise."""
        ok = bool(self.token) and await self._renew(self.token)
        if not ok:
            self.lost = True
        return ok

    async def release(self) -> None:
        """Give the lease up (only if still ours), so a successor need not wait."""
        token, self.token = self.token, ""
        if token:
            with contextlib.suppress(RedisError, OSError):
                await self._release(token)

    def check(self) -> None:
        """Raise ``LeaseLost`` when a renewal has failed."""
        if self.lost or not self.token:
            raise LeaseLost(f"lease {self.key} lost")

    @contextlib.asynccontextmanager
    async def keep(self) -> AsyncIterator[None]:
        """Renew every ttl/3 while the body runs; ``lost`` is set if a renewal fails."""
        task = asyncio.create_task(self._renew_loop(), name=f"lease {self.key}")
        try:
            yield
        finally:
            task.cancel()
            # wait(), not ``await task``: a cancellation of the holder itself must go on.
            await asyncio.wait([task])

    async def _renew_loop(self) -> None:
        while not self.lost:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                await self.renew()
            except (RedisError, OSError) as exc:
                redis_errors.count("lease")
                # Not lost yet: it may still hold until the TTL; the next try decides.
                logger.warning("lease %s renewal failed: %s", self.key, exc)

    async def _set_nx(self, token: str) -> bool:
        raise NotImplementedError

    async def _renew(self, token: str) -> bool:
        raise NotImplementedError

    async def _release(self, token: str) -> None:
        raise NotImplementedError


class RedisLease(_Renewing):
    """A lease on a Redis key (any redis.asyncio client)."""

    def __init__(self, client: Any, key: str, ttl_s: float = DEFAULT_TTL_S) -> None:
        super().__init__(key, ttl_s)
        self._client = client
        self._renew_script = client.register_script(RENEW)
        self._release_script = client.register_script(RELEASE)

    async def _set_nx(self, token: str) -> bool:
        return bool(await self._client.set(self.key, token, nx=True, px=self.ttl_ms))

    async def _renew(self, token: str) -> bool:
        return bool(await self._renew_script(keys=[self.key], args=[token, self.ttl_ms]))

    async def _release(self, token: str) -> None:
        await self._release_script(keys=[self.key], args=[token])


class MemoryLeaseTable:
    """Leases of one process: key -> (token, expiry on ``clock``)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.held: dict[str, tuple[str, float]] = {}

    def owner(self, key: str) -> str | None:
        """The token holding ``key`` now, or None."""
        entry = self.held.get(key)
        return entry[0] if entry is not None and entry[1] > self.clock() else None


class MemoryLease(_Renewing):
    """A lease in a ``MemoryLeaseTable`` (same semantics as ``RedisLease``)."""

    def __init__(self, table: MemoryLeaseTable, key: str, ttl_s: float = DEFAULT_TTL_S) -> None:
        super().__init__(key, ttl_s)
        self.table = table

    def owns(self) -> bool:
        """Whether this lease's current token holds the key now (the fencing check)."""
        return bool(self.token) and self.table.owner(self.key) == self.token

    async def _set_nx(self, token: str) -> bool:
        if self.table.owner(self.key) is not None:
            return False
        self.table.held[self.key] = (token, self.table.clock() + self.ttl_s)
        return True

    async def _renew(self, token: str) -> bool:
        if self.table.owner(self.key) != token:
            return False
        self.table.held[self.key] = (token, self.table.clock() + self.ttl_s)
        return True

    async def _release(self, token: str) -> None:
        if self.table.owner(self.key) == token:
            del self.table.held[self.key]


async def _sleep_or_stop(seconds: float, stop: asyncio.Event | None) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
