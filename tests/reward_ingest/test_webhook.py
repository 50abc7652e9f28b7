"""POST /v1/rewards over a real uvicorn, with httpx as the client.

The memory store serves most tests; the Redis tests use the session redis-server and
read the stream back with a synchronous client. Requests are signed with the real
clock, since the app under test uses ``time.time``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from common.config import Secrets, Settings, parse_settings
from common.storage.keys import DECISIONS_STREAM, JOINED_STREAM, REWARDS_STREAM
from reward_ingest.join_rules import JoinedEvent, JoinRule
from reward_ingest.joiner import RedisJoiner
from reward_ingest.rewards import MemoryRewardStore, RedisRewardStore, Reward, RewardStore
from reward_ingest.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from reward_ingest.webhook import MAX_BODY_BYTES, create_webhook_app
from tests._redis_server import RedisServer
from tests._servers import free_port, run_asgi
from tests._wait import wait_for
from tests.reward_ingest._pipeline import decision

SECRET = "whsec_test"  # noqa: S105 - a test secret
SETTINGS: Settings = parse_settings({"experiments": [
    {"name": "churn", "endpoint": "churn-ep", "variants": [{"name": "A"}, {"name": "B"}],
     "policy": {"type": "thompson"}},
    {"name": "revenue", "endpoint": "revenue-ep", "variants": [{"name": "A"}, {"name": "B"}],
     "policy": {"type": "epsilon_greedy"}, "reward": {"min": -5, "max": 100}},
]})


class Hook:
    """A running webhook app: its URL, its store, a signing client."""

    def __init__(self, url: str, store: RewardStore, secret: str | None) -> None:
        self.url, self.store, self.secret = url, store, secret
        self.client = httpx.Client(base_url=url, timeout=10)

    def post(self, body: Any, *, timestamp: int | None = None, signer: str | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        """POST ``body`` signed with ``signer`` (default: the app's secret, if it has one)."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        signed = dict(headers or {})
        key = signer or self.secret
        if key is not None:
            signed = {**sign(key, raw, int(time.time()) if timestamp is None else timestamp),
                      **signed}
        return self.client.post("/v1/rewards", content=raw,
                                headers={"Content-Type": "application/json", **signed})

    def stored(self) -> list[Reward]:
        return [r for _, r in asyncio.run(self.store.read(10_000))]


@contextmanager
def serve(secrets: tuple[str, ...] = (SECRET,), store: RewardStore | None = None,
          sign_with: str | None = SECRET) -> Iterator[Hook]:
    store = store if store is not None else MemoryRewardStore()
    app = create_webhook_app(SETTINGS, store, Secrets(webhook_secrets=secrets))
    with run_asgi(app) as url:
        hook = Hook(url, store, sign_with if secrets else None)
        try:
            yield hook
        finally:
            hook.client.close()


@pytest.fixture(scope="module")
def shared() -> Iterator[Hook]:
    """One signed app for the tests that only look at the answer, not the store."""
    with serve() as hook:
        yield hook


@pytest.fixture
def hook() -> Iterator[Hook]:
    with serve() as hook:
        yield hook


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == code
    message: str = body["message"]
    return message


# --- accepted ------------------------------------------------------------------------------


def test_a_single_reward_is_accepted(hook: Hook) -> None:
    before = time.time()
    response = hook.post({"event_id": "e1", "reward": 1})
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0}
    [stored] = hook.stored()
    assert (stored.event_id, stored.reward) == ("e1", 1.0)
    assert before <= stored.received_at <= time.time()
    assert stored.reward_id.startswith("auto-")


def test_a_batch_is_accepted_in_order_with_optional_fields(hook: Hook) -> None:
    body = {"rewards": [{"event_id": "e1", "reward": 0.5, "experiment": "churn"},
                        {"event_id": "e2", "reward": 99, "experiment": "revenue",
                         "reward_id": "order-7"},
                        {"event_id": "e3", "reward": -3.25, "experiment": None,
                         "reward_id": None}]}
    assert hook.post(body).json() == {"accepted": 3, "duplicates": 0}
    stored = hook.stored()
    assert [(r.event_id, r.reward) for r in stored] == [("e1", 0.5), ("e2", 99.0),
                                                         ("e3", -3.25)]
    assert stored[1].reward_id == "order-7"


