"""The whole loop: boto3 → router → simulator, signed rewards back, the policy converges.

Two stores: ``memory://`` (the embedded default: router, webhook and ingester in one
app) and a real ``redis-server`` (router, and the ingester app beside it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import vowpalwabbit

from bandit import load_policy
from cli.embedded import embedded_app
from cli.ingest import ingest_app
from common.config import Settings, parse_settings
from reward_ingest.signing import sign
from router.app import create_app
from router.store import open_store
from simulator import create_app as create_simulator
from simulator import enable_context_header, generate, make_client, parse_variants
from simulator.models import make_dataset
from tests._redis_server import RedisServer
from tests._servers import run_asgi
from tests._wait import wait_for
from tests.router._stack import SIM_ENDPOINT, backend_factory

SECRET = "loop-test-secret"  # noqa: S105 - a test's own webhook secret
VARIANTS = "Variant1=logistic,Variant2=forest,Variant3=stump"  # forest is best (~0.90)
REQUESTS = 1500


def config(store: str, tmp_path: Path) -> Settings:
    return parse_settings({
        "store": store,
        "archive": {"path": str(tmp_path / "archive")},
        "decision_log": {"spool_path": str(tmp_path / "spool.jsonl")},
        "experiments": [{
            "name": "loop", "endpoint": SIM_ENDPOINT,
            "variants": [{"name": "Variant1"}, {"name": "Variant2"}, {"name": "Variant3"}],
            "policy": {"type": "thompson"},
            "reward": {"aggregate": "first", "default": 0, "wait_seconds": 600},
        }],
    })


@contextmanager
def simulator() -> Iterator[str]:
    with run_asgi(create_simulator(parse_variants(VARIANTS, endpoint=SIM_ENDPOINT,
                                                  seed=3))) as url:
        yield url


def post_rewards(url: str, rewards: list[dict[str, Any]]) -> None:
    body = json.dumps({"rewards": rewards}).encode()
    headers = {"Content-Type": "application/json", **sign(SECRET, body, int(time.time()))}
    answer = httpx.post(f"{url}/v1/rewards", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == len(rewards)


def drive(router_url: str, rewards_url: str) -> list[Any]:
    """Send traffic through the router and report every outcome as a reward."""
    client = make_client(router_url, pool_size=8)
    enable_context_header(client)
    pool = make_dataset(seed=3).pool
    records, batch = [], []
    for record in generate(client, SIM_ENDPOINT, pool, count=REQUESTS, concurrency=8, seed=1):
        assert record.error is None and record.event_id is not None
        records.append(record)
        batch.append({"event_id": record.event_id, "reward": record.reward})
        if len(batch) == 100:
            post_rewards(rewards_url, batch)
            batch = []
    if batch:
        post_rewards(rewards_url, batch)
    return records


def served_policy_version(router_url: str) -> int:
    ready = httpx.get(f"{router_url}/readyz").json()
    return int(ready["experiments"]["loop"]["snapshot_version"] or 0)


def check_converged(router_url: str, records: list[Any]) -> None:
    late = [r.variant for r in records[-300:]]
    assert late.count("Variant2") / len(late) > 0.7, late.count("Variant2")
    answer = httpx.post(f"{router_url}/v1/experiments/loop/decisions", json={}).json()
    assert answer["probabilities"]["Variant2"] > 0.9


def test_the_loop_converges_on_memory(tmp_path: Path) -> None:
    with simulator() as sim_url:
        app = embedded_app(config("memory://", tmp_path),
                           environ={"BANDIT_ROUTER_WEBHOOK_SECRET": SECRET},
                           backend_factory=backend_factory(sim_url))
        with run_asgi(app) as router_url:
            records = drive(router_url, router_url)
            service = app.state.ingest
            wait_for(lambda: service.learners["loop"].counters.learned >= REQUESTS, 20.0)
            wait_for(lambda: served_policy_version(router_url) > 1, 20.0, interval=0.1)
            check_converged(router_url, records)
        # Stopping the app flushed the archive: every joined event, readable by VW.
        files = sorted((tmp_path / "archive").glob("*.json"))
        assert files
        lines = [line for f in files for line in f.read_text().splitlines()]
        assert len({json.loads(line)["EventId"] for line in lines}) == REQUESTS
        for f in files:
            vowpalwabbit.Workspace(f"--cb_explore_adf --dsjson -d {f} --quiet").run_parser()


def test_the_loop_converges_on_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BANDIT_ROUTER_WEBHOOK_SECRET", SECRET)
    with RedisServer() as server, simulator() as sim_url, ExitStack() as stack:
        settings = config(server.url, tmp_path)
        store = open_store(server.url, spool_path=tmp_path / "spool.jsonl")
        router = create_app(settings, store=store, backend_factory=backend_factory(sim_url))
        router_url = stack.enter_context(run_asgi(router))
        ingester = ingest_app(settings)
        ingest_url = stack.enter_context(run_asgi(ingester))
        records = drive(router_url, ingest_url)
        service = ingester.state.ingest
        wait_for(lambda: service.learners["loop"].counters.learned >= REQUESTS, 20.0)
        published = load_policy(service.learners["loop"].policy.snapshot())
        assert published.arms == ("Variant1", "Variant2", "Variant3")
        wait_for(lambda: served_policy_version(router_url) > 1, 20.0, interval=0.1)
        check_converged(router_url, records)
