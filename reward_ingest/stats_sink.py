"""What the learner and the pusher record for ``/stats``, ``/timeline`` and the dashboard.

- ``RewardTally``: one batch's learned rewards per variant. The learner hands its
  deltas (``V:n``, ``V:sum``, ``V:sumsq``, ``V:defaults``, ``V:errors``, ``V:served``,
  ``V:lat:I``) to the checkpoint, which adds
  them in the same atomic step (Redis: ``HINCRBYFLOAT`` inside the checkpoint script;
  memory: the same synchronous step), so a crash and replay never counts twice.
- ``TimelineBuffer``: folds batches into timeline points, at most one per
  ``interval_s``; the point rides with the checkpoint that closes the interval. What
  was learned since the last point is held in memory, so a crash loses that part of
  the (display-only) series, never the totals.
- ``push_recorder``: turns the pusher's ``PushRecord``s into ``bandit:pushes:{E}``
  entries (Redis ``RPUSH`` + ``LTRIM``, or the memory twin).

Key layout and point format: ``common.learner_stats``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bandit import BanditError, Policy
from common import redis_errors
from common.learner_stats import (
    PUSHES_MAXLEN,
    MemoryLearnerStats,
    latency_bucket,
    total_field,
)
from common.storage.keys import pushes_key

logger = logging.getLogger(__name__)

TIMELINE_INTERVAL_S = 1.0
FAILED_OUTCOMES = frozenset({"model_error", "unavailable", "not_ready"})
"""Decision outcomes that count as the variant failing (the guardrails count the same)."""


class RewardTally:
    """Learned rewards per variant, plus the probabilities the router served them with."""

    __slots__ = ("errors", "events", "latencies", "served", "variants")

    def __init__(self) -> None:
        self.variants: dict[str, list[float]] = {}
        """variant -> [n, sum, sumsq, defaults]."""
        self.errors: dict[str, float] = {}
        """variant -> events whose invocation failed (``FAILED_OUTCOMES``)."""
        self.latencies: dict[tuple[str, int], float] = {}
        """(variant, ``latency_bucket``) -> invocations (decision-only events have none)."""
        self.served: dict[str, float] = {}
        """variant -> sum of the logged probability of it, over the events."""
        self.events = 0

    def add(self, arm: str, reward: float, default: bool, probabilities: Any,
            outcome: Any = None, latency_ms: Any = None) -> None:
        """One learned event: ``arm`` earned ``reward``; ``probabilities``, ``outcome`` and
        ``latency_ms`` as logged."""
        row = self.variants.get(arm)
        if row is None:
            row = self.variants[arm] = [0.0, 0.0, 0.0, 0.0]
        row[0] += 1.0
        row[1] += reward
        row[2] += reward * reward
        if default:
            row[3] += 1.0
        self.events += 1
        if outcome in FAILED_OUTCOMES:
            self.errors[arm] = self.errors.get(arm, 0.0) + 1.0
        if isinstance(latency_ms, int | float) and not isinstance(latency_ms, bool):
            key = (arm, latency_bucket(float(latency_ms)))
            self.latencies[key] = self.latencies.get(key, 0.0) + 1.0
        if isinstance(probabilities, dict):
            served = self.served
            for name, p in probabilities.items():
                if isinstance(p, int | float):
                    served[name] = served.get(name, 0.0) + p

    def merge(self, other: RewardTally) -> None:
        """Add ``other``'s counts to this one."""
        for arm, row in other.variants.items():
            mine = self.variants.setdefault(arm, [0.0, 0.0, 0.0, 0.0])
            for i, value in enumerate(row):
                mine[i] += value
        for arm, value in other.served.items():
            self.served[arm] = self.served.get(arm, 0.0) + value
        for arm, value in other.errors.items():
            self.errors[arm] = self.errors.get(arm, 0.0) + value
        for key, value in other.latencies.items():
            self.latencies[key] = self.latencies.get(key, 0.0) + value
        self.events += other.events

    def deltas(self) -> list[tuple[str, float]]:
        """The (hash field, increment) pairs for ``bandit:stats:{E}``."""
        pairs = []
        for arm, (n, total, squares, defaults) in self.variants.items():
            pairs += [(total_field(arm, "n"), n), (total_field(arm, "sum"), total),
                      (total_field(arm, "sumsq"), squares)]
            if defaults:
                pairs.append((total_field(arm, "defaults"), defaults))
        pairs += [(total_field(arm, "errors"), errors) for arm, errors in self.errors.items()]
        # Every offered variant's logged probability, chosen or not: the expected count
        # the sample-ratio check compares the learned counts with.
        pairs += [(total_field(arm, "served"), served) for arm, served in self.served.items()
                  if served]
        pairs += [(total_field(arm, f"lat:{bucket}"), count)
                  for (arm, bucket), count in self.latencies.items()]
        return pairs


