"""Learner and joiner throughput on a real Redis, with their references (``bench/loop.py``).

Each function times one round and returns seconds; the caller alternates ours and the
reference round by round and takes medians. Pre-filling is never timed.

- ``redis_learner`` / ``memory_learner``: a fresh learner (no checkpoint) restores,
  then steps until the joined stream is exhausted; every batch is checkpointed (and
  published: every batch learns something), as in production.
- ``xrange_read``: reading the same ``bandit:joined`` entries with XRANGE in the
  learner's batch size, nothing else (bytes client, like ``RedisLearner``);
  ``xrange_parse`` adds what any consumer must do with them: ``JoinedEvent`` and the
  decision's JSON.
- ``vw_learn``: ``vowpalwabbit.Workspace.learn`` on the same events, pre-formatted as
  text, in a fresh workspace with the arguments our policy gives VW.
- ``redis_joiner``: ``RedisJoiner.step`` until every decision is joined (aggregate
  ``first``: the join happens when the reward is applied).
- ``raw_join_io``: the joiner's Redis I/O floor: XRANGE both input streams in the
  joiner's batch size and XADD one joined entry per pair, pipelined per batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import _common
import redis.asyncio as aioredis
import vowpalwabbit
from _loop_data import ARMS, EXPERIMENT, ONLINE_COVER, SEED, Event, joined_entry, reward_entry

from bandit import make_policy
from common.storage.keys import (
    DECISIONS_STREAM,
    JOINED_STREAM,
    LEARNER_PREFIX,
    POLICY_PREFIX,
    REWARDS_STREAM,
)
from reward_ingest.join_rules import JoinedEvent, JoinRule
from reward_ingest.joiner import BATCH as JOINER_BATCH
from reward_ingest.joiner import JoinedLog, RedisJoiner
from reward_ingest.learner import BATCH as LEARNER_BATCH
from reward_ingest.learner import LearnerSettings, MemoryCheckpoints, MemoryLearner, RedisLearner
from reward_ingest.lease import MemoryLeaseTable

PIPELINE = 1000  # entries per pipelined round trip when pre-filling
REFERENCE_STREAM = "bench:reference:joined"
RULES = {EXPERIMENT: JoinRule(mode="first", min=0.0, max=1.0, default=0.0,
                              wait_seconds=600.0)}


def settings(policy: dict[str, Any]) -> LearnerSettings:
    """The learner's settings: production batch (1,000) and lease."""
    return LearnerSettings(EXPERIMENT, policy, ARMS, seed=SEED, batch=LEARNER_BATCH)


async def _xadd_all(client: aioredis.Redis, stream: str,
                    entries: Sequence[dict[str, str]]) -> None:
    for start in range(0, len(entries), PIPELINE):
        pipe = client.pipeline(transaction=False)
        for fields in entries[start:start + PIPELINE]:
            pipe.xadd(stream, fields)  # type: ignore[arg-type]
        await pipe.execute()


async def fill_joined(url: str, items: Sequence[Event]) -> None:
    """An empty Redis, then ``items`` as ``bandit:joined`` entries."""
    client = aioredis.Redis.from_url(url)
    try:
        await client.flushdb()
        now = time.time()
        await _xadd_all(client, JOINED_STREAM, [joined_entry(e, now) for e in items])
    finally:
        await client.aclose()


async def fill_inputs(url: str, items: Sequence[Event]) -> None:
    """An empty Redis, then every decision, then every reward (the webhook's entries)."""
    client = aioredis.Redis.from_url(url)
    try:
        await client.flushdb()
        now = time.time()
        await _xadd_all(client, DECISIONS_STREAM, [{"event": e.decision_json} for e in items])
        await _xadd_all(client, REWARDS_STREAM, [reward_entry(e, now) for e in items])
    finally:
        await client.aclose()


async def _reset_learner(client: aioredis.Redis) -> None:
    keys = [key async for key in client.scan_iter(match=LEARNER_PREFIX + "*")]
    keys += [key async for key in client.scan_iter(match=POLICY_PREFIX + "*")]
    if keys:
        await client.delete(*keys)


async def redis_learner(url: str, policy: dict[str, Any], n: int) -> float:
    """A fresh ``RedisLearner`` learning every joined entry: seconds, checkpoints included."""
    client = aioredis.Redis.from_url(url)
    await _reset_learner(client)
    learner = RedisLearner(client, settings(policy))
    try:
        if not await learner.lease.acquire():
            raise RuntimeError("learner lease not acquired")
        async with learner.lease.keep():
            start = time.perf_counter()
            await learner.restore()
            while await learner.step():
                pass
            elapsed = time.perf_counter() - start
    finally:
        await learner.close()
    if learner.counters.learned != n:
        raise RuntimeError(f"RedisLearner learned {learner.counters.learned} of {n}")
    return elapsed


