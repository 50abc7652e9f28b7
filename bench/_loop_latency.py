"""Reward POST → routers serving the new snapshot, end to end (``bench/loop.py``).

Every part runs as in production, each in its own process on our own ``redis-server``:
``bandit-router serve`` × R (one worker each) and ``bandit-router ingest`` (webhook,
joiner, learner), from one config: Thompson over 4 arms, reward aggregate ``first``
(a decision is joined as soon as its first reward is applied).

One round: a decision through the decision API (``POST /v1/experiments/bench/decisions``,
round-robin over the routers), a random pause of 0–200 ms (so the rounds sample every
phase of the joiner's and learner's idle sleeps, 50 ms each), then the timestamp t0 and
its reward (``POST /v1/rewards``, signed). From t0 this process polls, every
``POLL_S``, Redis (``XLEN bandit:joined``, the published ``bandit:policy:bench``
version) and each router's ``GET /readyz`` (``experiments.bench.snapshot_version``)
until every router serves a snapshot newer than the one it served before the reward.
The round's latency is that last router's first observation minus t0; the stages
(reward answered, joined, published, first router) are recorded on the way.

References measured in the same rounds: the reward POST's own round trip (202) and a
``/readyz`` GET's round trip (the resolution of any observation from outside).
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis
from _loop_data import ARMS, ENDPOINT, EXPERIMENT
from _loop_servers import start_ingester, write_config
from _servers import Fleet, Server, start_redis, start_serve

from common.storage.keys import JOINED_STREAM, policy_key
from reward_ingest.signing import sign

SECRET = "bench-loop-secret"  # noqa: S105 - this benchmark's own webhook secret
POLL_S = 0.005
ROUND_TIMEOUT_S = 10.0
WARMUP_ROUNDS = 3


@dataclass
class Round:
    """Seconds from t0 (the reward POST) to each stage; ``inf`` when never seen."""

    answered: float = math.inf
    joined: float = math.inf
    published: float = math.inf
    first_router: float = math.inf
    all_routers: float = math.inf
    readyz_s: list[float] = field(default_factory=list)


@dataclass
class LatencyResult:
    rounds: list[Round]
    routers: int


def _post_reward(client: httpx.Client, url: str, event_id: str, value: float) -> None:
    body = json.dumps({"event_id": event_id, "reward": value}).encode()
    headers = {"Content-Type": "application/json", **sign(SECRET, body, int(time.time()))}
    answer = client.post(f"{url}/v1/rewards", content=body, headers=headers)
    if answer.status_code != 202:
        raise RuntimeError(f"reward POST answered {answer.status_code}: {answer.text}")


def _served(client: httpx.Client, router: Server) -> int:
    document = client.get(f"{router.url}/readyz").json()
    return int(document["experiments"][EXPERIMENT]["snapshot_version"] or 0)


def _published(store: redis.Redis) -> int:
    version: Any = store.hget(policy_key(EXPERIMENT), "version")
    return int(version or 0)


def _joined(store: redis.Redis) -> int:
    length: Any = store.xlen(JOINED_STREAM)
    return int(length)


def one_round(client: httpx.Client, store: redis.Redis, routers: Sequence[Server],
              ingester: Server, k: int, rng: random.Random) -> Round:
    """One decision, its reward, and the wait until every router serves the new snapshot."""
    answer = client.post(f"{routers[k % len(routers)].url}/v1/experiments/{EXPERIMENT}/decisions",
                         json={})
    answer.raise_for_status()
    event_id = answer.json()["event_id"]
    time.sleep(rng.uniform(0.0, 0.2))
    served_before = [_served(client, router) for router in routers]
    joined_before = _joined(store)
    published_before = _published(store)
    result = Round()
    t0 = time.perf_counter()
    _post_reward(client, ingester.url, event_id, float(rng.random() < 0.5))
    result.answered = time.perf_counter() - t0
    waiting = set(range(len(routers)))
    while waiting:
        now = time.perf_counter() - t0
        if now > ROUND_TIMEOUT_S:
            break
        if math.isinf(result.joined) and _joined(store) > joined_before:
            result.joined = now
        if math.isinf(result.published) and _published(store) > published_before:
            result.published = now
        for i in sorted(waiting):
            asked = time.perf_counter()
            version = _served(client, routers[i])
            result.readyz_s.append(time.perf_counter() - asked)
            if version != served_before[i]:
                seen = time.perf_counter() - t0
                waiting.discard(i)
                result.first_router = min(result.first_router, seen)
                if not waiting:
                    result.all_routers = seen
        time.sleep(POLL_S)
    return result


def _wait_initial_snapshot(client: httpx.Client, routers: Sequence[Server]) -> None:
    deadline = time.monotonic() + 30.0
    while any(_served(client, router) < 1 for router in routers):
        if time.monotonic() > deadline:
            raise RuntimeError("routers never served the learner's first snapshot")
        time.sleep(0.05)


def measure(fleet: Fleet, *, routers: int, rounds: int,
            progress: Callable[[str], None]) -> LatencyResult:
    """Start Redis, the routers and the ingester; run the rounds; leave stopping to ``fleet``."""
    store_url = start_redis(fleet).url
    started = []
    for i in range(routers):
        name = f"router{i + 1}"
        config = write_config(fleet, name, store_url, EXPERIMENT, ENDPOINT, ARMS)
        started.append(start_serve(fleet, name, config))
    config = write_config(fleet, "ingester", store_url, EXPERIMENT, ENDPOINT, ARMS)
    ingester = start_ingester(fleet, config, SECRET)
    rng = random.Random(0)
    store = redis.Redis.from_url(store_url)
    results: list[Round] = []
    try:
        with httpx.Client(timeout=5.0) as client:
            _wait_initial_snapshot(client, started)
            for k in range(WARMUP_ROUNDS + rounds):
                result = one_round(client, store, started, ingester, k, rng)
                if k >= WARMUP_ROUNDS:
                    results.append(result)
                if (k + 1) % 25 == 0:
                    progress(f"latency: {k + 1 - WARMUP_ROUNDS} of {rounds} rounds")
    finally:
        store.close()
    for server in fleet.servers:
        if server.process.poll() is not None:
            print(f"warning: {server.name} exited during the run:\n{server.log_tail()}",
                  file=sys.stderr)
    return LatencyResult(results, routers)
