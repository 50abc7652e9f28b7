"""The registry in Redis, shared by every router replica (and the learner, for snapshots).

Layout (the names are in ``common.storage.keys``):

- ``bandit:experiments`` hash, name → config JSON; ``bandit:experiments:revision``
  counter; ``bandit:experiments:deleted`` set (tombstones, so a restarting router
  does not re-seed an experiment deleted through the admin API). Every change is one
  Lua script: check the expected revision, write, ``INCR`` the revision, ``PUBLISH``
  it on ``bandit:experiments:changed``; a reader never sees a change without its bump.
- ``bandit:policy:{experiment}`` hash {version, snapshot}: the learner's checkpoint
  bumps the version, stores the bytes and ``PUBLISH``es the name on
  ``bandit:policy:changed`` in one script (``common.storage.snapshots``); the registry
  only reads it.

Pub/sub only makes changes prompt: a message lost while a connection was down is
caught by the watcher's poll (``poll``: one pipelined round trip), so it is never fatal.
Calls use redis-py's asyncio client with 1 s timeouts and no retries (the watcher retries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from common import redis_errors
from common.config import ExperimentConfig
from common.storage.backends import describe, redis_client
from common.storage.keys import (
    DELETED_KEY,
    EXPERIMENTS_CHANNEL,
    EXPERIMENTS_KEY,
    POLICY_CHANNEL,
    REVISION_KEY,
    policy_key,
)
from common.storage.snapshots import Snapshot

from ..errors import RegistryConflictError, RegistryUnavailableError
from .base import RegistryView, config_json, parse_config

TIMEOUT_S = 1.0

# KEYS: experiments hash, revision, deleted set. ARGV: op (put|delete), name, config JSON,
# expected revision ('' = any), channel. Returns {status, revision}: status 1 done,
# 0 conflict (revision moved), -1 nothing to delete.
CHANGE = """
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[4] ~= '' and tonumber(ARGV[4]) ~= current then return {0, current} end
if ARGV[1] == 'put' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
  redis.call('SREM', KEYS[3], ARGV[2])
else
  if redis.call('HDEL', KEYS[1], ARGV[2]) == 0 then return {-1, current} end
  redis.call('SADD', KEYS[3], ARGV[2])
end
local revision = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[5], revision)
return {1, revision}
"""

# KEYS as CHANGE. ARGV: channel, then name, config JSON pairs. Returns how many were added.
SEED = """
local added = 0
for i = 2, #ARGV, 2 do
  if redis.call('SISMEMBER', KEYS[3], ARGV[i]) == 0
      and redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    added = added + 1
  end
end
if added > 0 then
  redis.call('PUBLISH', ARGV[1], redis.call('INCR', KEYS[2]))
end
return added
"""

class _Feed:
    """Messages on both channels, read by the watcher itself (no extra task)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._pubsub: PubSub | None = None

    async def wait(self, timeout_s: float) -> None:
        try:
            if self._pubsub is None:
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                self._pubsub = pubsub
                await pubsub.subscribe(EXPERIMENTS_CHANNEL, POLICY_CHANNEL)
            message = await self._pubsub.get_message(timeout=timeout_s)
            while message is not None:  # drain: one refresh covers every notice
                message = await self._pubsub.get_message(timeout=0.0)
        except (RedisError, OSError):
            redis_errors.count("registry")
            # Redis is down: the watcher's poll reports it; resubscribe next time.
            await self.close()
            await asyncio.sleep(timeout_s)

    async def close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with suppress(RedisError, OSError):  # the connection is gone already
                await pubsub.aclose()  # type: ignore[no-untyped-call]


class RedisRegistry:
    """The registry on the Redis at ``url`` (``redis://host:port/db``)."""

    def __init__(self, url: str) -> None:
        self._where = describe(url)
        self._redis = redis_client(url, connect_timeout_s=TIMEOUT_S, timeout_s=TIMEOUT_S)
        # Pub/sub waits longer than any socket timeout, so it gets a client without one.
        self._listener = redis_client(url, connect_timeout_s=TIMEOUT_S, timeout_s=None)
        self._change = self._redis.register_script(CHANGE)
        self._seed = self._redis.register_script(SEED)

    async def start(self) -> None:
        """Nothing to do up front: connections open on first use."""

    async def close(self) -> None:
        await self._redis.aclose()
        await self._listener.aclose()

    def describe(self) -> str:
        return self._where

    async def read(self) -> RegistryView:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(REVISION_KEY)
            pipe.hgetall(EXPERIMENTS_KEY)
            revision, stored = await self._run(pipe.execute())
        experiments = {name.decode(): parse_config(text) for name, text in stored.items()}
        return RegistryView(int(revision or 0), experiments)

    async def poll(self, experiments: Sequence[str]) -> tuple[int, dict[str, int]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(REVISION_KEY)
            for name in experiments:
                pipe.hget(policy_key(name), "version")
            revision, *versions = await self._run(pipe.execute())
        return int(revision or 0), {name: int(version or 0)
                                    for name, version in zip(experiments, versions, strict=True)}

    async def seed(self, configs: Sequence[ExperimentConfig]) -> int:
        args: list[str] = [EXPERIMENTS_CHANNEL]
        for config in configs:
            args += [config.name, config_json(config)]
        added = await self._run(self._seed(keys=_KEYS, args=args))
        return int(added)

    async def put(self, config: ExperimentConfig, *, expect_revision: int | None = None) -> int:
        status, revision = await self._run(self._change(keys=_KEYS, args=[
            "put", config.name, config_json(config), _expected(expect_revision),
            EXPERIMENTS_CHANNEL]))
        return _changed(int(status), int(revision), expect_revision)

    async def delete(self, name: str, *, expect_revision: int | None = None) -> int | None:
        status, revision = await self._run(self._change(keys=_KEYS, args=[
            "delete", name, "", _expected(expect_revision), EXPERIMENTS_CHANNEL]))
        if int(status) == -1:
            return None
        return _changed(int(status), int(revision), expect_revision)

    async def snapshot(self, experiment: str) -> Snapshot | None:
        version, blob = await self._run(
            self._redis.hmget(policy_key(experiment), ["version", "snapshot"]))
        if version is None or blob is None:
            return None
        return Snapshot(int(version), bytes(blob))

    def changes(self) -> _Feed:
        return _Feed(self._listener)

    async def _run(self, call: Any) -> Any:
        try:
            return await call
        except (RedisError, OSError) as exc:
            redis_errors.count("registry")
            raise RegistryUnavailableError(f"{self._where}: {type(exc).__name__}: {exc}") from exc


_KEYS = [EXPERIMENTS_KEY, REVISION_KEY, DELETED_KEY]


def _expected(revision: int | None) -> str:
    return "" if revision is None else str(revision)


def _changed(status: int, revision: int, expected: int | None) -> int:
    if status == 0:
        raise RegistryConflictError(f"registry is at revision {revision}, not {expected}")
    return revision
