"""The learner, and the joiner + learner together: exactly once under crashes.

Crashes are simulated two ways: cancelling the in-process pipeline task at random
moments (any await: mid-pipeline, mid-script, between checkpoint and read), and
SIGKILLing a worker process (``_crash_worker``) at random moments. Either way the
final policies, the joined stream and the counters must equal an uninterrupted run's.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from bandit import load_policy, make_policy
from common.storage.keys import JOINED_STREAM, learner_checkpoint_key
from reward_ingest.errors import LeaseLost
from reward_ingest.join_rules import JoinedEvent
from reward_ingest.joiner import JoinedLog, MemoryJoiner
from reward_ingest.learner import LearnerSettings, MemoryCheckpoints, MemoryLearner, RedisLearner
from reward_ingest.lease import MemoryLeaseTable
from tests._redis_server import RedisServer
from tests._wait import wait_for_async
from tests.reward_ingest._pipeline import (
    RULES,
    T0,
    T_END,
    crash_repeatedly,
    decision,
    drive_redis,
    fixed_input,
    learner_settings,
    progress_seen_alongside,
    write_input,
)

ROOT = Path(__file__).resolve().parents[2]


def joined(event_id: str, experiment: str, value: float, **options: Any) -> JoinedEvent:
    event = decision(event_id, experiment, T0, **options)
    return JoinedEvent(json.dumps(event, separators=(",", ":")), value, False, 1, T0)


def test_memory_learner_learns_and_skips() -> None:
    """Targeted, retired-variant, other-experiment and invalid events are skipped."""
    log = JoinedLog()
    for event in (joined("a", "first", 1.0, variant="A"),
                  joined("b", "first", 1.0, variant="B", targeted=True),
                  joined("c", "first", 1.0, variant="Gone"),
                  joined("d", "maxed", 1.0, variant="A"),
                  joined("e", "first", 7.0, variant="A")):  # Beta takes [0, 1] only
        log.append(event)
    store = MemoryCheckpoints()

    async def run(targeted: bool) -> MemoryLearner:
        settings = LearnerSettings("first", {"type": "thompson"}, ("A", "B", "C"),
                                   learn_from_targeted=targeted)
        learner = MemoryLearner(settings, log, MemoryCheckpoints(), MemoryLeaseTable())
        assert await learner.lease.try_acquire()
        await learner.restore()
        assert await learner.step() == 5
        assert await learner.step() == 0
        return learner

    plain = asyncio.run(run(False))
    c = plain.counters
    assert (c.learned, c.skipped_targeted, c.skipped_unknown_arm, c.other_experiments,
            c.skipped_invalid, c.batches) == (1, 1, 1, 1, 1, 1)
    assert asyncio.run(run(True)).counters.learned == 2
    assert store.checkpoints == {}


def test_memory_learner_lets_the_process_run_while_it_works_through_a_backlog() -> None:
    """In one process the learner shares the event loop with the router and its lease
    renewal: between batches it must give them a turn, or a backlog starves both
    (the router answers nothing and the lease expires under the learner)."""
    log = JoinedLog()
    batches = 8
    for i in range(batches * 50):
        log.append(joined(f"e{i}", "first", 1.0, variant="A"))
    settings = LearnerSettings("first", {"type": "thompson"}, ("A", "B"), batch=50)
    learner = MemoryLearner(settings, log, MemoryCheckpoints(), MemoryLeaseTable())

    between = asyncio.run(progress_seen_alongside(
        learner.run, lambda: learner.counters.learned, batches * 50))
    # The neighbour ran between the batches, not only before the first or after the last.
    assert len(between) >= batches - 2, sorted(between)


def test_memory_pipeline_matches_redis(redis_url: str) -> None:
    """The in-process joiner + learner end where the Redis ones do."""
    data = fixed_input(9, n=600)

    class Log:
        async def read_decisions(self, count: int, after: str = "0") -> Any:
            start = int(after.split("-")[0])
            return [(f"{start + i + 1}-0", e)
                    for i, e in enumerate(data.decisions[start:start + count])]

        async def read_rewards(self, count: int, after: str = "0") -> Any:
            start = int(after.split("-")[0])
            return [(f"{start + i + 1}-0", r)
                    for i, r in enumerate(data.rewards[start:start + count])]

    async def memory() -> dict[str, bytes]:
        log, store, leases = JoinedLog(), MemoryCheckpoints(), MemoryLeaseTable()
        joiner = MemoryJoiner(Log(), Log(), RULES, log, batch=100)
        while await joiner.step(T0):
            pass
        while await joiner.step(T_END):
            pass
        result = {}
        for settings in learner_settings():
            learner = MemoryLearner(settings, log, store, leases)
            assert await learner.lease.try_acquire()
            while await learner.step():
                pass
            snapshot = store.snapshots.latest(settings.experiment)
            assert snapshot is not None
            result[settings.experiment] = snapshot.blob
        return result

    asyncio.run(write_input(redis_url, data))
    asyncio.run(drive_redis(redis_url))
    assert asyncio.run(memory()) == final_policies(redis_url)


def final_policies(url: str, names: tuple[str, ...] = tuple(RULES)) -> dict[str, bytes]:
    with redis.Redis.from_url(url) as client:
        result = {}
        for name in names:
            checkpoint = client.hgetall(learner_checkpoint_key(name))
            published = client.hgetall(f"bandit:policy:{name}")
            assert checkpoint[b"snapshot"] == published[b"snapshot"]
            assert checkpoint[b"version"] == published[b"version"]
            result[name] = published[b"snapshot"]
        return result


def outcome(url: str) -> tuple[dict[str, bytes], Counter[tuple[str, str, str, str]],
                               dict[str, dict[bytes, bytes]]]:
    """Final policies, the joined stream as a multiset, and the joiner's counters."""
    with redis.Redis.from_url(url, decode_responses=False) as client:
        entries = client.xrange(JOINED_STREAM)
        ids = [json.loads(f[b"event"])["event_id"] for _, f in entries]
        assert len(ids) == len(set(ids)), "an event was joined twice"
        stream = Counter((json.loads(f[b"event"])["event_id"], f[b"reward"].decode(),
                          f[b"default"].decode(), f[b"rewards"].decode()) for _, f in entries)
        counts = {key.decode(): client.hgetall(key)
                  for key in client.scan_iter(match="bandit:join:counts:*")}
    return final_policies(url), stream, counts


