"""The learner on Redis: checkpoint, publication and fencing in one Lua script.

Keys per experiment ``E``:

| key | holds |
| --- | --- |
| ``bandit:learner:E:lease`` | the active learner's token (``lease.RedisLease``, default TTL 5 s) |
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
produced them (a replayed batch was never checkpointed). The published layout is the one
``router.registry.redis_registry.publish_snapshot`` writes (same script shape).
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from common.learner_stats import TIMELINE_MAXLEN, stats_key, timeline_key

from .join_rules import JoinedEvent
from .joiner_redis import JOINED_STREAM
from .learner import Checkpoint, LearnerLoop, LearnerSettings
from .lease import RedisLease
from .stats_sink import RewardTally

POLICY_PREFIX = "bandit:policy:"
POLICY_CHANNEL = "bandit:policy:changed"

# KEYS: lease, checkpoint, published policy, reward totals, timeline. ARGV: token, snapshot,
# offset, publish (0/1), channel, experiment, policy version, timeline point ('' = none),
# timeline bound, then (totals field, increment) pairs. Returns the published version, or
# -1 if fenced (then nothing at all is written).
CHECKPOINT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
for i = 10, #ARGV, 2 do
  redis.call('HINCRBYFLOAT', KEYS[4], ARGV[i], ARGV[i + 1])
end
if ARGV[8] ~= '' then
  redis.call('RPUSH', KEYS[5], ARGV[8])
  redis.call('LTRIM', KEYS[5], -tonumber(ARGV[9]), -1)
end
local version = tonumber(redis.call('HGET', KEYS[2], 'version') or '0')
if ARGV[4] == '1' then
  version = redis.call('HINCRBY', KEYS[3], 'version', 1)
  redis.call('HSET', KEYS[3], 'snapshot', ARGV[2])
  redis.call('PUBLISH', ARGV[5], ARGV[6])
end
redis.call('HSET', KEYS[2], 'snapshot', ARGV[2], 'offset', ARGV[3], 'version', version,
           'policy_version', ARGV[7])
return version
"""


def lease_key(experiment: str) -> str:
    """``bandit:learner:{experiment}:lease``."""
    return f"bandit:learner:{experiment}:lease"


def checkpoint_key(experiment: str) -> str:
    """``bandit:learner:{experiment}:checkpoint``."""
    return f"bandit:learner:{experiment}:checkpoint"


class RedisLearner(LearnerLoop):
    """One experiment's learner over ``bandit:joined`` (client without decode_responses)."""

    def __init__(self, client: aioredis.Redis, settings: LearnerSettings) -> None:
        super().__init__(settings, RedisLease(client, lease_key(settings.experiment),
                                              settings.lease_ttl_s))
        self._redis = client
        self._checkpoint = client.register_script(CHECKPOINT)
        self._keys = [lease_key(settings.experiment), checkpoint_key(settings.experiment),
                      POLICY_PREFIX + settings.experiment, stats_key(settings.experiment),
                      timeline_key(settings.experiment)]

    @classmethod
    def from_url(cls, url: str, settings: LearnerSettings, **options: Any) -> RedisLearner:
        """A learner with its own client (bytes: snapshots are binary-safe)."""
        return cls(aioredis.Redis.from_url(url, **options), settings)

    async def close(self) -> None:
        """Release the lease and the connection."""
        await self.lease.release()
        await self._redis.aclose()

    async def _load(self) -> Checkpoint | None:
        snapshot, offset, version = await _wait(self._redis.hmget(
            self._keys[1], ["snapshot", "offset", "version"]))
        if snapshot is None or offset is None:
            return None
        return Checkpoint(bytes(snapshot), _text(offset), int(version or 0))

    async def _read(self, after: str, count: int) -> list[tuple[str, JoinedEvent | None]]:
        start = "-" if after in ("0", "-") else f"({after}"
        entries = await self._redis.xrange(JOINED_STREAM, min=start, count=count)
        return [(_text(stream_id), _parse(fields)) for stream_id, fields in entries]

    async def _save(self, snapshot: bytes, offset: str, *, publish: bool,
                    rewards: RewardTally | None = None, point: str | None = None) -> int | None:
        policy_version = self.policy.version if self.policy is not None else 0
        args: list[Any] = [self.lease.token, snapshot, offset, "1" if publish else "0",
                           POLICY_CHANNEL, self.settings.experiment, policy_version,
                           point or "", TIMELINE_MAXLEN]
        if rewards is not None:
            for name, delta in rewards.deltas():
                args += [name, repr(delta)]
        version = int(await self._checkpoint(keys=self._keys, args=args))
        return None if version < 0 else version


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _parse(fields: dict[bytes, bytes]) -> JoinedEvent | None:
    try:
        return JoinedEvent.from_fields(fields)
    except ValueError:  # skipped (and counted) by the learner, never wedging it
        return None


async def _wait(call: Any) -> Any:
    """Await a redis-py call (its stubs type commands as maybe-awaitable)."""
    return await call
