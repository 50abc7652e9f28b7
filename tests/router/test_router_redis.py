"""The router logging to a real redis-server: on the stream as sampled, and through an outage."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import redis

from common.storage.keys import DECISIONS_STREAM
from router.store import open_store
from tests._redis_server import RedisServer
from tests._servers import free_port
from tests._wait import wait_for
from tests.router._stack import SIM_ENDPOINT, Stack, experiment, router_stack, settings

BODY = json.dumps({"instances": [[0.3, -0.1, 0.2, 0.0, 0.5, -0.4]]}).encode()


def stream_events(url: str) -> list[dict[str, Any]]:
    with redis.Redis.from_url(url) as client:
        return [json.loads(fields[b"event"]) for _, fields in client.xrange(DECISIONS_STREAM)]


async def _wave(url: str, count: int, prefix: str) -> list[tuple[int, str]]:
    """``count`` concurrent invocations with inference ids ``prefix-i``; (status, id) each."""
    async with aiohttp.ClientSession() as session:
        async def one(i: int) -> tuple[int, str]:
            event_id = f"{prefix}-{i}"
            async with session.post(url, data=BODY, headers={
                    "X-Amzn-SageMaker-Inference-Id": event_id,
                    "X-Bandit-Context": json.dumps({"i": i})}) as response:
                await response.read()
                return response.status, event_id
        return list(await asyncio.gather(*(one(i) for i in range(count))))


def wave(stack: Stack, count: int, prefix: str) -> list[tuple[int, str]]:
    url = f"{stack.router_url}/endpoints/{SIM_ENDPOINT}/invocations"
    return asyncio.run(_wave(url, count, prefix))


def test_decisions_land_on_the_stream_with_the_sampled_probabilities(
        redis_url: str, tmp_path: Path) -> None:
    store = open_store(redis_url, spool_path=tmp_path / "spool.jsonl")
    config = settings(experiment(policy={"type": "thompson"}), store=redis_url)
    with router_stack(config, store=store) as stack:
        client = stack.client()
        answers = [client.invoke_endpoint(EndpointName=SIM_ENDPOINT, Body=BODY)
                   for _ in range(30)]
    events = {event["event_id"]: event for event in stream_events(redis_url)}
    assert len(events) == 30
    for answer in answers:
        headers = answer["ResponseMetadata"]["HTTPHeaders"]
        event = events[headers["x-bandit-event-id"]]
        assert event["variant"] == answer["InvokedProductionVariant"]
        assert event["probability"] == float(headers["x-bandit-probability"])
        assert event["probabilities"][event["variant"]] == event["probability"]
        assert abs(sum(event["probabilities"].values()) - 1.0) < 1e-9


def test_a_redis_outage_spools_and_replays_with_nothing_lost_or_doubled(tmp_path: Path) -> None:
    with RedisServer(appendonly=True) as server:
        store = open_store(server.url, spool_path=tmp_path / "spool.jsonl")
        config = settings(experiment(), store=server.url)
        with router_stack(config, store=store) as stack:
            acknowledged: list[str] = []

            def run(prefix: str) -> None:
                results = wave(stack, 100, prefix)
                assert {status for status, _ in results} == {200}
                acknowledged.extend(event_id for _, event_id in results)

            run("before")
            server.stop(kill=True)
            run("during-1")
            ready = httpx.get(f"{stack.router_url}/readyz").json()
            assert ready["status"] == "ready" and ready["store"]["spooling"] is True
            run("during-2")
            server.start()
            wait_for(lambda: not store.status().spooling, 15.0, interval=0.05)
            run("after")
            ready = httpx.get(f"{stack.router_url}/readyz").json()
            assert ready["store"]["spooling"] is False and ready["store"]["spooled"] == 0
        ids = [event["event_id"] for event in stream_events(server.url)]
    assert len(ids) == len(set(ids)) == 400
    assert set(ids) == set(acknowledged)
    # Waves stay in order: the spooled ones are replayed before anything newer.
    order = [event_id.rsplit("-", 1)[0] for event_id in ids]
    assert order == sorted(order, key=["before", "during-1", "during-2", "after"].index)


def test_readyz_is_503_while_the_spool_is_full_and_ready_again_once_replayed(
        tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet: Redis is down from the start
    url = f"redis://127.0.0.1:{port}/0"
    store = open_store(url, spool_path=tmp_path / "spool.jsonl", spool_max_bytes=4096)
    with router_stack(settings(experiment(), store=url), store=store) as stack:
        ready = httpx.get(f"{stack.router_url}/readyz")
        assert ready.status_code == 200 and ready.json()["store"]["spooling"] is True
        statuses = {status for status, _ in wave(stack, 40, "fill")}
        assert statuses == {200, 503}  # the spool took some, then refused
        ready = httpx.get(f"{stack.router_url}/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "not ready"
        assert body["store"]["accepting"] is False
        assert "spool" in body["reason"] and "full" in body["reason"], body
        with RedisServer(port=port):
            wait_for(lambda: httpx.get(f"{stack.router_url}/readyz").status_code == 200, 15,
                     message="not ready again within 15 s")
            assert {status for status, _ in wave(stack, 5, "after")} == {200}