@pytest.fixture(scope="module")
def reference(redis_server: RedisServer) -> Any:
    """The uninterrupted run over ``fixed_input()``, on db 1; with its duration and
    its number of rounds."""
    url = redis_server.url.rsplit("/", 1)[0] + "/1"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    asyncio.run(write_input(url, fixed_input()))
    started = time.perf_counter()
    rounds = asyncio.run(drive_redis(url))
    elapsed = time.perf_counter() - started
    result = outcome(url)
    stream = result[1]
    assert sum(stream.values()) > 1000
    learned = {name: load_policy(blob).version for name, blob in result[0].items()}
    assert all(version > 100 for version in learned.values()), learned
    return result, elapsed, rounds


def test_uninterrupted_run_is_deterministic(redis_url: str, reference: Any) -> None:
    """Two clean runs agree (so the crash comparisons below mean something)."""
    asyncio.run(write_input(redis_url, fixed_input()))
    asyncio.run(drive_redis(redis_url, batch=333, learner_batch=1000))
    assert outcome(redis_url) == reference[0]


def test_exactly_once_with_cancellations(redis_url: str, reference: Any) -> None:
    """Cancel the pipeline at ≥ 10 random moments; it still ends exactly as the reference."""
    asyncio.run(write_input(redis_url, fixed_input()))
    rng = random.Random(1)
    rounds = reference[2]
    assert rounds >= 30

    # Short lives: 12 of them cannot finish the work, so every crash is mid-work.
    assert asyncio.run(crash_repeatedly(redis_url, rng, max_rounds=rounds // 15)) >= 10
    assert outcome(redis_url) == reference[0]


def test_exactly_once_with_sigkill(redis_server: RedisServer,
                                   reference: Any) -> None:
    """SIGKILL a worker process at ≥ 10 random moments; same end as the reference."""
    url = redis_server.url.rsplit("/", 1)[0] + "/2"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    asyncio.run(write_input(url, fixed_input()))
    rng = random.Random(2)
    killed = 0
    while True:
        worker = subprocess.Popen(  # noqa: S603 - our own fixed argv
            [sys.executable, "-m", "tests.reward_ingest._crash_worker", url], cwd=ROOT,
            stdout=subprocess.PIPE, text=True)
        try:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
            if killed >= 10:
                assert worker.wait(timeout=60) == 0
                break
            time.sleep(rng.uniform(0, reference[1] / 6))
            if worker.poll() is None:
                worker.kill()
                killed += 1
            worker.wait(timeout=10)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()
    assert outcome(url) == reference[0]


def test_lease_takeover_resumes_from_the_checkpoint(redis_url: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A second learner waits, takes over after the first one dies, and loses nothing."""
    data = fixed_input(4, n=600)
    asyncio.run(write_input(redis_url, data))
    settings = LearnerSettings("first", {"type": "thompson"}, ("A", "B", "C"), seed=3,
                               batch=20, lease_ttl_s=0.3)

    async def run() -> None:
        from reward_ingest.joiner import RedisJoiner

        text = aioredis.Redis.from_url(redis_url, decode_responses=True)
        joiner = RedisJoiner(text, RULES)
        assert await joiner.lease.try_acquire()
        while await joiner.step(T0):
            pass
        while await joiner.step(T_END):
            pass
        one = RedisLearner.from_url(redis_url, settings)
        two = RedisLearner.from_url(redis_url, settings)
        attempts: list[bool] = []  # what each of two's tries to take the lease got
        try_acquire = two.lease.try_acquire

        async def recorded_try_acquire() -> bool:
            taken = await try_acquire()
            attempts.append(taken)
            return taken

        monkeypatch.setattr(two.lease, "try_acquire", recorded_try_acquire)
        stop_one, stop_two = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(one.run(stop_one, idle_s=0.01))
        await wait_for_async(lambda: one.counters.batches >= 3)
        second = asyncio.create_task(two.run(stop_two, idle_s=0.01))
        await wait_for_async(lambda: attempts)
        # Refused, not merely slow: the lease key holds one's token, two holds nothing.
        assert not any(attempts)
        assert await text.get(one.lease.key) == one.lease.token != ""
        assert two.lease.token == "" and two.policy is None
        first.cancel()  # a crash: the lease is not released, it expires
        with pytest.raises(asyncio.CancelledError):
            await first
        last = (await text.xrevrange(JOINED_STREAM, count=1))[0][0]
        await wait_for_async(lambda: two.policy is not None and two.offset == last)
        assert attempts[-1] is True and await text.get(two.lease.key) == two.lease.token
        stop_two.set()
        await second
        assert two.counters.restores == 1
        # Exactly what one learner over the whole stream learns:
        solo = LearnerSettings("first", {"type": "thompson"}, ("A", "B", "C"), seed=3)
        expected = make_policy(solo.policy, solo.arms, solo.seed)
        from reward_ingest.learner import learn

        entries = await text.xrange(JOINED_STREAM)
        learn(expected, [JoinedEvent.from_fields(f) for _, f in entries], solo, Counter())
        assert final_policies(redis_url, ("first",))["first"] == expected.snapshot()
        await one.close()
        await two.close()
        await text.aclose()

    asyncio.run(run())


def test_fencing_refuses_a_learner_that_lost_its_lease(redis_url: str) -> None:
    """A learner whose lease expired (and was taken) cannot checkpoint or publish."""
    async def run() -> None:
        client = aioredis.Redis.from_url(redis_url)
        settings = LearnerSettings("first", {"type": "thompson"}, ("A", "B"), lease_ttl_s=0.2)
        old = RedisLearner(client, settings)
        assert await old.lease.try_acquire()
        await old.restore()
        before = await client.hgetall(learner_checkpoint_key("first"))
        await client.xadd(JOINED_STREAM, joined("e1", "first", 1.0).fields())
        new = RedisLearner(client, settings)
        # Taken once the old lease expired (nobody renews it: TTL 0.2 s).
        await wait_for_async(new.lease.try_acquire, 5.0)
        with pytest.raises(LeaseLost):
            await old.step()
        assert old.policy is None
        assert await client.hgetall(learner_checkpoint_key("first")) == before
        await new.restore()
        assert await new.step() == 1
        assert (await client.hgetall(learner_checkpoint_key("first")))[b"offset"] != b"0"
        await client.aclose()

    asyncio.run(run())


def test_checkpoint_publishes_the_snapshot(redis_url: str) -> None:
    """One script writes checkpoint + ``bandit:policy:{exp}`` and PUBLISHes the name."""
    async def run() -> None:
        client = aioredis.Redis.from_url(redis_url)
        pubsub = client.pubsub()
        await pubsub.subscribe("bandit:policy:changed")
        learner = RedisLearner(client, LearnerSettings("first", {"type": "thompson"},
                                                       ("A", "B")))
        assert await learner.lease.try_acquire()
        await learner.restore()  # a fresh policy is published at once (version 1)
        await client.xadd(JOINED_STREAM, joined("e1", "first", 1.0).fields())
        await client.xadd(JOINED_STREAM, joined("e2", "maxed", 1.0).fields())
        assert await learner.step() == 2
        published = await client.hgetall("bandit:policy:first")
        assert published[b"version"] == b"2"
        policy = load_policy(published[b"snapshot"])
        assert policy.version == 1 and policy.arms == ("A", "B")
        checkpoint = await client.hgetall(learner_checkpoint_key("first"))
        assert checkpoint[b"version"] == b"2" and checkpoint[b"policy_version"] == b"1"
        messages: list[bytes] = []
        deadline = time.monotonic() + 5
        while len(messages) < 2 and time.monotonic() < deadline:
            # None also when it read (and ignored) the subscription's confirmation
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                messages.append(message["data"])
        assert messages == [b"first", b"first"]
        await client.xadd(JOINED_STREAM, joined("e3", "maxed", 1.0).fields())
        assert await learner.step() == 1  # nothing learned: offset moves, no publication
        assert (await client.hgetall("bandit:policy:first"))[b"version"] == b"2"
        await pubsub.aclose()
        await client.aclose()

    asyncio.run(run())
