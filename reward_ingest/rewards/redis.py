"""The rewards log on the Redis stream ``bandit:rewards``: group commit, dedupe, trimming.

Every ``add`` hands its rewards to a group commit (``common.storage.group_commit``) and awaits
its own future: alone, the caller writes them at once; otherwise the rewards queued
while a write was in flight (up to ``MAX_BATCH``) go together in one round trip
through one Lua script call that, per reward, sets its seen-marker with ``SET NX EX`` and
``XADD``s it (``MAXLEN ~``) only when that set succeeded, answering a 0/1 flag per
reward. So N concurrent deliveries cost about one round trip, and a reward identity
reaches the stream once however often it is delivered, concurrently or not, and even
when a reply was lost after Redis wrote the batch (the retry finds the markers).

There is no local spool, unlike the decision log: a reward comes from a webhook
sender that keeps it until it gets a 2xx, so when Redis fails (refused, a 1 s
timeout, any Redis error) ``add`` raises ``RewardStoreUnavailableError``, the webhook
answers 503, and the sender's retry is deduped. A seen-marker costs Redis about
150 bytes with its TTL (redis 7.0: 100,000 markers raised ``used_memory`` by 149 bytes
each; ``test_seen_marker_memory`` measures it again): ~2.6 GB for two days at
100 rewards/s, so lower ``seen_ttl_s`` for high rates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError

from common import redis_errors
from common.storage.backends import describe, redis_client
from common.storage.group_commit import GroupCommit
from common.storage.keys import REWARDS_STREAM
from common.storage.streams import read_after
from reward_ingest.errors import RewardStoreUnavailableError

from .base import DEFAULT_SEEN_TTL_S, Reward, decode_reward, encode_reward, seen_key, stored_object

__all__ = ["DEFAULT_STREAM_MAXLEN", "MAX_BATCH", "RedisRewardStore"]

logger = logging.getLogger(__name__)

MAX_BATCH = 1024
CONNECT_TIMEOUT_S = 0.5
OP_TIMEOUT_S = 1.0
DEFAULT_STREAM_MAXLEN = 1_000_000
"""Approximate trimming: the joiner must read rewards before a million more arrive."""

# KEYS[1]: the stream; KEYS[i > 1]: the seen-marker of the reward in ARGV[i + 1].
# ARGV[1]: MAXLEN (approximate trimming), ARGV[2]: the markers' TTL in seconds.
# Answers one flag per reward: 1 added, 0 already seen.
DEDUPE_XADD = """
local added = {}
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[2]) then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'reward', ARGV[i + 1])
    added[i - 1] = 1
  else
    added[i - 1] = 0
  end
end
return added
"""

_Entry = tuple[list[str], list[str], "asyncio.Future[tuple[int, int]]"]  # keys, lines, future


class RedisRewardStore:
    """Rewards on the ``bandit:rewards`` stream of the Redis at ``url``."""

    def __init__(self, url: str, *, seen_ttl_s: int = DEFAULT_SEEN_TTL_S,
                 stream_maxlen: int = DEFAULT_STREAM_MAXLEN) -> None:
        if seen_ttl_s < 1:
            raise ValueError(f"seen_ttl_s must be at least 1 s, got {seen_ttl_s}")
        self._where = describe(url)
        self._redis = redis_client(url, connect_timeout_s=CONNECT_TIMEOUT_S,
                                   timeout_s=OP_TIMEOUT_S, decode_responses=True)
        self._script = self._redis.register_script(DEDUPE_XADD)
        self._seen_ttl_s = seen_ttl_s
        self._maxlen = stream_maxlen
        self._batches = GroupCommit(self._commit, _unexpected, max_batch=MAX_BATCH,
                                    name="reward-flusher", size=_size)
        self.flushes = 0
        """Round trips that wrote rewards (one per batch of queued ``add`` calls)."""

    async def start(self) -> None:
        """Start the flusher; an unreachable Redis is logged, and ``add`` will fail."""
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            redis_errors.count("reward_store")
            logger.warning("%s unreachable at start (%s); rewards get 503 until it answers",
                           self._where, exc)
        self._batches.start()

    async def close(self) -> None:
        """Write what is queued, stop the flusher, close the connections."""
        if not await self._batches.close():
            return
        await self._redis.aclose()

    async def add(self, rewards: list[Reward]) -> tuple[int, int]:
        """Record the rewards whose identity is new; ``(accepted, duplicates)``."""
        if not self._batches.running:
            raise RuntimeError("the reward store is not running")
        if not rewards:
            return 0, 0
        entry: _Entry = ([seen_key(r) for r in rewards], [encode_reward(r) for r in rewards],
                         asyncio.get_running_loop().create_future())
        await self._batches.submit(entry)
        return await entry[2]

    async def read(self, count: int, after: str = "0") -> list[tuple[str, Reward]]:
        """Up to ``count`` (stream id, reward) after ``after``, oldest first (XRANGE)."""
        return [(stream_id, decode_reward(fields["reward"]))
                for stream_id, fields in await self._xrange(count, after)]

    async def read_rewards(self, count: int,
                           after: str = "0") -> list[tuple[str, dict[str, Any]]]:
        """Like ``read``, each reward as its stored JSON object, unvalidated."""
        return [(stream_id, stored_object(fields.get("reward", "")))
                for stream_id, fields in await self._xrange(count, after)]

    async def _xrange(self, count: int, after: str) -> list[tuple[str, dict[str, str]]]:
        entries: list[tuple[str, dict[str, str]]] = await read_after(
            self._redis, REWARDS_STREAM, after, count)
        return entries

    async def _commit(self, batch: list[_Entry]) -> None:
        """Write ``batch`` in one round trip and settle its callers; a Redis failure
        fails them all (their senders retry, and the markers dedupe the retry)."""
        try:
            flags = await self._write(batch)
        except (RedisError, OSError) as exc:
            redis_errors.count("reward_store")
            logger.warning("%s: reward batch failed (%s)", self._where, exc)
            _fail(batch, RewardStoreUnavailableError(
                f"reward store unavailable ({self._where}); retry later"))
            return
        self.flushes += 1
        _settle(batch, flags)

    async def _write(self, batch: Sequence[_Entry]) -> list[int]:
        keys = [REWARDS_STREAM]
        args: list[str | int] = [self._maxlen, self._seen_ttl_s]
        for entry_keys, lines, _ in batch:
            keys.extend(entry_keys)
            args.extend(lines)
        flags = await self._script(keys=keys, args=args)
        return [int(flag) for flag in flags]


def _size(entry: _Entry) -> int:
    return len(entry[1])  # rewards, for MAX_BATCH


def _unexpected(batch: Sequence[_Entry], exc: Exception) -> None:
    _fail(batch, RewardStoreUnavailableError(f"reward store failed: {exc}"))


def _settle(batch: Sequence[_Entry], flags: Sequence[int]) -> None:
    """Give each caller its own ``(accepted, duplicates)`` out of the batch's flags."""
    offset = 0
    for _, lines, future in batch:
        added = sum(flags[offset:offset + len(lines)])
        offset += len(lines)
        if not future.done():  # a caller that went away: its rewards are still written
            future.set_result((added, len(lines) - added))


def _fail(batch: Sequence[_Entry], error: BaseException) -> None:
    for _, _, future in batch:
        if not future.done():
            future.set_exception(error)
