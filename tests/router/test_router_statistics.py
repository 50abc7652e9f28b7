"""Routed traffic follows the logged probabilities; guardrails suspend and restore variants."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest
from scipy import stats

from tests.router._stack import SIM_ENDPOINT, Stack, experiment, router_stack, settings

BODY = json.dumps({"instances": [[0.3, -0.1, 0.2, 0.0, 0.5, -0.4]]}).encode()
WEIGHTS = {"Variant1": 5, "Variant2": 3, "Variant3": 2}


class SteppedClock:
    """The monotonic clock plus what the test skipped ahead (the router's ``clock``)."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skipped

    def advance(self, seconds: float) -> None:
        self.skipped += seconds


async def _send(url: str, count: int, concurrency: int,
                headers: dict[str, str] | None = None) -> list[tuple[int, str | None]]:
    """POST ``count`` invocations, ``concurrency`` at a time; (status, event id) each."""
    results: list[tuple[int, str | None]] = []
    queue = iter(range(count))
    async with aiohttp.ClientSession() as session:
        async def worker() -> None:
            for _ in queue:
                async with session.post(url, data=BODY, headers=headers) as response:
                    await response.read()
                    results.append((response.status, response.headers.get("X-Bandit-Event-Id")))
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def send(stack: Stack, count: int, concurrency: int = 16, **headers: str) -> list[Any]:
    url = f"{stack.router_url}/endpoints/{SIM_ENDPOINT}/invocations"
    return asyncio.run(_send(url, count, concurrency, headers or None))


def logged(stack: Stack) -> list[dict[str, Any]]:
    return [event for _, event in asyncio.run(stack.store.read_decisions(1_000_000))]


def test_observed_shares_match_the_logged_probabilities_chi_square() -> None:
    # 10,000 routed requests through the real router and simulator. Under a correct
    # sampler the chi-square statistic is ~χ²(2); p < 0.001 would flag a sampler or
    # logging bug (e.g. logging a probability other than the one sampled with).
    config = settings(experiment(policy={"type": "static", "weights": WEIGHTS}))
    with router_stack(config) as stack:
        results = send(stack, 10_000, concurrency=32)
        assert all(status == 200 for status, _ in results)
        events = logged(stack)
    assert len(events) == 10_000
    assert len({event["event_id"] for event in events}) == 10_000
    assert {event_id for _, event_id in results} == {event["event_id"] for event in events}
    observed = Counter(event["variant"] for event in events)
    expected = {arm: 10_000 * event["probabilities"][arm]
                for event in events[:1] for arm in WEIGHTS}
    assert expected == pytest.approx({"Variant1": 5000, "Variant2": 3000, "Variant3": 2000})
    for event in events:
        assert event["probability"] == event["probabilities"][event["variant"]]
    statistic, p_value = stats.chisquare([observed[a] for a in WEIGHTS],
                                         [expected[a] for a in WEIGHTS])
    assert p_value > 0.001, (observed, statistic)


def test_a_failing_variant_is_suspended_then_probed_back() -> None:
    guardrails = {"error_rate": 0.5, "p99_ms": 5000, "window_s": 30, "cooldown_s": 30.0,
                  "min_requests": 10, "probe_share": 0.2}
    config = settings(experiment(policy={"type": "static"}, guardrails=guardrails))
    with router_stack(config) as stack:
        clock = stack.state.clock = SteppedClock()
        stack.set_variant("Variant2", error_rate=1.0, error_kind="model")
        first = send(stack, 150, concurrency=4)
        events = logged(stack)
        failed = [e for e in events if e["variant"] == "Variant2"]
        assert len(failed) >= 10 and all(e["outcome"] == "model_error" for e in failed)
        assert {status for status, _ in first} == {200, 424}
        # Once tripped, Variant2 gets probability 0 and the others share the rest.
        suspended = [e for e in events[-50:] if e["probabilities"]["Variant2"] == 0.0]
        assert len(suspended) == 50
        assert suspended[-1]["probabilities"]["Variant1"] == pytest.approx(0.5)
        metrics = asyncio.run(_metrics(stack.router_url))
        assert 'bandit_router_guardrail_trips_total{experiment="exp",variant="Variant2"} 1.0' \
            in metrics
        # Heal it; after the cooldown it is probed with 20 % and then fully restored.
        # The router's clock skips the cooldown (30 s: it cannot end on its own while
        # the test runs, however slow the machine).
        stack.set_variant("Variant2", error_rate=0.0)
        clock.advance(30.1)
        send(stack, 120, concurrency=4)
        after = logged(stack)[len(events):]
        shares = [e["probabilities"]["Variant2"] for e in after]
        assert pytest.approx(0.2) in shares  # probing
        assert shares[-1] == pytest.approx(1 / 3)  # healthy again
        assert all(e["outcome"] == "ok" for e in after)


async def _metrics(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
        return await response.text()