def test_a_retried_delivery_is_a_duplicate(hook: Hook) -> None:
    raw = json.dumps({"rewards": [{"event_id": "e1", "reward": 1},
                                  {"event_id": "e2", "reward": 0}]}).encode()
    headers = sign(SECRET, raw, int(time.time()))
    assert hook.post(raw, headers=headers).json() == {"accepted": 2, "duplicates": 0}
    assert hook.post(raw, headers=headers).json() == {"accepted": 0, "duplicates": 2}
    assert len(hook.stored()) == 2


def test_re_signed_retries_are_duplicates_with_or_without_reward_id(hook: Hook) -> None:
    now = int(time.time())
    body = {"event_id": "e1", "reward": 1, "reward_id": "delivery-1"}
    assert hook.post(body, timestamp=now - 5).json() == {"accepted": 1, "duplicates": 0}
    assert hook.post(body, timestamp=now).json() == {"accepted": 0, "duplicates": 1}
    # Without a reward_id the event id and the value are the identity, whatever the
    # delivery: re-signed, or in another batch.
    plain = {"event_id": "e2", "reward": 1}
    assert hook.post(plain, timestamp=now - 5).json() == {"accepted": 1, "duplicates": 0}
    assert hook.post(plain, timestamp=now).json() == {"accepted": 0, "duplicates": 1}
    assert hook.post({"rewards": [{"event_id": "e3", "reward": 0}, plain]},
                     timestamp=now).json() == {"accepted": 1, "duplicates": 1}
    # Equal rewards for one event that are distinct reports carry distinct reward_ids.
    again = [{"event_id": "e2", "reward": 1, "reward_id": f"order-{i}"} for i in (1, 2)]
    assert hook.post({"rewards": again}).json() == {"accepted": 2, "duplicates": 0}


def test_unsigned_mode_accepts_without_headers_and_warns_once(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="reward_ingest.webhook"), \
            serve(secrets=()) as hook:
        assert hook.post({"event_id": "e1", "reward": 1}).json() \
            == {"accepted": 1, "duplicates": 0}
        assert hook.post({"event_id": "e1", "reward": 1}).json() \
            == {"accepted": 0, "duplicates": 1}
        # A signature from somebody is not checked either (there is nothing to check with).
        assert hook.post({"event_id": "e2", "reward": 1}, signer="anything").status_code == 202
    warnings = [r.getMessage() for r in caplog.records if "webhook_unsigned" in r.getMessage()]
    assert len(warnings) == 1
    assert "BANDIT_ROUTER_WEBHOOK_SECRET is not set" in warnings[0]


# --- 401 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"signer": "wrong"}, "bad signature: matches none of the configured webhook secrets"),
    ({"timestamp": int(time.time()) - 3600}, "stale timestamp: "),
    ({"timestamp": int(time.time()) + 3600}, "s in the future (tolerance 300 s)"),
    ({"headers": {SIGNATURE_HEADER: "sha1=abc"}}, "malformed X-Bandit-Signature"),
    ({"headers": {TIMESTAMP_HEADER: "yesterday"}}, "malformed X-Bandit-Timestamp"),
])
def test_unauthenticated_deliveries_get_401_with_the_reason(
        hook: Hook, kwargs: dict[str, Any], expected: str) -> None:
    message = error(hook.post({"event_id": "e1", "reward": 1}, **kwargs), 401, "unauthorized")
    assert expected in message
    assert hook.stored() == []


