"""Reward statistics: written by the learner exactly once, read by ``/stats`` and ``/timeline``.

The learner adds each batch's rewards to ``bandit:stats:{E}`` in its checkpoint script,
so crashes (cancellations at random moments) and lease loss never count an event twice
or lose one; the totals always agree with the policy's version (one per event learned).
The router reads them through its own ``StatsSource`` (it never imports the ingester).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import math
import random
import statistics
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from bandit import load_policy
from common.config import Secrets, Settings, parse_settings
from common.config_sections import WeightsPushConfig
from common.learner_stats import TIMELINE_MAXLEN, MemoryLearnerStats
from common.storage.keys import pushes_key, stats_key, timeline_key
from reward_ingest.errors import LeaseLost
from reward_ingest.join_rules import JoinedEvent
from reward_ingest.joiner import JoinedLog
from reward_ingest.learner import LearnerSettings, MemoryCheckpoints, MemoryLearner, RedisLearner
from reward_ingest.lease import MemoryLeaseTable
from reward_ingest.pusher import PushRecord, WeightPusher, default_client_factory
from reward_ingest.stats_sink import RedisPushLog, push_recorder
from router.app import create_app
from router.registry import MemoryRegistry
from router.stats import RewardTotals, last_push, parse_totals
from router.stats_source import RedisStatsSource
from router.store import MemoryStore
from router.timeline import build_timeline
from tests._redis_server import RedisServer
from tests._servers import run_asgi
from tests._wait import wait_for
from tests.reward_ingest._moto import aws_env, create_endpoint, moto_server
from tests.reward_ingest._pipeline import (
    T0,
    crash_repeatedly,
    decision,
    drive_redis,
    fixed_input,
    write_input,
)

TOKEN = "stats-test-token"  # noqa: S105 - a test's own admin token
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def joined(event_id: str, variant: str, value: float, *, default: bool = False,
           experiment: str = "first", outcome: str = "ok", **options: Any) -> JoinedEvent:
    event = decision(event_id, experiment, T0, variant=variant, **options)
    event["outcome"] = outcome
    return JoinedEvent(json.dumps(event, separators=(",", ":")), value, default, 1, T0)


# -- the arithmetic -------------------------------------------------------------------


def test_mean_and_normal_interval_with_the_sample_variance() -> None:
    rng = random.Random(3)
    values = [rng.random() for _ in range(50)]
    totals = RewardTotals(n=50, total=sum(values), squares=sum(v * v for v in values))
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    assert totals.mean == pytest.approx(mean)
    assert totals.ci95 == pytest.approx((mean - 1.959964 * sd / math.sqrt(50),
                                         mean + 1.959964 * sd / math.sqrt(50)))
    assert RewardTotals(n=1, total=0.7, squares=0.49).ci95 is None  # n < 2: no interval
    assert RewardTotals(n=1, total=0.7, squares=0.49).mean == pytest.approx(0.7)
    assert RewardTotals().mean is None and RewardTotals().ci95 is None
    constant = RewardTotals(n=3, total=3.0, squares=3.0 - 1e-15)  # rounding below zero
    assert constant.ci95 == pytest.approx((1.0, 1.0))
    parsed = parse_totals({"A:n": 3.0, "A:sum": 2.0, "A:sumsq": 2.0, "A:defaults": 1.0,
                           "B:n": 1.0, "B:sum": 0.5, "B:sumsq": 0.25})
    assert parsed["A"] == RewardTotals(3, 2.0, 2.0, 1) and parsed["B"].defaults == 0


def test_timeline_rolling_mean_since_and_limit() -> None:
    points = [json.dumps({"t": T0 + i, "policy_version": i, "events": 10, "variants": {
        "A": {"n": 5, "sum": float(i), "defaults": 0, "served": 0.5, "probability": 0.5},
        "B": {"n": 5, "sum": 5.0, "defaults": 1, "served": 0.5, "probability": 0.5}}})
        for i in range(6)]
    timeline = build_timeline("first", ["A", "B", "C"], [*points, "not json"], window=10)
    assert timeline.variants == ["A", "B", "C"] and len(timeline.points) == 6
    a = [p.variants["A"] for p in timeline.points]
    assert [v.mean_reward for v in a] == [i / 5 for i in range(6)]
    # Whole points until 10 rewards: the last two points (i-1, i) → (2i - 1) / 10.
    assert [v.rolling_mean_reward for v in a] == pytest.approx(
        [0.0, 0.1, 0.3, 0.5, 0.7, 0.9])
    assert a[0].traffic_share == 0.5 and timeline.points[0].variants["B"].defaults == 1
    newer = build_timeline("first", ["A", "B"], points, since=T0 + 3, limit=2, window=10)
    assert [p.t for p in newer.points] == [T0 + 4, T0 + 5]
    assert newer.points[-1].variants["A"].rolling_mean_reward == pytest.approx(0.9)


# -- the learner writes them ----------------------------------------------------------


def test_memory_learner_records_totals_and_timeline_with_each_checkpoint() -> None:
    log = JoinedLog()
    events = [joined("a", "A", 1.0), joined("b", "A", 0.0, default=True, outcome="model_error"),
              joined("c", "B", 0.5), joined("d", "B", 1.0, targeted=True),  # not learned
              joined("e", "Gone", 1.0), joined("f", "A", 1.0, experiment="maxed")]
    for event in events:
        log.append(event)
    checkpoints = MemoryCheckpoints()
    settings = LearnerSettings("first", {"type": "thompson"}, ("A", "B", "C"), batch=2,
                               timeline_interval_s=0.0)

    async def run() -> MemoryLearner:
        learner = MemoryLearner(settings, log, checkpoints, MemoryLeaseTable())
        assert await learner.lease.try_acquire()
        await learner.restore()
        while await learner.step():
            pass
        return learner

    learner = asyncio.run(run())
    totals = parse_totals(asyncio.run(checkpoints.stats.read_totals("first")))
    # Each learned decision logged 1/3 for every variant: Σ logged p is 1 for each,
    # chosen (A twice, B once) or not (C).
    served = {name: t.served for name, t in totals.items()}
    assert served == pytest.approx({"A": 1.0, "B": 1.0, "C": 1.0})
    # Every invocation took 1.25 ms: bucket 1, (1, 2.5] ms.
    assert totals["A"].latencies[:3] == (0, 2, 0) and totals["A"].p99_ms == 2.5
    assert totals["C"].latencies == () and totals["C"].p99_ms is None
    assert {name: dataclasses.replace(t, served=0.0, latencies=())
            for name, t in totals.items()} == {
        "A": RewardTotals(2, 1.0, 1.0, 1, errors=1), "B": RewardTotals(1, 0.5, 0.25, 0),
        "C": RewardTotals()}
    assert learner.policy is not None and learner.policy.version == 3
    points = [json.loads(p) for p in asyncio.run(checkpoints.stats.read_timeline("first"))]
    assert [p["events"] for p in points] == [2, 1]  # batches (a, b), (c, d); (e, f): none
    assert points[-1]["policy_version"] == 3
    assert set(points[0]["variants"]) == {"A", "B", "C"}
    published = checkpoints.snapshots.latest("first")
    assert published is not None
    assert points[0]["variants"]["A"] == {"n": 2.0, "sum": 1.0, "defaults": 1.0,
                                          "served": pytest.approx(1 / 3),
                                          "probability": pytest.approx(
                                              load_policy(published.blob)
                                              .probabilities(None, None)["A"], abs=0.2)}
    # A second learner restoring the checkpoint adds nothing: the events are behind it.
    asyncio.run(run())
    assert parse_totals(asyncio.run(checkpoints.stats.read_totals("first"))) == totals


def test_timeline_is_bounded() -> None:
    stats = MemoryLearnerStats()
    for i in range(TIMELINE_MAXLEN + 5):
        stats.append_point("x", str(i))
    stored = asyncio.run(stats.read_timeline("x"))
    assert len(stored) == TIMELINE_MAXLEN and stored[0] == "5"


def redis_totals(url: str, name: str) -> dict[str, float]:
    with redis.Redis.from_url(url, decode_responses=True) as client:
        return {k: float(v) for k, v in client.hgetall(stats_key(name)).items()}


def final_version(url: str, name: str) -> int:
    with redis.Redis.from_url(url) as client:
        return load_policy(client.hget(f"bandit:policy:{name}", "snapshot")).version


def test_redis_totals_exactly_once_under_crashes(redis_server: RedisServer) -> None:
    """Cancel the Redis joiner + learners at random moments, many times: the totals equal an
    uninterrupted run's, and count exactly the events each policy learned."""
    base = redis_server.url.rsplit("/", 1)[0]
    clean, crashed = base + "/3", base + "/4"
    data = fixed_input(11, n=1500)
    for url in (clean, crashed):
        with redis.Redis.from_url(url) as client:
            client.flushdb()
        asyncio.run(write_input(url, data))
    rounds = asyncio.run(drive_redis(clean, lease_ttl_s=0.3))
    assert rounds >= 30
    rng = random.Random(5)

    # Short lives: 12 of them cannot finish the work, so every crash is mid-work.
    assert asyncio.run(crash_repeatedly(crashed, rng, max_rounds=rounds // 15)) >= 10
    for name in ("first", "maxed", "summed"):
        reference = redis_totals(clean, name)
        assert redis_totals(crashed, name) == reference
        learned = sum(v for k, v in reference.items() if k.endswith(":n"))
        assert learned == final_version(clean, name) > 100  # one version per event learned


def test_a_fenced_learner_records_nothing(redis_url: str) -> None:
    async def run() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            settings = LearnerSettings("first", {"type": "thompson"}, ("A", "B"), batch=10)
            learner = RedisLearner(client, settings)
            assert await learner.lease.try_acquire()
            await learner.restore()
            await client.xadd("bandit:joined", joined("a", "A", 1.0).fields())
            assert await learner.step() == 1
            await client.xadd("bandit:joined", joined("b", "B", 1.0).fields())
            await client.set("bandit:learner:first:lease", "somebody-else")
            with pytest.raises(LeaseLost):
                await learner.step()
        finally:
            await client.aclose()

    asyncio.run(run())
    third = pytest.approx(1 / 3)
    assert redis_totals(redis_url, "first") == {"A:n": 1.0, "A:sum": 1.0, "A:sumsq": 1.0,
                                                "A:served": third, "B:served": third,
                                                "C:served": third, "A:lat:1": 1.0}
    with redis.Redis.from_url(redis_url) as client:
        assert client.llen(timeline_key("first")) == 1


# -- the pusher records its pushes ----------------------------------------------------


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


def test_pushes_are_recorded_for_stats(moto_url: str, redis_url: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in aws_env(moto_url).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    factory = default_client_factory()
    create_endpoint(factory(), "stats-ep", {"A": 1.0, "B": 1.0})
    config = WeightsPushConfig(enabled=True, interval_s=1.0, min_weight=0.05, max_step=1.0)
    ticks = itertools.count(T0, 10.0)  # every push is past the interval

    def clock() -> float:
        return next(ticks)

    memory = MemoryLearnerStats()

    async def push() -> list[PushRecord | None]:
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            log = RedisPushLog(client, maxlen=2)
            to_memory = WeightPusher(factory, "stats-ep", config, clock,
                                     on_record=push_recorder(memory, "exp"))
            to_redis = WeightPusher(factory, "stats-ep", config, clock,
                                    on_record=push_recorder(log, "exp"))
            first = await to_memory.push({"A": 0.8, "B": 0.2}, "learned split")
            again = await to_memory.push({"A": 0.8, "B": 0.2}, "learned split")
            records = [first, again]
            for shares in ({"A": 0.3, "B": 0.7}, {"A": 0.6, "B": 0.4}, {"A": 0.6, "B": 0.4}):
                records.append(await to_redis.push(shares, "learned split"))
            return records
        finally:
            await client.aclose()

    records = asyncio.run(push())
    assert records[0] is not None and records[0].skipped is None
    assert records[1] is not None and records[1].skipped is not None  # unchanged: a skip
    stored = asyncio.run(memory.read_pushes("exp"))
    assert len(stored) == 2  # the skip is recorded too; last_push takes the real one
    pushed = last_push(stored)
    assert pushed is not None and pushed.weights == pytest.approx({"A": 0.8, "B": 0.2})
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        kept = client.lrange(pushes_key("exp"), 0, -1)
    assert len(kept) == 2  # bounded: the oldest of three went
    redis_push = last_push(kept)
    assert redis_push is not None and redis_push.weights == pytest.approx({"A": 0.6, "B": 0.4})


# -- the router reads them ------------------------------------------------------------


def router_settings(store: str) -> Settings:
    return parse_settings({"store": store, "experiments": [{
        "name": "first", "endpoint": "ep-first", "backend": "http",
        "variants": [{"name": n, "url": "http://127.0.0.1:9/"} for n in ("A", "B", "C")],
        "policy": {"type": "thompson"}}]})


def test_stats_and_timeline_routes_read_the_learners_redis_keys(redis_url: str) -> None:
    data = fixed_input(13, n=600)
    asyncio.run(write_input(redis_url, data))
    asyncio.run(drive_redis(redis_url))
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        client.rpush(pushes_key("first"), json.dumps(
            {"at": T0, "endpoint": "ep-first", "before": {}, "after": {"A": 0.5, "B": 0.3,
                                                                       "C": 0.2},
             "reason": "learned split", "skipped": None}))
    totals = parse_totals(redis_totals(redis_url, "first"))
    app = create_app(router_settings(redis_url), store=MemoryStore(), registry=MemoryRegistry(),
                     secrets=Secrets(admin_token=TOKEN))
    with run_asgi(app) as url:
        assert httpx.get(f"{url}/v1/experiments/first/stats").status_code == 401
        stats = httpx.get(f"{url}/v1/experiments/first/stats", headers=AUTH).json()
        timeline = httpx.get(f"{url}/v1/experiments/first/timeline?limit=5",
                             headers=AUTH).json()
        since = httpx.get(f"{url}/v1/experiments/first/timeline?since={2**40}",
                          headers=AUTH).json()
        bad = httpx.get(f"{url}/v1/experiments/first/timeline?limit=0", headers=AUTH)
        missing = httpx.get(f"{url}/v1/experiments/nope/timeline", headers=AUTH)
    assert stats["reward_stats"] == "learner"
    assert stats["last_push"]["weights"] == {"A": 0.5, "B": 0.3, "C": 0.2}
    for variant in stats["variants"]:
        expected = totals[variant["name"]]
        assert variant["rewards_joined"] == expected.n > 10
        assert variant["default_rewards"] == expected.defaults
        assert variant["mean_reward"] == pytest.approx(expected.mean)
        assert variant["mean_reward_ci95"] == pytest.approx(list(expected.ci95 or ()))
        low, high = variant["mean_reward_ci95"]
        assert low < variant["mean_reward"] < high
    assert {v["name"]: v["last_weight_pushed"] for v in stats["variants"]} == \
        {"A": 0.5, "B": 0.3, "C": 0.2}
    assert 1 <= len(timeline["points"]) <= 5 and timeline["reward_stats"] == "learner"
    learned = sum(v["n"] for p in timeline["points"] for v in p["variants"].values())
    assert 0 < learned <= sum(t.n for t in totals.values())
    assert since["points"] == []
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_query"
    assert "limit" in bad.json()["message"]
    assert missing.status_code == 404


def test_stats_without_a_learner_say_so_and_an_unreachable_store_degrades() -> None:
    app = create_app(router_settings("memory://"), store=MemoryStore(),
                     registry=MemoryRegistry(), secrets=Secrets(admin_token=TOKEN))
    with run_asgi(app) as url:
        stats = httpx.get(f"{url}/v1/experiments/first/stats", headers=AUTH).json()
        timeline = httpx.get(f"{url}/v1/experiments/first/timeline", headers=AUTH).json()
    assert stats["reward_stats"] == "none" and timeline["reward_stats"] == "none"
    assert all(v["rewards_joined"] is None and v["mean_reward"] is None
               for v in stats["variants"])
    assert timeline["points"] == []
    assert [(w["code"], w["severity"]) for w in stats["warnings"]] == [
        ("reward_figures_missing", "info")]
    # A Redis that does not answer: stats degrade to null figures, timeline is a 503.
    from tests._servers import free_port

    down = RedisStatsSource(f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(router_settings("memory://"), store=MemoryStore(),
                     registry=MemoryRegistry(), secrets=Secrets(admin_token=TOKEN),
                     stats_source=down)
    with run_asgi(app) as url:
        stats = httpx.get(f"{url}/v1/experiments/first/stats", headers=AUTH).json()
        timeline = httpx.get(f"{url}/v1/experiments/first/timeline", headers=AUTH)
    assert stats["reward_stats"] == "unavailable"
    assert all(v["rewards_joined"] is None for v in stats["variants"])
    assert [(w["code"], w["severity"]) for w in stats["warnings"]] == [
        ("reward_figures_missing", "warning")]
    assert timeline.status_code == 503 and timeline.json()["error"] == "store_unavailable"


def test_on_redis_every_replica_reads_the_same_checks_and_markers(redis_url: str) -> None:
    """Two routers on one Redis: the learner's Σ logged p and the joiner's late count
    reach both, and a guardrail trip or a config change on one is a marker on the other."""
    data = fixed_input(13, n=600)
    asyncio.run(write_input(redis_url, data))
    asyncio.run(drive_redis(redis_url))
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        late = int(client.hget("bandit:join:counts:first", "late_rewards") or 0)
        client.rpush(pushes_key("first"), json.dumps(
            {"at": T0, "endpoint": "ep-first", "before": {}, "after": {"A": 0.5, "B": 0.5,
                                                                       "C": 0.0},
             "reason": "learned split", "skipped": None}))
    totals = parse_totals(redis_totals(redis_url, "first"))
    learned = sum(t.n for t in totals.values())
    # Every learned decision logged 1/3 for each of the three variants.
    for variant in ("A", "B", "C"):
        assert totals[variant].served == pytest.approx(learned / 3)
    settings = parse_settings({"store": redis_url, "experiments": [{
        "name": "first", "endpoint": "ep-first", "backend": "http",
        "variants": [{"name": n, "url": "http://127.0.0.1:9/"} for n in ("A", "B", "C")],
        "policy": {"type": "static", "weights": {"A": 1.0, "B": 0.0, "C": 0.0}},
        "guardrails": {"min_requests": 5, "error_rate": 0.5}}]})

    def replica() -> Any:
        return create_app(settings, store=MemoryStore(), registry=MemoryRegistry(),
                          secrets=Secrets(admin_token=TOKEN))

    with run_asgi(replica()) as one, run_asgi(replica()) as other:
        for _ in range(5):  # A's URL answers nothing: every call is `unavailable`
            httpx.post(f"{one}/endpoints/ep-first/invocations", content=b"{}",
                       headers={"Content-Type": "application/json"}, timeout=10)
        added = httpx.post(f"{one}/v1/experiments/first/variants", json={
            "name": "D", "url": "http://127.0.0.1:9/"}, headers=AUTH)
        assert added.status_code == 201, added.text

        def kinds() -> set[str]:
            timeline = httpx.get(f"{other}/v1/experiments/first/timeline",
                                 headers=AUTH).json()
            return {m["kind"] for m in timeline["markers"]}

        wait_for(lambda: kinds() == {"weight_push", "guardrail_trip", "policy_change"}, 5.0,
                 message=kinds)
        stats = httpx.get(f"{other}/v1/experiments/first/stats", headers=AUTH).json()
        tripped = httpx.get(f"{one}/v1/experiments/first/stats", headers=AUTH).json()
    assert stats["late_rewards"] == late > 0
    assert stats["sample_ratio"] is not None and stats["sample_ratio"]["p_value"] > 0.001
    assert "sample_ratio_mismatch" not in {w["code"] for w in stats["warnings"]}
    assert {v["name"]: v["p99_ms"] for v in stats["variants"]} == {
        "A": 2.5, "B": 2.5, "C": 2.5}  # every logged invocation took 1.25 ms
    shares = {v["name"]: v["realised_share"] for v in stats["variants"]}
    assert shares == pytest.approx({n: t.n / learned for n, t in totals.items()})
    # The trip is the replica's own state; the marker is everyone's.
    assert {v["name"]: v["state"] for v in tripped["variants"]}["A"] == "suspended"
    assert {v["name"]: v["state"] for v in stats["variants"]}["A"] == "healthy"
