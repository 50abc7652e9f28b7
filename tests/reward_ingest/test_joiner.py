"""The joiner, in memory and on a real redis-server: the same cases, the same answers.

The clock is injected (``step(now)``): windows close because the test says so, never
because it slept.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis

from common.storage.keys import DECISIONS_STREAM, JOINED_STREAM, REWARDS_STREAM
from reward_ingest.errors import LeaseLost
from reward_ingest.join_rules import JoinedEvent, JoinRule
from reward_ingest.joiner import JoinedLog, MemoryJoiner, RedisJoiner
from tests.reward_ingest._pipeline import (
    decision,
    fixed_input,
    progress_seen_alongside,
    reward,
)

T = 1_000_000.0
RULES = {
    "first": JoinRule(mode="first", default=0.0, wait_seconds=60.0),
    "sum": JoinRule(mode="sum", min=0.0, max=2.0, default=0.0, wait_seconds=60.0),
    "max": JoinRule(mode="max", default=0.0, wait_seconds=60.0),
    "mean": JoinRule(mode="mean", default=0.0, wait_seconds=60.0),
    "nodefault": JoinRule(mode="first", default=None, wait_seconds=60.0),
}


class ListLog:
    """Decisions and rewards in lists, read like the stores read them (ids ``N-0``)."""

    def __init__(self) -> None:
        self.decisions: list[dict[str, Any]] = []
        self.rewards: list[dict[str, Any]] = []

    async def read_decisions(self, count: int,
                             after: str = "0") -> list[tuple[str, dict[str, Any]]]:
        return _slice(self.decisions, count, after)

    async def read_rewards(self, count: int,
                           after: str = "0") -> list[tuple[str, Mapping[str, Any]]]:
        return list(_slice(self.rewards, count, after))


def _slice(items: list[dict[str, Any]], count: int,
           after: str) -> list[tuple[str, dict[str, Any]]]:
    start = int(after.split("-")[0])
    return [(f"{start + i + 1}-0", item) for i, item in enumerate(items[start:start + count])]


class JoinerHarness(ABC):
    """One joiner under test, whatever its backend: feed inputs, step, read what came out.

    ``async with`` starts it (the Redis one takes the joiner lease and keeps renewing it,
    as the service does) and closes it.
    """

    joiner: MemoryJoiner | RedisJoiner

    async def __aenter__(self) -> JoinerHarness:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @abstractmethod
    async def start(self) -> None:
        """Get ready to step."""

    @abstractmethod
    async def close(self) -> None:
        """Let go of what ``start`` took."""

    @abstractmethod
    async def feed(self, decisions: Sequence[dict[str, Any]] = (),
                   rewards: Sequence[dict[str, Any]] = ()) -> None:
        """Append decisions and rewards where the joiner reads them."""

    @abstractmethod
    async def joined(self) -> list[JoinedEvent]:
        """Everything joined so far, in order."""

    async def step(self, now: float) -> int:
        return await self.joiner.step(now)

    async def counts(self) -> dict[str, dict[str, int]]:
        return await self.joiner.counts()


class MemoryHarness(JoinerHarness):
    """The in-process joiner over lists."""

    joiner: MemoryJoiner

    def __init__(self, rules: Mapping[str, JoinRule] = RULES, batch: int = 1000) -> None:
        self.log = ListLog()
        self.joiner = MemoryJoiner(self.log, self.log, rules, JoinedLog(), batch=batch)

    async def start(self) -> None:
        """Nothing to take: the in-process joiner has no lease."""

    async def close(self) -> None:
        """Nothing to let go of."""

    async def feed(self, decisions: Sequence[dict[str, Any]] = (),
                   rewards: Sequence[dict[str, Any]] = ()) -> None:
        self.log.decisions.extend(decisions)
        self.log.rewards.extend(rewards)

    async def joined(self) -> list[JoinedEvent]:
        return list(self.joiner.joined.entries)


class RedisHarness(JoinerHarness):
    """The Redis joiner over the real streams of ``url``."""

    joiner: RedisJoiner

    def __init__(self, url: str, rules: Mapping[str, JoinRule] = RULES,
                 batch: int = 1000) -> None:
        self.client = aioredis.Redis.from_url(url, decode_responses=True)
        self.joiner = RedisJoiner(self.client, rules, batch=batch)
        self._held = contextlib.AsyncExitStack()

    async def start(self) -> None:
        assert await self.joiner.lease.try_acquire()
        await self._held.enter_async_context(self.joiner.lease.keep())

    async def close(self) -> None:
        await self._held.aclose()
        await self.client.aclose()

    async def feed(self, decisions: Sequence[dict[str, Any]] = (),
                   rewards: Sequence[dict[str, Any]] = ()) -> None:
        pipe = self.client.pipeline(transaction=False)
        for event in decisions:
            pipe.xadd(DECISIONS_STREAM, {"event": json.dumps(event, separators=(",", ":"))})
        for item in rewards:
            pipe.xadd(REWARDS_STREAM, {"reward": json.dumps(item)})
        await pipe.execute()

    async def joined(self) -> list[JoinedEvent]:
        entries = await self.client.xrange(JOINED_STREAM)
        return [JoinedEvent.from_fields(fields) for _, fields in entries]


HarnessFactory = Callable[..., JoinerHarness]


@pytest.fixture(params=["memory", "redis"])
def make_harness(request: pytest.FixtureRequest) -> HarnessFactory:
    """Builds a harness of each backend in turn: ``make_harness(rules=..., batch=...)``."""
    if request.param == "memory":
        return MemoryHarness
    return functools.partial(RedisHarness, request.getfixturevalue("redis_url"))


def scenario(body: Callable[[JoinerHarness], Awaitable[None]]) -> Callable[..., None]:
    """Run ``body`` against the memory joiner and the Redis joiner."""

    def test(make_harness: HarnessFactory) -> None:
        async def run() -> None:
            async with make_harness() as harness:
                await body(harness)

        asyncio.run(run())

    test.__name__ = body.__name__
    test.__doc__ = body.__doc__
    return test


def summary(events: list[JoinedEvent]) -> list[tuple[str, float, bool, int]]:
    return [(e.decision["event_id"], e.reward, e.default_reward, e.rewards) for e in events]


@scenario
async def test_first_joins_at_once_then_counts_late(h: JoinerHarness) -> None:
    """``first``: the first in-range reward joins; later ones are counted as late."""
    await h.feed([decision("e1", "first", T)], [reward("e1", 1.0, T + 1, "r1")])
    await h.step(T + 2)
    assert summary(await h.joined()) == [("e1", 1.0, False, 1)]
    joined = await h.joined()
    assert joined[0].joined_at == T + 2
    await h.feed(rewards=[reward("e1", 0.0, T + 3, "r2"), reward("e1", 1.0, T + 3, "r1")])
    await h.step(T + 1000)
    assert len(await h.joined()) == 1
    counts = (await h.counts())["first"]
    assert (counts["joined"], counts["late_rewards"], counts["duplicate_rewards"]) == (1, 1, 1)


@scenario
async def test_first_reward_before_decision(h: JoinerHarness) -> None:
    """A reward that arrives before its decision joins when the decision comes."""
    await h.feed(rewards=[reward("e1", 7.0, T, "bad"), reward("e1", 0.5, T, "r1")])
    await h.step(T)
    assert await h.joined() == []
    await h.feed([decision("e1", "first", T - 1)])
    await h.step(T + 1)
    assert summary(await h.joined()) == [("e1", 0.5, False, 1)]
    assert (await h.counts())["first"]["out_of_range"] == 1


@pytest.mark.parametrize(("experiment", "expected"), [
    ("sum", (2.0, 3)), ("max", (1.0, 3)), ("mean", (0.6, 3))])
def test_aggregates_wait_out_the_window(experiment: str, expected: tuple[float, int],
                                        make_harness: HarnessFactory) -> None:
    """sum / max / mean: rewards before and after the decision, joined at the deadline."""
    async def body() -> list[tuple[str, float, bool, int]]:
        async with make_harness() as h:
            await h.feed(rewards=[reward("e1", 0.5, T, "r1")])
            await h.step(T)
            await h.feed([decision("e1", experiment, T)],
                         [reward("e1", 0.3, T + 1, "r2"), reward("e1", 5.0, T + 1, "r3")])
            await h.step(T + 2)
            await h.feed(rewards=[reward("e1", 1.0 if experiment != "sum" else 1.2, T + 3,
                                         "r4")])
            await h.step(T + 59)
            assert await h.joined() == []
            await h.step(T + 60)
            return summary(await h.joined())

    (event_id, value, default, n), = asyncio.run(body())
    assert (event_id, default, n) == ("e1", False, expected[1])
    assert value == pytest.approx(expected[0])


@scenario
async def test_default_reward_after_the_window(h: JoinerHarness) -> None:
    """No reward by the deadline: the default, flagged; nothing before the deadline."""
    await h.feed([decision("e1", "first", T), decision("e2", "sum", T)])
    await h.step(T + 59.9)
    assert await h.joined() == []
    await h.step(T + 60)
    assert sorted(summary(await h.joined())) == [("e1", 0.0, True, 0), ("e2", 0.0, True, 0)]
    assert (await h.counts())["first"]["default_rewards"] == 1


@scenario
async def test_drop_when_no_default(h: JoinerHarness) -> None:
    """No reward and no default: dropped and counted, never joined."""
    await h.feed([decision("e1", "nodefault", T)], [reward("e1", 3.0, T, "r1")])
    await h.step(T + 61)
    assert await h.joined() == []
    counts = (await h.counts())["nodefault"]
    assert (counts["dropped_no_reward"], counts["out_of_range"]) == (1, 1)


@scenario
async def test_duplicates_orphans_and_odd_input(h: JoinerHarness) -> None:
    """Duplicate decisions and rewards, orphans, unknown experiments, malformed input."""
    await h.feed([decision("e1", "sum", T), decision("e1", "sum", T), decision("x", "nope", T)],
                 [reward("e1", 1.0, T, "r1"), reward("e1", 1.0, T, "r1"),
                  reward("o1", 1.0, T, "o"), reward("o1", 1.0, T, "o"),
                  {"event_id": "e1", "reward": "high"}])
    await h.feed([{"event_id": "no experiment"}])
    await h.step(T + 1)
    await h.step(T + 60 + 600)  # the orphan's fallback: received + the longest window
    assert summary(await h.joined()) == [("e1", 1.0, False, 1)]
    counts = await h.counts()
    assert counts["sum"] == {"joined": 1, "duplicate_decisions": 1, "duplicate_rewards": 1}
    assert counts["nope"] == {"unknown_experiment": 1}
    assert counts["_unknown"] == {"duplicate_rewards": 1, "orphan_rewards": 1,
                                  "malformed_rewards": 1, "malformed_decisions": 1}


@scenario
async def test_decision_after_its_orphaned_rewards_still_joins(h: JoinerHarness) -> None:
    """Rewards dropped as orphans do not swallow a decision that comes later."""
    await h.feed(rewards=[reward("e1", 1.0, T, "r1")])
    await h.step(T + 661)
    await h.feed([decision("e1", "first", T)], [reward("e1", 1.0, T, "r1")])
    await h.step(T + 662)
    assert summary(await h.joined()) == [("e1", 0.0, True, 0)]
    assert (await h.counts())["first"]["duplicate_rewards"] == 1


def _random_input(seed: int) -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]]]:
    """Decisions and rewards in 6 waves, random modes, values, duplicates and order."""
    rng = random.Random(seed)
    waves_d: list[list[dict[str, Any]]] = [[] for _ in range(6)]
    waves_r: list[list[dict[str, Any]]] = [[] for _ in range(6)]
    for i in range(300):
        experiment = rng.choice(list(RULES))
        wave = rng.randrange(6)
        waves_d[wave].append(decision(f"e{i}", experiment, T + wave * 20))
        for _ in range(rng.randrange(4)):
            item = reward(f"e{i}", rng.choice((0.1, 0.2, 0.7, 1.0, 1.9, -0.5)),
                          T + wave * 20, f"r{i}-{rng.randrange(3)}")
            waves_r[min(5, max(0, wave + rng.choice((-1, 0, 1, 2))))].append(item)
        if rng.random() < 0.05:
            waves_d[rng.randrange(6)].append(decision(f"e{i}", experiment, T + wave * 20))
    return waves_d, waves_r


def test_memory_and_redis_agree_on_random_input(redis_url: str) -> None:
    """Lua and Python implement one semantics: same joined events, order and counters."""
    waves_d, waves_r = _random_input(11)

    async def run(harness: JoinerHarness) -> tuple[list[dict[str, str]],
                                                   dict[str, dict[str, int]]]:
        async with harness as h:
            for wave in range(6):
                await h.feed(waves_d[wave], waves_r[wave])
                while await h.step(T + wave * 20 + 30):
                    pass
            while await h.step(T + 10_000):
                pass
            return [e.fields() for e in await h.joined()], await h.counts()

    memory = asyncio.run(run(MemoryHarness(batch=37)))
    on_redis = asyncio.run(run(RedisHarness(redis_url, batch=37)))
    assert len(memory[0]) > 200
    assert on_redis == memory


def test_restarted_joiner_repeats_nothing(redis_url: str) -> None:
    """A second joiner over the same streams (e.g. after a crash) adds nothing."""
    data = fixed_input(3, n=300)

    async def run() -> None:
        first = RedisHarness(redis_url, rules=_rules_of_fixed())
        await first.start()
        await first.feed(data.decisions, data.rewards)
        while await first.step(T):
            pass
        before = (await first.joined(), await first.counts())
        await first.joiner.lease.release()
        second = RedisHarness(redis_url, rules=_rules_of_fixed())
        await second.start()
        assert await second.step(T) == 0
        assert (await second.joined(), await second.counts()) == before
        await first.close()
        await second.close()

    asyncio.run(run())


def _rules_of_fixed() -> dict[str, JoinRule]:
    from tests.reward_ingest._pipeline import RULES as FIXED

    return FIXED


def test_a_joiner_without_the_lease_writes_nothing(redis_url: str) -> None:
    """Fencing: once another joiner holds the lease, every script refuses."""
    async def run() -> None:
        h = RedisHarness(redis_url)
        await h.start()
        await h.feed([decision("e1", "first", T)], [reward("e1", 1.0, T, "r1")])
        await h.client.delete("bandit:join:lease")  # expired...
        other = RedisJoiner(h.client, RULES)
        assert await other.lease.try_acquire()  # ...and taken
        with pytest.raises(LeaseLost):
            await h.step(T)
        assert await h.joined() == []
        assert await h.client.hgetall("bandit:join:offsets") == {}
        with pytest.raises(LeaseLost):
            await h.step(T)  # stays lost
        assert await other.step(T) == 2
        assert len(await h.joined()) == 1
        await h.close()

    asyncio.run(run())


def test_the_in_process_joined_log_is_trimmed_like_the_stream() -> None:
    def joined(i: int) -> JoinedEvent:
        return JoinedEvent(f'{{"event_id":"e{i}"}}', float(i), False, 1, 0.0)

    async def scenario() -> None:
        log = JoinedLog(maxlen=10)
        for i in range(11):
            log.append(joined(i))
        assert len(await log.read_joined(100)) == 11  # a tenth over before trimming
        log.append(joined(11))  # back to the newest 10
        kept = await log.read_joined(100)
        assert [entry_id for entry_id, _ in kept] == [f"{i}-0" for i in range(3, 13)]
        assert [event.reward for _, event in kept] == [float(i) for i in range(2, 12)]
        # A reader behind the trim resumes at the oldest kept; one ahead reads on.
        assert (await log.read_joined(1, after="1-0"))[0][0] == "3-0"
        assert await log.read_joined(5, after="12-0") == []

    asyncio.run(scenario())


def test_memory_joiner_lets_the_process_run_while_it_works_through_a_backlog() -> None:
    """In one process the joiner shares the event loop with the router: between batches
    it must give the other tasks a turn, or a backlog stops the router answering."""
    harness = MemoryHarness(batch=50)
    batches = 8
    events = [decision(f"e{i}", "first", 1.0) for i in range(batches * 50)]

    async def scenario() -> set[int]:
        await harness.feed(events, [reward(f"e{i}", 1.0, 2.0, f"r{i}")
                                    for i in range(batches * 50)])
        return await progress_seen_alongside(
            lambda stop: harness.joiner.run(stop, clock=lambda: 3.0),
            lambda: len(harness.joiner.joined), batches * 50)

    between = asyncio.run(scenario())
    assert len(between) >= batches - 2, sorted(between)