def test_an_unsigned_delivery_gets_401_when_secrets_are_set(hook: Hook) -> None:
    response = hook.client.post("/v1/rewards", json={"event_id": "e1", "reward": 1})
    assert error(response, 401, "unauthorized") == "missing X-Bandit-Timestamp header"
    response = hook.client.post("/v1/rewards", json={"event_id": "e1", "reward": 1},
                                headers={TIMESTAMP_HEADER: str(int(time.time()))})
    assert error(response, 401, "unauthorized") == "missing X-Bandit-Signature header"


def test_a_body_changed_after_signing_gets_401(hook: Hook) -> None:
    raw = b'{"event_id":"e1","reward":0}'
    headers = sign(SECRET, raw, int(time.time()))
    response = hook.post(b'{"event_id":"e1","reward":1}', headers=headers)
    assert error(response, 401, "unauthorized").startswith("bad signature")


def test_both_secrets_are_accepted_during_rotation() -> None:
    with serve(secrets=("old", "new"), sign_with="old") as hook:
        assert hook.post({"event_id": "e1", "reward": 1}).status_code == 202
        assert hook.post({"event_id": "e2", "reward": 1}, signer="new").status_code == 202
        error(hook.post({"event_id": "e3", "reward": 1}, signer="other"), 401, "unauthorized")
        assert [r.event_id for r in hook.stored()] == ["e1", "e2"]


# --- 422: every bad field named ------------------------------------------------------------


@pytest.mark.parametrize(("raw", "problem"), [
    (b'{"event_id":"e1","reward":NaN}', "reward: must be a finite number, got NaN"),
    (b'{"event_id":"e1","reward":Infinity}', "reward: must be a finite number, got Infinity"),
    (b'{"event_id":"e1","reward":-Infinity}',
     "reward: must be a finite number, got -Infinity"),
    (b'{"event_id":"e1","reward":1e400}', "reward: must be a finite number, got a value "
                                          "beyond a double's range"),
    (b'{"event_id":"e1","reward":' + b"9" * 5000 + b"}", "reward: must be a finite number"),
    (b'{"event_id":"e1","reward":true}', "reward: must be a finite number, got a boolean"),
    (b'{"event_id":"e1","reward":"1"}', "reward: must be a finite number, got a string"),
    (b'{"event_id":"e1","reward":null}', "reward: must be a finite number, got null"),
    (b'{"event_id":"e1","reward":[1]}', "reward: must be a finite number, got an array"),
    (b'{"event_id":"e1"}', "reward: is required"),
    (b'{"reward":1}', "event_id: is required"),
    (b'{"event_id":null,"reward":1}', "event_id: must be a string, got null"),
    (b'{"event_id":7,"reward":1}', "event_id: must be a string, got a number"),
    (b'{"event_id":"","reward":1}', "event_id: must not be empty"),
    (b'{"event_id":"' + b"x" * 65 + b'","reward":1}',
     "event_id: must be at most 64 characters, got 65"),
    (b'{"event_id":"a\\nb","reward":1}', "event_id: must contain only printable characters"),
    (b'{"event_id":"e1","reward":1,"reward_id":""}', "reward_id: must not be empty"),
    (b'{"event_id":"e1","reward":1,"reward_id":"' + b"r" * 129 + b'"}',
     "reward_id: must be at most 128 characters, got 129"),
    (b'{"event_id":"e1","reward":1,"reward_id":{}}', "reward_id: must be a string, got an object"),
    (b'{"event_id":"e1","reward":1,"experiment":"nope"}', "experiment: unknown experiment 'nope'"),
    (b'{"event_id":"e1","reward":1,"experiment":3}', "experiment: must be a string, got a number"),
    (b'{"event_id":"e1","reward":1.5,"experiment":"churn"}',
     "reward: must be within [0, 1] for experiment 'churn', got 1.5"),
    (b'{"event_id":"e1","reward":-6,"experiment":"revenue"}',
     "reward: must be within [-5, 100] for experiment 'revenue', got -6"),
    (b'{"event_id":"e1","reward":1,"Reward":2}',
     "body: unknown key 'Reward' (allowed: event_id, reward, experiment, reward_id)"),
    (b"[]", 'body: must be a JSON object: {"event_id", "reward"} or {"rewards": [...]}'),
    (b'"e1"', "body: must be a JSON object"),
    (b'{"rewards":{}}', "rewards: must be a list, got an object"),
    (b'{"rewards":[]}', "rewards: must not be empty"),
    (b'{"rewards":[{"event_id":"e1","reward":1}],"event_id":"e1"}',
     "body: unknown key 'event_id' beside 'rewards'"),
    (b'{"rewards":[{"event_id":"e1","reward":1},7]}',
     "rewards[1]: must be an object, got a number"),
])
def test_each_bad_field_gets_422_naming_it(shared: Hook, raw: bytes, problem: str) -> None:
    response = shared.post(raw)
    message = error(response, 422, "invalid_reward")
    assert message == problem or message.startswith(problem)
    assert response.json()["problems"] == [message]


