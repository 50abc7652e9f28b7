"""The traffic generator scores every answer against the ground truth."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from simulator import Simulator, generate, make_client
from tests.simulator.conftest import ENDPOINT


def test_rewards_match_the_ground_truth(base_url: str, sim: Simulator) -> None:
    client = make_client(base_url, pool_size=4)
    pool = sim.dataset.pool
    records = list(generate(client, ENDPOINT, pool, count=120, concurrency=4, seed=5))
    assert len(records) == 120
    assert Counter(r.variant for r in records).keys() == {"Variant1", "Variant2", "Variant3"}
    for record in records:
        assert record.error is None and record.label == int(pool.labels[record.index])
        model = sim.models[sim.variants[record.variant or ""].model]
        expected = model.predict(pool.features[record.index:record.index + 1])[0][0]
        assert record.predicted == expected
        assert record.reward == (1.0 if expected == record.label else 0.0)
    # Every request carried its example's features as X-Bandit-Context.
    last = sim.last_request
    assert last is not None
    context = json.loads(last.header("x-bandit-context") or "{}")
    row = json.loads(last.body)["instances"][0]
    assert list(context.values()) == row


def test_accuracy_through_the_wire_matches_the_models(base_url: str, sim: Simulator) -> None:
    client = make_client(base_url, pool_size=2)
    pool = sim.dataset.pool
    records = list(generate(client, ENDPOINT, pool, count=300, concurrency=2, csv=True,
                            target_variant="Variant2", seed=2))
    measured = np.mean([r.reward for r in records])
    true = sim.models["tree"].accuracy(pool)
    assert abs(measured - true) < 0.08  # 300 draws: sd ≈ 0.025


def test_errors_score_zero_and_time_bounds_the_run(base_url: str, sim: Simulator) -> None:
    sim.update("Variant1", {"error_rate": 1.0})
    client = make_client(base_url)
    records = list(generate(client, ENDPOINT, sim.dataset.pool, count=5,
                            target_variant="Variant1", send_context=False))
    assert [(r.error, r.reward, r.variant) for r in records] == [("ModelError", 0.0, None)] * 5
    sim.update("Variant1", {"error_rate": 0.0, "latency_ms": 50.0})
    timed = list(generate(client, ENDPOINT, sim.dataset.pool, count=1000, duration_s=0.2,
                          target_variant="Variant1"))
    assert 1 <= len(timed) <= 6
