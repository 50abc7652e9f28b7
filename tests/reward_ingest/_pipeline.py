"""Inputs and drivers shared by the joiner and learner tests (and the crash worker).

``fixed_input(seed)`` builds a reproducible mix of decisions and rewards with the awkward
cases in it: rewards before their decisions, duplicates and redeliveries, out-of-range
values, orphans, targeted decisions, retired variants. ``drive_redis`` runs the joiner
and the learners over it to completion with a two-phase clock (every input is consumed
at ``T0``, before any window closes; then every window closes at ``T_END``), so the
outcome does not depend on timing and an interrupted run must end exactly like an
uninterrupted one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from common.storage.keys import DECISIONS_STREAM, REWARDS_STREAM
from reward_ingest.errors import LeaseLost
from reward_ingest.join_rules import JoinRule
from reward_ingest.joiner import RedisJoiner
from reward_ingest.learner import LearnerSettings, RedisLearner
from tests._wait import wait_for_async

T0 = 1_700_000_000.0
T_END = T0 + 100_000.0

RULES: dict[str, JoinRule] = {
    "first": JoinRule(mode="first", min=0.0, max=1.0, default=0.0, wait_seconds=600.0),
    "maxed": JoinRule(mode="max", min=0.0, max=1.0, default=None, wait_seconds=300.0),
    "summed": JoinRule(mode="sum", min=0.0, max=2.0, default=0.0, wait_seconds=600.0),
}
ARMS = {"first": ("A", "B", "C"), "maxed": ("A", "B"), "summed": ("A", "B", "C")}
POLICIES: dict[str, dict[str, Any]] = {
    "first": {"type": "thompson"},
    "maxed": {"type": "thompson"},
    "summed": {"type": "thompson", "family": "gaussian"},
}


def decision(event_id: str, experiment: str, timestamp: float, *, variant: str = "A",
             targeted: bool = False, probability: float = 0.5,
             context: dict[str, Any] | None = None) -> dict[str, Any]:
    """A decision event as the router writes it."""
    arms = list(ARMS.get(experiment, ("A", "B")))
    return {"format": 1, "event_id": event_id, "timestamp": timestamp,
            "experiment": experiment, "endpoint": f"ep-{experiment}", "policy_version": 3,
            "variants": arms, "eligible": None, "context": context, "variant": variant,
            "probability": 1.0 if targeted else probability,
            "probabilities": {arm: 1 / len(arms) for arm in arms}, "targeted": targeted,
            "unit_id": None, "source": "invocations", "outcome": "ok", "latency_ms": 1.25}


def reward(event_id: str, value: float, received_at: float, reward_id: str) -> dict[str, Any]:
    """A reward as the webhook writes it."""
    return {"event_id": event_id, "reward": value, "received_at": received_at,
            "reward_id": reward_id}


@dataclass
class Input:
    """Decisions and rewards in stream order."""

    decisions: list[dict[str, Any]] = field(default_factory=list)
    rewards: list[dict[str, Any]] = field(default_factory=list)


def fixed_input(seed: int = 7, n: int = 2000) -> Input:
    """``n`` decisions over the three experiments and their rewards, with every hard case."""
    rng = random.Random(seed)
    data = Input()
    names = list(RULES)
    for i in range(n):
        experiment = names[i % len(names)]
        event_id = f"ev-{i:05d}"
        arms = ARMS[experiment]
        roll = rng.random()
        variant = "Gone" if roll < 0.03 else rng.choice(arms)
        data.decisions.append(decision(event_id, experiment, T0 - rng.uniform(0, 100),
                                       variant=variant, targeted=0.03 <= roll < 0.08,
                                       probability=rng.choice((0.25, 0.5, 0.75))))
        for j in range(rng.choice((0, 1, 1, 2, 3))):
            value = rng.choice((0.0, 0.5, 1.0, 1.0, 1.5, -1.0))
            item = reward(event_id, value, T0 + rng.uniform(0, 50), f"{event_id}/r{j}")
            data.rewards.append(item)
            if rng.random() < 0.1:  # a webhook retry that got through: same reward id
                data.rewards.append(dict(item))
    for k in range(40):  # rewards for decisions that never come
        data.rewards.append(reward(f"orphan-{k}", 1.0, T0 + k, f"orphan-{k}/r0"))
    for i in rng.sample(range(n), 30):  # decision redeliveries (e.g. a spool replay)
        data.decisions.append(dict(data.decisions[i]))
    rng.shuffle(data.rewards)  # many rewards now precede their decisions
    return data


async def write_input(url: str, data: Input) -> None:
    """Append ``data`` to the Redis decision and reward streams."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        pipe = client.pipeline(transaction=False)
        for event in data.decisions:
            pipe.xadd(DECISIONS_STREAM, {"event": json.dumps(event, separators=(",", ":"))})
        for item in data.rewards:
            pipe.xadd(REWARDS_STREAM, {"reward": json.dumps(item)})
        await pipe.execute()
    finally:
        await client.aclose()


