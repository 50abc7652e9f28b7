"""``serve`` on ``memory://`` (the embedded app): its ``/metrics`` covers the ingester too."""

from __future__ import annotations

import re

import httpx

from cli.embedded import embedded_app
from common.config import Secrets, Settings, parse_settings
from reward_ingest.rewards import MemoryRewardStore
from reward_ingest.webhook import create_webhook_app
from tests._servers import run_asgi

SETTINGS: Settings = parse_settings({"store": "memory://", "experiments": [{
    "name": "churn", "endpoint": "churn-ep", "backend": "http",
    "variants": [{"name": "A", "url": "http://127.0.0.1:9/a"},
                 {"name": "B", "url": "http://127.0.0.1:9/b"}],
    "policy": {"type": "thompson"}}]})
_FAMILY = re.compile(r"^# TYPE (bandit_ingest_\w+) ", re.MULTILINE)


def _ingest_families(metrics: str) -> set[str]:
    return set(_FAMILY.findall(metrics))


def test_serve_on_memory_exposes_the_ingest_counters_beside_the_routers() -> None:
    with run_asgi(create_webhook_app(SETTINGS, MemoryRewardStore(), Secrets())) as url:
        standalone = _ingest_families(httpx.get(f"{url}/metrics").text)
    assert standalone  # what `bandit-router ingest` exposes

    with run_asgi(embedded_app(SETTINGS, environ={})) as url:
        event_ids = []
        for _ in range(3):
            decided = httpx.post(f"{url}/v1/experiments/churn/decisions", json={})
            assert decided.status_code == 200, decided.text
            event_ids.append(decided.json()["event_id"])
        rewards = {"rewards": [{"event_id": event_id, "reward": 1} for event_id in event_ids]}
        assert httpx.post(f"{url}/v1/rewards", json=rewards).status_code == 202
        assert httpx.post(f"{url}/v1/rewards", content=b"{").status_code == 400
        metrics = httpx.get(f"{url}/metrics").text

    assert standalone <= _ingest_families(metrics)
    assert 'bandit_ingest_rewards_total{outcome="accepted"} 3.0' in metrics
    assert 'bandit_ingest_webhook_requests_total{status="202"} 1.0' in metrics
    assert 'bandit_ingest_webhook_requests_total{status="400"} 1.0' in metrics
    assert "bandit_router_decisions_total" in metrics  # the same registry as the router's