def test_every_bad_item_is_named_and_nothing_is_half_accepted(hook: Hook) -> None:
    body = {"rewards": [
        {"event_id": "ok-1", "reward": 1},
        {"event_id": "e1", "reward": True},
        {"event_id": "", "reward": 0.5, "experiment": "nope", "x": 1, "y": 2},
        {"reward": 2, "experiment": "churn"},
        {"event_id": "ok-2", "reward": 0},
    ]}
    response = hook.post(body)
    error(response, 422, "invalid_reward")
    problems = response.json()["problems"]
    assert problems == [
        "rewards[1].reward: must be a finite number, got a boolean",
        "rewards[2]: unknown key 'x', 'y' (allowed: event_id, reward, experiment, reward_id)",
        "rewards[2].event_id: must not be empty",
        "rewards[2].experiment: unknown experiment 'nope'",
        "rewards[3].event_id: is required",
        "rewards[3].reward: must be within [0, 1] for experiment 'churn', got 2",
    ]
    assert response.json()["message"] == "; ".join(problems)
    assert hook.stored() == []
    assert hook.post({"rewards": [body["rewards"][0], body["rewards"][4]]}).json() \
        == {"accepted": 2, "duplicates": 0}


def test_a_reward_no_experiment_admits_gets_422_naming_it(hook: Hook) -> None:
    """Without ``experiment``, a reward must lie in some experiment's range: churn
    [0, 1] and revenue [-5, 100] admit [-5, 100]; the joiner checks the decision's own."""
    body = {"rewards": [{"event_id": "e1", "reward": 50}, {"event_id": "e2", "reward": 500},
                        {"event_id": "e3", "reward": -5.5, "experiment": None}]}
    response = hook.post(body)
    error(response, 422, "invalid_reward")
    assert response.json()["problems"] == [
        "rewards[1].reward: must be within the reward range of a configured experiment "
        "([-5, 100]), got 500",
        "rewards[2].reward: must be within the reward range of a configured experiment "
        "([-5, 100]), got -5.5",
    ]
    assert hook.stored() == []
    assert hook.post({"event_id": "e1", "reward": 100}).json() == {"accepted": 1,
                                                                   "duplicates": 0}


def test_disjoint_reward_ranges_are_each_named() -> None:
    settings = parse_settings({"experiments": [
        {"name": f"x{i}", "endpoint": f"ep{i}", "variants": [{"name": "A"}],
         "policy": {"type": "thompson"}, "reward": {"min": 10 * i, "max": 10 * i + 1,
                                                      "default": None}}
        for i in range(7)]})
    with run_asgi(create_webhook_app(settings, MemoryRewardStore(), Secrets())) as url:
        response = httpx.post(f"{url}/v1/rewards", json={"event_id": "e1", "reward": 5})
    message = error(response, 422, "invalid_reward")
    assert message == ("reward: must be within the reward range of a configured experiment "
                       "([0, 1], [10, 11], [20, 21], [30, 31], [40, 41] or 2 more), got 5")