def learner_settings(batch: int = 50, lease_ttl_s: float = 5.0) -> list[LearnerSettings]:
    """A learner per experiment of ``RULES``."""
    return [LearnerSettings(name, POLICIES[name], ARMS[name], seed=3, batch=batch,
                            lease_ttl_s=lease_ttl_s) for name in RULES]


async def drive_redis(url: str, *, batch: int = 100, learner_batch: int = 50,
                      lease_ttl_s: float = 5.0,
                      on_ready: Callable[[], None] | None = None,
                      on_round: Callable[[], None] | None = None,
                      rules: Mapping[str, JoinRule] = RULES) -> int:
    """Join and learn everything on the streams to completion (two-phase clock); how
    many rounds (a joiner step, then a step of each learner) that took. ``on_round``
    is called after each.

    Never releases its leases on the way out (a cancellation is a crash); on normal
    completion it releases them so the next caller need not wait. A lease lost on the
    way (the loop stalled past the TTL on a busy machine) is what the service's run
    loops recover from: start over from the store, with the leases taken again.
    """
    text = aioredis.Redis.from_url(url, decode_responses=True)
    binary = aioredis.Redis.from_url(url)
    rounds = 0
    try:
        while True:
            joiner = RedisJoiner(text, rules, batch=batch, lease_ttl_s=lease_ttl_s)
            learners = [RedisLearner(binary, s)
                        for s in learner_settings(learner_batch, lease_ttl_s)]
            try:
                rounds += await _drive_once(joiner, learners, on_ready, on_round)
                finished = True
            except LeaseLost:
                finished, on_ready = False, None
            # Not reached on a cancellation (a crash): those leases expire.
            for lease in (joiner.lease, *(learner.lease for learner in learners)):
                await lease.release()
            if finished:
                return rounds
    finally:
        await asyncio.shield(_close(text, binary))


async def _drive_once(joiner: RedisJoiner, learners: list[RedisLearner],
                      on_ready: Callable[[], None] | None,
                      on_round: Callable[[], None] | None) -> int:
    await joiner.lease.acquire()
    for learner in learners:
        await learner.lease.acquire()
    if on_ready is not None:
        on_ready()
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(joiner.lease.keep())
        for learner in learners:
            await stack.enter_async_context(learner.lease.keep())
            await learner.restore()
        now, rounds = T0, 0
        while True:
            joined = await joiner.step(now)
            learned = 0
            for learner in learners:
                learned += await learner.step()
            rounds += 1
            if on_round is not None:
                on_round()
            if not joined and now == T0:
                now = T_END
            elif not joined and not learned:
                return rounds


async def _close(*clients: aioredis.Redis) -> None:
    for client in clients:
        await client.aclose()


class _CrashPoint:
    """Where a life is crashed: after ``rounds`` of its rounds (``reached`` is set)."""

    def __init__(self, rounds: int) -> None:
        self.left = rounds
        self.reached = asyncio.Event()
        if rounds <= 0:
            self.reached.set()

    def tick(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.reached.set()


async def crash_repeatedly(url: str, rng: random.Random, *, max_rounds: int,
                           crashes: int = 12, max_turns: int = 10) -> int:
    """``drive_redis`` on ``url``, cancelled (a crash) ``crashes`` times; then one life
    runs to the end. Returns how many lives were cancelled mid-work (fewer when one
    finished first).

    A life is cancelled after a random number of its rounds (up to ``max_rounds``) and
    then a random number of event-loop turns (up to ``max_turns``), so the crash lands
    at any await of a round: counted in the pipeline's own progress, not in seconds,
    so a busy machine does not let a life finish more of the work. The lease TTL is
    short (0.3 s) so that each life takes over the last one's leases.
    """
    interrupted = 0
    while True:
        if interrupted >= crashes:
            await drive_redis(url, lease_ttl_s=0.3)
            return interrupted
        crash = _CrashPoint(rng.randint(0, max_rounds))
        task = asyncio.create_task(drive_redis(url, lease_ttl_s=0.3, on_round=crash.tick))
        reached = asyncio.create_task(crash.reached.wait())
        await asyncio.wait([task, reached], return_when=asyncio.FIRST_COMPLETED)
        reached.cancel()
        for _ in range(rng.randrange(max_turns)):
            await asyncio.sleep(0)
        if task.done():  # the work finished before this crash: nothing left to interrupt
            await task
            return interrupted
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        interrupted += 1


async def progress_seen_alongside(run: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
                                  progress: Callable[[], int], total: int) -> set[int]:
    """Run a loop until ``progress()`` reaches ``total``; what another task saw meanwhile.

    The other task stands for the rest of the process (a request to the router): it
    records ``progress()`` each time the event loop gives it a turn. The values strictly
    between 0 and ``total`` are the turns it got while the loop was working.
    """
    stop = asyncio.Event()
    seen: list[int] = []

    async def neighbour() -> None:
        while not stop.is_set():
            seen.append(progress())
            await asyncio.sleep(0)

    other = asyncio.create_task(neighbour())
    running = asyncio.create_task(run(stop))
    await wait_for_async(lambda: progress() == total)
    stop.set()
    await asyncio.gather(running, other)
    return {value for value in seen if 0 < value < total}
