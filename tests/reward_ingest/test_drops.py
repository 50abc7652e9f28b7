"""What the joiner drops, on the metric and in the log: the memory joiner, injected clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from reward_ingest.drops import DroppedRewards, DropReporter
from reward_ingest.join_rules import JoinRule
from reward_ingest.joiner import MemoryJoiner
from tests.reward_ingest._pipeline import decision, reward

T = 1_000_000.0
RULES = {"churn": JoinRule(mode="first", wait_seconds=60.0),
         "other": JoinRule(mode="sum", wait_seconds=60.0)}


class Streams:
    """Decisions and rewards in lists, read after an id ``N-0`` as the stores read them."""

    def __init__(self) -> None:
        self.decisions: list[dict[str, Any]] = []
        self.rewards: list[dict[str, Any]] = []

    async def read_decisions(self, count: int,
                             after: str = "0") -> list[tuple[str, dict[str, Any]]]:
        return _after(self.decisions, count, after)

    async def read_rewards(self, count: int,
                           after: str = "0") -> list[tuple[str, Mapping[str, Any]]]:
        return list(_after(self.rewards, count, after))


def _after(items: list[dict[str, Any]], count: int,
           after: str) -> list[tuple[str, dict[str, Any]]]:
    start = int(after.split("-")[0])
    return [(f"{start + i + 1}-0", item) for i, item in enumerate(items[start:start + count])]


def samples(dropped: DroppedRewards) -> list[str]:
    registry = CollectorRegistry()
    registry.register(dropped)
    return [line for line in generate_latest(registry).decode().splitlines()
            if line.startswith("bandit_ingest_rewards_dropped_total")]


def test_drops_by_experiment_and_reason_on_the_metric_and_in_the_log(
        caplog: pytest.LogCaptureFixture) -> None:
    streams = Streams()
    joiner = MemoryJoiner(streams, streams, RULES)
    dropped = DroppedRewards()
    reporter = DropReporter(joiner, RULES, dropped)

    async def scenario() -> None:
        streams.decisions.append(decision("e1", "churn", T))
        streams.rewards += [reward("e1", 5.0, T, "r1"),  # out of churn's [0, 1]
                            reward("e1", 1.0, T, "r2"),  # joined
                            reward("e1", 0.0, T, "r3"),  # late: e1 is joined
                            reward("gone", 1.0, T, "r4"),  # orphan once its window closes
                            {"event_id": "e1", "reward": "high"}]  # malformed
        await joiner.step(T)
        await joiner.step(T + 601)  # the orphan's fallback deadline passed
        await reporter.report()
        streams.rewards.append(reward("e1", 7.0, T, "r5"))  # late, and out of range
        await joiner.step(T + 602)
        await reporter.report()
        await reporter.report()  # nothing new: nothing logged
        assert await joiner.counts(["other", "nope"]) == {}
        assert set(await joiner.counts(["churn"])) == {"churn"}

    with caplog.at_level(logging.INFO, logger="reward_ingest.drops"):
        asyncio.run(scenario())
    assert samples(dropped) == [
        'bandit_ingest_rewards_dropped_total{experiment="_unknown",reason="malformed"} 1.0',
        'bandit_ingest_rewards_dropped_total{experiment="_unknown",reason="orphan"} 1.0',
        'bandit_ingest_rewards_dropped_total{experiment="churn",reason="late"} 2.0',
        'bandit_ingest_rewards_dropped_total{experiment="churn",reason="out_of_range"} 1.0',
    ]
    assert [(r.levelname, r.getMessage().removeprefix("event=rewards_dropped "))
            for r in caplog.records] == [
        ("WARNING", "experiment=_unknown reason=malformed count=1 total=1"),
        ("INFO", "experiment=_unknown reason=orphan count=1 total=1"),
        ("INFO", "experiment=churn reason=late count=1 total=1"),
        ("WARNING", "experiment=churn reason=out_of_range count=1 total=1"),
        ("INFO", "experiment=churn reason=late count=1 total=2"),
    ]