def memory_log(items: Sequence[Event]) -> JoinedLog:
    """The in-process joined stream holding ``items``."""
    log = JoinedLog()
    now = time.time()
    for event in items:
        log.append(JoinedEvent(event.decision_json, event.reward, False, 1, now))
    return log


async def memory_learner(log: JoinedLog, policy: dict[str, Any], n: int) -> float:
    """A fresh ``MemoryLearner`` over ``log``: seconds, checkpoints included."""
    learner = MemoryLearner(settings(policy), log, MemoryCheckpoints(), MemoryLeaseTable())
    if not await learner.lease.acquire():
        raise RuntimeError("learner lease not acquired")
    async with learner.lease.keep():
        start = time.perf_counter()
        await learner.restore()
        while await learner.step():
            pass
        elapsed = time.perf_counter() - start
    await learner.lease.release()
    if learner.counters.learned != n:
        raise RuntimeError(f"MemoryLearner learned {learner.counters.learned} of {n}")
    return elapsed


async def xrange_read(url: str, n: int, *, parse: bool) -> float:
    """XRANGE every joined entry in the learner's batch size (and parse them if asked)."""
    client = aioredis.Redis.from_url(url)
    try:
        start_time = time.perf_counter()
        start, seen = "-", 0
        while True:
            entries = await client.xrange(JOINED_STREAM, min=start, count=LEARNER_BATCH)
            if not entries:
                break
            if parse:
                for _, fields in entries:
                    _ = JoinedEvent.from_fields(fields).decision
            seen += len(entries)
            start = "(" + entries[-1][0].decode()
        elapsed = time.perf_counter() - start_time
    finally:
        await client.aclose()
    if seen != n:
        raise RuntimeError(f"XRANGE read {seen} of {n}")
    return elapsed


def vw_learn(examples: Sequence[list[str]]) -> float:
    """VW's own ``learn`` on the pre-formatted examples, fresh workspace (not timed)."""
    policy = make_policy(ONLINE_COVER, ARMS, seed=SEED)
    workspace = vowpalwabbit.Workspace(_common.vw_command(policy))
    try:
        learn = workspace.learn
        start = time.perf_counter()
        for example in examples:
            learn(example)
        return time.perf_counter() - start
    finally:
        workspace.finish()


async def redis_joiner(url: str, n: int) -> float:
    """``RedisJoiner`` over the pre-filled inputs until every decision is joined."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    joiner = RedisJoiner(client, RULES)
    try:
        if not await joiner.lease.acquire():
            raise RuntimeError("joiner lease not acquired")
        async with joiner.lease.keep():
            start = time.perf_counter()
            while await joiner.step(time.time()):
                pass
            elapsed = time.perf_counter() - start
    finally:
        await joiner.close()
    if joiner.joined != n:
        raise RuntimeError(f"RedisJoiner joined {joiner.joined} of {n}")
    return elapsed


async def raw_join_io(url: str, n: int) -> float:
    """XRANGE both inputs (joiner's batch) + pipelined XADD of one joined entry per pair."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        await client.delete(REFERENCE_STREAM)
        start_time = time.perf_counter()
        after = {DECISIONS_STREAM: "-", REWARDS_STREAM: "-"}
        written = 0
        while True:
            decisions = await client.xrange(DECISIONS_STREAM, min=after[DECISIONS_STREAM],
                                            count=JOINER_BATCH)
            rewards = await client.xrange(REWARDS_STREAM, min=after[REWARDS_STREAM],
                                          count=JOINER_BATCH)
            if not decisions and not rewards:
                break
            pipe = client.pipeline(transaction=False)
            now = f"{time.time():.6f}"
            for (_, decision), (_, _reward) in zip(decisions, rewards, strict=False):
                pipe.xadd(REFERENCE_STREAM, {"event": decision["event"], "reward": "1",
                                             "default": "0", "rewards": "1",
                                             "joined_at": now},
                          maxlen=1_000_000, approximate=True)
                written += 1
            await pipe.execute()
            if decisions:
                after[DECISIONS_STREAM] = "(" + decisions[-1][0]
            if rewards:
                after[REWARDS_STREAM] = "(" + rewards[-1][0]
        elapsed = time.perf_counter() - start_time
    finally:
        await client.aclose()
    if written != n:
        raise RuntimeError(f"reference wrote {written} of {n}")
    return elapsed


def run(coroutine: Any) -> Any:
    """``asyncio.run`` (one loop per measurement: nothing carries over)."""
    return asyncio.run(coroutine)
