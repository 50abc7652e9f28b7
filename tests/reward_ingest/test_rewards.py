"""reward_ingest.rewards (base, memory, redis): identity, dedupe, order, Redis specifics.

The behaviour tests run over both stores (``store_url``: memory:// and a real
redis-server); Redis tests read the stream back with a plain synchronous client, so
what is asserted is what Redis really holds. Each test drives its store with
``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
import redis

from common.storage.keys import REWARD_SEEN_PREFIX, REWARDS_STREAM
from reward_ingest.errors import RewardStoreUnavailableError
from reward_ingest.rewards import (
    DEFAULT_SEEN_TTL_S,
    MemoryRewardStore,
    RedisRewardStore,
    Reward,
    RewardStore,
    decode_reward,
    default_reward_id,
    encode_reward,
    open_reward_store,
    seen_key,
)
from tests._redis_server import RedisServer
from tests._servers import free_port

_T = TypeVar("_T")


def reward(event_id: str, value: float = 1.0, reward_id: str | None = None,
           received_at: float = 1_700_000_000.5) -> Reward:
    return Reward(event_id, value, received_at,
                  reward_id or default_reward_id(event_id, value))


def run(store: RewardStore, scenario: Callable[[RewardStore], Awaitable[_T]]) -> _T:
    async def main() -> _T:
        await store.start()
        try:
            return await scenario(store)
        finally:
            await store.close()
    return asyncio.run(main())


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    return url


# --- identity and encoding ---------------------------------------------------------------


def test_default_reward_id_is_stable_and_separates_what_differs() -> None:
    base = default_reward_id("e1", 1.0)
    assert base == default_reward_id("e1", 1)  # 1 and 1.0: one value
    assert base.startswith("auto-") and len(base) == 5 + 32
    others = {default_reward_id("e2", 1.0), default_reward_id("e1", 0.5),
              default_reward_id("e1", -1.0), default_reward_id("e1,1", 1.0)}
    assert base not in others and len(others) == 4


def test_seen_key_has_a_fixed_length_and_no_separator_ambiguity() -> None:
    a = seen_key(Reward("a:b", 1.0, 0.0, "c"))
    b = seen_key(Reward("a", 1.0, 0.0, "b:c"))
    assert a != b
    assert a.startswith(REWARD_SEEN_PREFIX) and len(a) == len(b) == len(REWARD_SEEN_PREFIX) + 32
    # The identity is (event_id, reward_id): value and time are not part of it.
    assert a == seen_key(Reward("a:b", 0.0, 99.0, "c"))


def test_encoding_is_the_contract_shape_and_round_trips() -> None:
    r = Reward("e1", 0.25, 1_700_000_000.5, "r-1")
    line = encode_reward(r)
    assert json.loads(line) == {"event_id": "e1", "reward": 0.25,
                                "received_at": 1_700_000_000.5, "reward_id": "r-1"}
    assert " " not in line
    assert decode_reward(line) == r
    assert decode_reward(line.encode()) == r


@pytest.mark.parametrize("line", [
    "[]", '{"event_id":"e1","reward":1,"received_at":1}',
    '{"event_id":"e1","reward":1,"received_at":1,"reward_id":"r","x":1}',
    '{"event_id":1,"reward":1,"received_at":1,"reward_id":"r"}',
    '{"event_id":"e1","reward":true,"received_at":1,"reward_id":"r"}',
    '{"event_id":"e1","reward":NaN,"received_at":1,"reward_id":"r"}',
])
def test_decode_refuses_what_the_webhook_never_writes(line: str) -> None:
    with pytest.raises(ValueError, match="stored reward"):
        decode_reward(line)


def test_open_reward_store_by_url(redis_url: str) -> None:
    assert isinstance(open_reward_store("memory://"), MemoryRewardStore)
    assert isinstance(open_reward_store(redis_url), RedisRewardStore)
    with pytest.raises(ValueError, match="unsupported reward store URL 'file:///x'"):
        open_reward_store("file:///x")
    with pytest.raises(ValueError, match="seen_ttl_s"):
        RedisRewardStore(redis_url, seen_ttl_s=0)


# --- both stores ---------------------------------------------------------------------------


def test_rewards_are_recorded_once_in_order(store_url: str) -> None:
    rewards = [reward(f"e{i}", i / 10) for i in range(10)]

    async def scenario(store: RewardStore) -> None:
        assert await store.add(rewards[:6]) == (6, 0)
        assert await store.add(rewards[4:]) == (4, 2)
        assert await store.add(rewards) == (0, 10)
        assert await store.add([]) == (0, 0)
        read = await store.read(100)
        assert [r for _, r in read] == rewards
        assert [r for _, r in await store.read(3, after=read[4][0])] == rewards[5:8]
        assert await store.read(5, after=read[-1][0]) == []
        raw = await store.read_rewards(2)
        assert raw == [(read[0][0], json.loads(encode_reward(rewards[0]))),
                       (read[1][0], json.loads(encode_reward(rewards[1])))]

    run(open_reward_store(store_url), scenario)


def test_the_identity_is_event_id_and_reward_id(store_url: str) -> None:
    async def scenario(store: RewardStore) -> None:
        same_id = [reward("e1", 1.0, "r1"), reward("e1", 0.0, "r1")]  # a corrected value
        assert await store.add(same_id) == (1, 1)
        assert await store.add([reward("e1", 1.0, "r2"), reward("e2", 1.0, "r1")]) == (2, 0)
        assert [(r.event_id, r.reward_id, r.reward) for _, r in await store.read(10)] \
            == [("e1", "r1", 1.0), ("e1", "r2", 1.0), ("e2", "r1", 1.0)]

    run(open_reward_store(store_url), scenario)


def test_concurrent_deliveries_of_one_reward_record_it_once(store_url: str) -> None:
    async def scenario(store: RewardStore) -> tuple[list[tuple[int, int]], list[Reward]]:
        results = await asyncio.gather(*(store.add([reward("e1")]) for _ in range(50)))
        return results, [r for _, r in await store.read(100)]

    results, stored = run(open_reward_store(store_url), scenario)
    assert sorted(results) == [(0, 1)] * 49 + [(1, 0)]
    assert stored == [reward("e1")]


# --- Redis only ----------------------------------------------------------------------------


def _stream(url: str) -> list[dict[str, str]]:
    with redis.Redis.from_url(url, decode_responses=True) as client:
        return [fields for _, fields in client.xrange(REWARDS_STREAM)]


def test_redis_entries_are_one_json_field_and_markers_expire(redis_url: str) -> None:
    r = reward("e1", 0.5, "r-1")
    store = RedisRewardStore(redis_url, seen_ttl_s=3600)
    assert run(store, lambda s: s.add([r])) == (1, 0)
    assert _stream(redis_url) == [{"reward": encode_reward(r)}]
    with redis.Redis.from_url(redis_url) as client:
        assert 3590 < client.ttl(seen_key(r)) <= 3600
    assert DEFAULT_SEEN_TTL_S == 172_800


def test_group_commit_one_round_trip_with_per_caller_counts(redis_url: str) -> None:
    a, b, c = reward("a"), reward("b"), reward("c")

    async def scenario(store: RewardStore) -> list[tuple[int, int]]:
        return await asyncio.gather(store.add([a, b]), store.add([b, c]), store.add([a]),
                                    *(store.add([reward(f"x{i}")]) for i in range(40)))

    store = RedisRewardStore(redis_url)
    results = run(store, scenario)
    assert results[:3] == [(2, 0), (1, 1), (0, 1)]
    assert results[3:] == [(1, 0)] * 40
    # The first call found nothing in flight and wrote its own batch; the other 42,
    # queued behind it, share one script call.
    assert store.flushes == 2
    assert [json.loads(f["reward"])["event_id"] for f in _stream(redis_url)][:3] \
        == ["a", "b", "c"]


def test_the_stream_is_trimmed_approximately(redis_url: str) -> None:
    rewards = [reward(f"e{i}") for i in range(3000)]

    async def scenario(store: RewardStore) -> None:
        for start in range(0, len(rewards), 1000):
            await store.add(rewards[start:start + 1000])

    run(RedisRewardStore(redis_url, stream_maxlen=100), scenario)
    with redis.Redis.from_url(redis_url) as client:
        assert 100 <= client.xlen(REWARDS_STREAM) < 1000


def test_an_unreachable_redis_fails_add_and_nothing_doubles_after() -> None:
    with RedisServer() as server:
        store = RedisRewardStore(server.url)

        async def scenario(store: RewardStore) -> None:
            assert await store.add([reward("e1")]) == (1, 0)
            server.stop()
            with pytest.raises(RewardStoreUnavailableError, match="retry later"):
                await store.add([reward("e1"), reward("e2")])
            server.start()  # nothing persisted: markers and stream are gone
            assert await store.add([reward("e2"), reward("e2")]) == (1, 1)

        run(store, scenario)


def test_start_does_not_fail_on_a_dead_redis() -> None:
    store = RedisRewardStore(f"redis://127.0.0.1:{free_port()}/0")

    async def scenario(store: RewardStore) -> None:
        with pytest.raises(RewardStoreUnavailableError):
            await store.add([reward("e1")])

    started = time.monotonic()
    run(store, scenario)
    assert time.monotonic() - started < 5


def test_seen_marker_memory(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The per-marker cost the module docstring quotes (~150 bytes with its TTL)."""
    with redis.Redis.from_url(redis_url) as client:
        before = int(client.info("memory")["used_memory"])
        rewards = [reward(f"event-{i:08d}") for i in range(20_000)]

        async def scenario(store: RewardStore) -> None:
            for start in range(0, len(rewards), 1000):
                await store.add(rewards[start:start + 1000])

        run(RedisRewardStore(redis_url), scenario)
        client.delete(REWARDS_STREAM)
        per_marker = (int(client.info("memory")["used_memory"]) - before) / len(rewards)
    with capsys.disabled():
        print(f"\nseen-marker cost: {per_marker:.0f} bytes")
    assert 60 < per_marker < 200