@pytest.mark.parametrize(("raw", "expected"), [
    (b"{", "body is not valid JSON: Expecting property name"),
    (b"", "body is not valid JSON: Expecting value"),
    (b'{"event_id":"e1","reward":1,"reward":2}', "body is not valid JSON: duplicate key 'reward'"),
    (b"\xff\xfe\x00", "body is not valid JSON"),
])
def test_a_body_that_is_not_json_gets_400(shared: Hook, raw: bytes, expected: str) -> None:
    assert error(shared.post(raw), 400, "invalid_json").startswith(expected)


# --- 413 -----------------------------------------------------------------------------------


def test_an_oversized_body_gets_413(shared: Hook) -> None:
    raw = json.dumps({"event_id": "e1", "reward": 1, "pad": "x" * MAX_BODY_BYTES}).encode()
    message = error(shared.post(raw), 413, "payload_too_large")
    assert message == f"body exceeds {MAX_BODY_BYTES} bytes; split the rewards into smaller " \
                      "batches"


def test_an_oversized_chunked_body_gets_413(shared: Hook) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 65536  # 1.25 MiB of whitespace: valid JSON padding, too long
        yield b'{"event_id":"e1","reward":1}'

    response = shared.client.post("/v1/rewards", content=chunks())
    assert response.request.headers.get("transfer-encoding") == "chunked"
    error(response, 413, "payload_too_large")


def test_a_batch_over_1000_gets_413(shared: Hook) -> None:
    body = {"rewards": [{"event_id": f"e{i}", "reward": 1} for i in range(1001)]}
    message = error(shared.post(body), 413, "payload_too_large")
    assert message == "rewards: 1001 in one batch, at most 1000; split the batch"
    ok = {"rewards": [{"event_id": f"e{i}", "reward": 1} for i in range(1000)]}
    now = int(time.time())
    assert shared.post(ok, timestamp=now).json() == {"accepted": 1000, "duplicates": 0}
    assert shared.post(ok, timestamp=now).json() == {"accepted": 0, "duplicates": 1000}


# --- operations ----------------------------------------------------------------------------


def test_healthz_and_metrics_count_outcomes() -> None:
    now = int(time.time())
    with serve() as hook:
        assert hook.client.get("/healthz").json() == {"status": "ok"}
        hook.post({"rewards": [{"event_id": "e1", "reward": 1}, {"event_id": "e2", "reward": 0}]},
                  timestamp=now)
        hook.post({"event_id": "e1", "reward": 1}, timestamp=now)  # same identity as above
        hook.post({"event_id": "e1", "reward": 1, "reward_id": "r"})
        hook.post({"event_id": "e1", "reward": 1, "reward_id": "r"}, timestamp=now - 1)
        hook.post({"rewards": [{"event_id": "e1", "reward": "x"}, {"event_id": "e3"}]})
        hook.post({"event_id": "e1", "reward": 1}, signer="wrong")
        text = hook.client.get("/metrics").text
    samples = {name: float(value) for name, value in
               (line.rsplit(" ", 1) for line in text.splitlines()
                if line.startswith("bandit_ingest_") and "_created" not in line)}
    assert samples == {
        'bandit_ingest_rewards_total{outcome="accepted"}': 3,
        'bandit_ingest_rewards_total{outcome="duplicate"}': 2,
        'bandit_ingest_rewards_total{outcome="rejected"}': 3,  # 2 items in a 422, one 401
        'bandit_ingest_webhook_requests_total{status="202"}': 4,
        'bandit_ingest_webhook_requests_total{status="400"}': 0,
        'bandit_ingest_webhook_requests_total{status="401"}': 1,
        'bandit_ingest_webhook_requests_total{status="413"}': 0,
        'bandit_ingest_webhook_requests_total{status="422"}': 1,
        'bandit_ingest_webhook_requests_total{status="503"}': 0,
    }


def test_a_dead_store_gets_503_with_retry_after() -> None:
    store = RedisRewardStore(f"redis://127.0.0.1:{free_port()}/0")
    with serve(store=store) as hook:
        response = hook.post({"event_id": "e1", "reward": 1})
        assert "retry later" in error(response, 503, "unavailable")
        assert response.headers["retry-after"] == "1"


