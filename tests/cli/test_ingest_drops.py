"""The ingester app on a real Redis: a reward the joiner drops shows on ``/metrics``.

The webhook admits a reward some experiment's range admits; the joiner then checks it
against the range of its decision's experiment, and what it drops is counted in
``bandit_ingest_rewards_dropped_total`` and logged, not dropped silently.
"""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest
import redis

from cli.ingest import ingest_app
from common.config import parse_settings
from common.storage.keys import DECISIONS_STREAM
from reward_ingest.signing import sign
from tests._redis_server import RedisServer
from tests._servers import run_asgi
from tests._wait import wait_for
from tests.reward_ingest._pipeline import decision

SECRET = "drops-test-secret"  # noqa: S105 - a test's own webhook secret
DROPPED = 'bandit_ingest_rewards_dropped_total{experiment="churn",reason="out_of_range"} 1.0'


def test_a_reward_out_of_its_decisions_range_is_counted_on_metrics(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("BANDIT_ROUTER_WEBHOOK_SECRET", SECRET)
    with RedisServer() as server, \
            redis.Redis.from_url(server.url, decode_responses=True) as client:
        settings = parse_settings({"store": server.url, "experiments": [
            {"name": "churn", "endpoint": "churn-ep", "variants": [{"name": "A"}],
             "policy": {"type": "thompson"}},
            {"name": "revenue", "endpoint": "revenue-ep", "variants": [{"name": "A"}],
             "policy": {"type": "epsilon_greedy"}, "reward": {"min": -5, "max": 100}}]})
        client.xadd(DECISIONS_STREAM, {"event": json.dumps(decision("e1", "churn",
                                                                    time.time()))})
        body = json.dumps({"event_id": "e1", "reward": 50}).encode()  # revenue admits 50
        with caplog.at_level(logging.INFO, logger="reward_ingest"), \
                run_asgi(ingest_app(settings)) as url:
            answer = httpx.post(f"{url}/v1/rewards", content=body, headers={
                "Content-Type": "application/json", **sign(SECRET, body, int(time.time()))})
            assert answer.status_code == 202, answer.text
            wait_for(lambda: DROPPED in httpx.get(f"{url}/metrics").text, 10, interval=0.05,
                     message=lambda: httpx.get(f"{url}/metrics").text)
    logged = [r for r in caplog.records if "event=rewards_dropped" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in logged] == [
        (logging.WARNING, "event=rewards_dropped experiment=churn reason=out_of_range "
                          "count=1 total=1")]