class TimelineBuffer:
    """Learned batches since the last timeline point; a point once ``interval_s`` passed."""

    def __init__(self, interval_s: float = TIMELINE_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.pending = RewardTally()
        self.last_at: float | None = None

    def reset(self) -> None:
        """Forget what was pending (the learner restored its checkpoint)."""
        self.pending = RewardTally()

    def point(self, policy: Policy, now: float, batch: RewardTally | None = None) -> str | None:
        """The point that would close the interval with ``batch`` now (None: not due).

        Changes nothing: call ``committed`` once the checkpoint carrying it is written.
        """
        events = self.pending.events + (batch.events if batch is not None else 0)
        if events == 0 or (self.last_at is not None and now - self.last_at < self.interval_s):
            return None
        merged = RewardTally()
        merged.merge(self.pending)
        if batch is not None:
            merged.merge(batch)
        probabilities: Mapping[str, float] | None = None
        if not policy.contextual:
            try:
                probabilities = policy.probabilities(None, None)
            except BanditError:
                probabilities = None
        variants: dict[str, dict[str, float]] = {}
        for arm in dict.fromkeys([*policy.arms, *merged.variants]):
            n, total, _, defaults = merged.variants.get(arm, (0.0, 0.0, 0.0, 0.0))
            entry = {"n": n, "sum": total, "defaults": defaults,
                     "served": merged.served.get(arm, 0.0) / merged.events}
            if probabilities is not None:
                entry["probability"] = probabilities.get(arm, 0.0)
            variants[arm] = entry
        return json.dumps({"t": round(now, 3), "policy_version": policy.version,
                           "events": merged.events, "variants": variants},
                          separators=(",", ":"))

    def committed(self, batch: RewardTally | None, emitted: bool, now: float) -> None:
        """The checkpoint with ``batch`` (and the point, if ``emitted``) is written."""
        if emitted:
            self.pending = RewardTally()
            self.last_at = now
        elif batch is not None and batch.events:
            self.pending.merge(batch)


class PushLog(Protocol):
    """Where push records go (``RedisPushLog`` or ``MemoryLearnerStats``)."""

    def append_push(self, experiment: str, record: str) -> Any: ...


class RedisPushLog:
    """``bandit:pushes:{E}``: RPUSH + LTRIM in one MULTI."""

    def __init__(self, client: aioredis.Redis, maxlen: int = PUSHES_MAXLEN) -> None:
        self._redis = client
        self._maxlen = maxlen

    async def append_push(self, experiment: str, record: str) -> None:
        key = pushes_key(experiment)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, record)
            pipe.ltrim(key, -self._maxlen, -1)
            await pipe.execute()


def push_recorder(log: PushLog | MemoryLearnerStats, experiment: str
                  ) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """The pusher's ``on_record`` hook for ``experiment``: store failures are logged, never
    raised (a lost record only thins the stats; the push itself happened or not)."""

    async def record(data: dict[str, Any]) -> None:
        text = json.dumps(data, separators=(",", ":"))
        try:
            result = log.append_push(experiment, text)
            if isinstance(result, Awaitable):
                await result
        except (RedisError, OSError) as exc:
            redis_errors.count("push_log")
            logger.warning("could not record a weights push for %s: %s", experiment, exc)

    return record
