"""Where the router reads what the learning loop records: reward totals, timeline, pushes
and the joiner's counters.

The router never learns and never imports ``reward_ingest``; it reads the keys the
learner, the weight pusher and the joiner write (layout: ``common.learner_stats``, names:
``common.storage.keys``; the joiner's counters: ``bandit:join:counts:E``, a hash of
counter name -> integer). On Redis, ``RedisStatsSource`` reads them with its own small
client (1 s timeouts, no retries: a stats page can say "unavailable"). In one process
(``memory://``), the composition root hands ``create_app`` the ``MemoryLearnerStats``
the embedded ingester writes; a plain ``memory://`` router with no ingester has no
source, so reward figures are null.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from common.storage.backends import reply
from common.storage.keys import JOIN_COUNTS_PREFIX, pushes_key, stats_key, timeline_key

TIMEOUT_S = 1.0


class StatsSource(Protocol):
    """What ``/stats``, ``/timeline`` and the dashboard read (``MemoryLearnerStats`` fits)."""

    async def read_totals(self, experiment: str) -> dict[str, float]: ...
    async def read_timeline(self, experiment: str) -> list[str]: ...
    async def read_pushes(self, experiment: str) -> list[str]: ...
    async def read_join_counts(self, experiment: str) -> dict[str, int]: ...


class RedisStatsSource:
    """Reads ``bandit:stats:E``, ``bandit:timeline:E``, ``bandit:pushes:E`` and
    ``bandit:join:counts:E``."""

    def __init__(self, url: str) -> None:
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S, retry_on_timeout=False)

    async def read_totals(self, experiment: str) -> dict[str, float]:
        raw: dict[str, str] = await reply(self._redis.hgetall(stats_key(experiment)))
        return {name: float(value) for name, value in raw.items()}

    async def read_timeline(self, experiment: str) -> list[str]:
        points: list[str] = await reply(self._redis.lrange(timeline_key(experiment), 0, -1))
        return points

    async def read_pushes(self, experiment: str) -> list[str]:
        records: list[str] = await reply(self._redis.lrange(pushes_key(experiment), 0, -1))
        return records

    async def read_join_counts(self, experiment: str) -> dict[str, int]:
        raw: dict[str, str] = await reply(self._redis.hgetall(JOIN_COUNTS_PREFIX + experiment))
        return {name: int(value) for name, value in raw.items()}

    async def close(self) -> None:
        await self._redis.aclose()


def open_stats_source(url: str) -> RedisStatsSource | None:
    """The reader for the store at ``url``: Redis, or None for ``memory://`` (no learner
    here unless the composition root passes one)."""
    if urlsplit(url).scheme in ("redis", "rediss"):
        return RedisStatsSource(url)
    return None
