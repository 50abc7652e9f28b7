"""The learner on Redis: checkpoint, publication and fencing in one Lua script.

Keys per experiment ``E``:

| key | holds |
| --- | --- |
| ``bandit:learner:E:lease`` | the active learner's token (``RedisLease``, default TTL 5 s) |
| ``bandit:learner:E:checkpoint`` hash | ``snapshot``, ``offset`` (last ``bandit:joined`` id |
| | applied), ``version`` (the published version it matches), ``policy_version`` |
| ``bandit:policy:E`` hash | ``version`` (publication counter, ``HINCRBY``), ``snapshot``: |
| | what routers load |
| channel ``bandit:policy:changed`` | ``E`` is published after each new snapshot |
| ``bandit:stats:E`` hash | reward totals per variant (``HINCRBYFLOAT``), |
| | ``bandit:timeline:E`` list: timeline points (``common.learner_stats``) |

``CHECKPOINT`` checks the lease token first and writes nothing if it is not this
learner's, so a learner that lost its lease (paused, cut off, expired) can never
overwrite its successor's progress. The reward totals and timeline point of a batch
are written by the same script, so they are counted exactly once with the events that
produced them (a replayed batch was never checkpointed). The snapshot is published by
``common.storage.snapshots``' Lua function, the one way to publish on Redis; routers
read it through ``router.registry``. The names are in ``common.storage.keys``.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from common.learner_stats import TIMELINE_MAXLEN
from common.storage.backends import reply
from common.storage.keys import (
    learner_checkpoint_key,
    learner_lease_key,
    policy_key,
    stats_key,
    timeline_key,
)
from common.storage.snapshots import PUBLISH_SNAPSHOT_LUA
from common.storage.streams import as_text
from reward_ingest.joiner.redis import RedisJoinedLog
from reward_ingest.lease import RedisLease
from reward_ingest.stats_sink import RewardTally

from .base import Checkpoint, LearnerLoop, LearnerSettings

# KEYS: lease, checkpoint, published policy, reward totals, timeline. ARGV: token, snapshot,
# offset, publish (0/1), experiment, policy version, timeline point ('' = none), timeline
# bound, then (totals field, increment) pairs. Returns the published version, or -1 if
# fenced (then nothing at all is written).
CHECKPOINT = PUBLISH_SNAPSHOT_LUA + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
for i = 9, #ARGV, 2 do
  redis.call('HINCRBYFLOAT', KEYS[4], ARGV[i], ARGV[i + 1])
end
if ARGV[7] ~= '' then
  redis.call('RPUSH', KEYS[5], ARGV[7])
  redis.call('LTRIM', KEYS[5], -tonumber(ARGV[8]), -1)
end
local version = tonumber(redis.call('HGET', KEYS[2], 'version') or '0')
if ARGV[4] == '1' then
  version = publish_snapshot(KEYS[3], ARGV[2], ARGV[5])
end
redis.call('HSET', KEYS[2], 'snapshot', ARGV[2], 'offset', ARGV[3], 'version', version,
           'policy_version', ARGV[6])
return version
"""


class RedisLearner(LearnerLoop):
    """One experiment's learner over ``bandit:joined`` (client without decode_responses)."""

    def __init__(self, client: aioredis.Redis, settings: LearnerSettings) -> None:
        super().__init__(settings, RedisLease(client, learner_lease_key(settings.experiment),
                                              settings.lease_ttl_s), RedisJoinedLog(client))
        self._redis = client
        self._checkpoint = client.register_script(CHECKPOINT)
        name = settings.experiment
        self._keys = [learner_lease_key(name), learner_checkpoint_key(name), policy_key(name),
                      stats_key(name), timeline_key(name)]

    @classmethod
    def from_url(cls, url: str, settings: LearnerSettings, **options: Any) -> RedisLearner:
        """A learner with its own client (bytes: snapshots are binary-safe)."""
        return cls(aioredis.Redis.from_url(url, **options), settings)

    async def close(self) -> None:
        """Release the lease and the connection."""
        await super().close()
        await self._redis.aclose()

    async def _load(self) -> Checkpoint | None:
        snapshot, offset, version = await reply(self._redis.hmget(
            self._keys[1], ["snapshot", "offset", "version"]))
        if snapshot is None or offset is None:
            return None
        return Checkpoint(bytes(snapshot), as_text(offset), int(version or 0))

    async def stored_offset(self) -> str:
        """The checkpoint's offset alone (the snapshot can be large)."""
        offset = await reply(self._redis.hget(self._keys[1], "offset"))
        return as_text(offset) if offset is not None else "0"

    async def _save(self, snapshot: bytes, offset: str, *, publish: bool,
                    rewards: RewardTally | None = None, point: str | None = None) -> int | None:
        policy_version = self.policy.version if self.policy is not None else 0
        args: list[Any] = [self.lease.token, snapshot, offset, "1" if publish else "0",
                           self.settings.experiment, policy_version, point or "",
                           TIMELINE_MAXLEN]
        if rewards is not None:
            for name, delta in rewards.deltas():
                args += [name, repr(delta)]
        version = int(await self._checkpoint(keys=self._keys, args=args))
        return None if version < 0 else version