# --- Redis ---------------------------------------------------------------------------------


def test_redis_50_concurrent_retries_of_one_signed_body_record_it_once(redis_url: str) -> None:
    raw = json.dumps({"event_id": "e1", "reward": 0.75, "experiment": "churn"}).encode()
    headers = {"Content-Type": "application/json", **sign(SECRET, raw, int(time.time()))}

    async def deliver(url: str) -> list[dict[str, int]]:
        async with httpx.AsyncClient(base_url=url, timeout=10,
                                     limits=httpx.Limits(max_connections=50)) as client:
            responses = await asyncio.gather(*(client.post("/v1/rewards", content=raw,
                                                           headers=headers)
                                               for _ in range(50)))
        assert {r.status_code for r in responses} == {202}
        return [r.json() for r in responses]

    store = RedisRewardStore(redis_url)
    with serve(store=store) as hook:
        answers = asyncio.run(deliver(hook.url))
    assert sum(a["accepted"] for a in answers) == 1
    assert sum(a["duplicates"] for a in answers) == 49
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        entries = client.xrange(REWARDS_STREAM)
    assert len(entries) == 1
    stored = json.loads(entries[0][1]["reward"])
    assert set(stored) == {"event_id", "reward", "received_at", "reward_id"}
    assert (stored["event_id"], stored["reward"]) == ("e1", 0.75)
    assert store.flushes < 50  # group commit: concurrent deliveries share round trips


def test_a_503_whose_write_landed_is_recognised_on_the_re_signed_retry() -> None:
    """Redis frozen past the store's 1 s timeout: the webhook answers 503, Redis then
    writes the reward anyway; the sender's retry, re-signed with a new timestamp and no
    ``reward_id``, is the same reward, and ``aggregate: sum`` learns it once."""
    now = int(time.time())
    body = {"event_id": "e1", "reward": 0.75, "experiment": "revenue"}
    with RedisServer() as server, \
            redis.Redis.from_url(server.url, decode_responses=True) as client:
        store = RedisRewardStore(server.url)
        with serve(store=store) as hook:
            assert hook.post({"event_id": "warm-up", "reward": 0}).status_code == 202
            assert server.pid is not None
            thaw = threading.Timer(1.5, os.kill, (server.pid, signal.SIGCONT))
            os.kill(server.pid, signal.SIGSTOP)
            thaw.start()
            try:
                response = hook.post(body, timestamp=now - 2)
            finally:
                thaw.join()
                os.kill(server.pid, signal.SIGCONT)
            assert "retry later" in error(response, 503, "unavailable")
            # The frozen write lands on SIGCONT.
            wait_for(lambda: client.xlen(REWARDS_STREAM) >= 2, 5,
                     message="the frozen write never landed")
            retry = hook.post(body, timestamp=now)
        assert retry.status_code == 202, retry.text
        client.xadd(DECISIONS_STREAM, {"event": json.dumps(decision("e1", "revenue", now))})
        joined = asyncio.run(_join_all(server.url, {"revenue": JoinRule(
            mode="sum", min=-5, max=100, default=None, wait_seconds=60)}, now + 61))
        stored = client.xlen(REWARDS_STREAM)
    assert [(e.decision["event_id"], e.reward, e.rewards) for e in joined] == [("e1", 0.75, 1)]
    assert retry.json() == {"accepted": 0, "duplicates": 1}
    assert stored == 2  # the warm-up and e1, once


async def _join_all(url: str, rules: dict[str, JoinRule], now: float) -> list[JoinedEvent]:
    """Run a Redis joiner over both streams until every window due at ``now`` is closed."""
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        joiner = RedisJoiner(client, rules)
        assert await joiner.lease.try_acquire()
        while await joiner.step(now):
            pass
        entries = await client.xrange(JOINED_STREAM)
        return [JoinedEvent.from_fields(fields) for _, fields in entries]
    finally:
        await client.aclose()
