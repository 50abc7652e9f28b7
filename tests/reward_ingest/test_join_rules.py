"""The pure join rules: aggregation, ranges, deadlines, parsing, the joined event."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from reward_ingest.join_rules import (
    JoinedEvent,
    JoinRule,
    Outcome,
    aggregate,
    computed_text,
    marker_ttl,
    max_wait,
    parse_decision,
    parse_reward,
    reward_text,
    rules_of,
    settle,
)


def test_aggregate_modes_in_arrival_order() -> None:
    values = [0.5, 1.0, 0.25, 1.0]
    assert aggregate(values, "first") == 0.5
    assert aggregate(values, "max") == 1.0
    assert aggregate(values, "sum") == 2.75
    assert aggregate(values, "mean") == 2.75 / 4
    with pytest.raises(ValueError, match="nothing"):
        aggregate([], "sum")


def test_sum_is_left_to_right_like_lua() -> None:
    values = [0.1, 0.2, 0.3]
    assert aggregate(values, "sum") == (0.1 + 0.2) + 0.3  # not math.fsum's 0.6
    assert float(computed_text(aggregate(values, "sum"))) == (0.1 + 0.2) + 0.3


def test_settle_filters_the_range_and_keeps_the_text() -> None:
    rule = JoinRule(mode="max", min=0.0, max=1.0, default=0.0)
    outcome = settle(["-1.0", "0.5", "1", "2.0", "1.0"], rule)
    assert outcome is not None
    assert (outcome.reward, outcome.default, outcome.rewards, outcome.out_of_range) == (
        "1", False, 3, 2)  # the first of equal maxima, verbatim
    summed = settle(["0.1", "0.2", "5.0"], JoinRule(mode="sum"))
    assert summed is not None and summed.reward == "0.30000000000000004"
    first = settle(["7.0", "0.25", "0.5"], JoinRule(mode="first"))
    assert first is not None and (first.reward, first.out_of_range) == ("0.25", 1)


def test_settle_default_or_drop() -> None:
    assert settle([], JoinRule(default=0.25)) == Outcome("0.25", True, 0, 0)
    outcome = settle(["9.0"], JoinRule(default=0.25))
    assert outcome is not None and outcome.default and outcome.out_of_range == 1
    assert settle(["9.0"], JoinRule(default=None)) is None


def test_rule_checks_and_deadlines() -> None:
    rule = JoinRule(wait_seconds=30.0)
    assert rule.deadline(100.0) == 130.0
    assert rule.in_range(0.0) and rule.in_range(1.0) and not rule.in_range(1.0000001)
    with pytest.raises(ValueError, match="aggregate"):
        JoinRule(mode="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min < max"):
        JoinRule(min=1.0, max=1.0)
    with pytest.raises(ValueError, match="wait_seconds"):
        JoinRule(wait_seconds=0.0)


@dataclass(frozen=True)
class _Reward:
    min: float = 0.0
    max: float = 1.0
    default: float | None = None
    wait_seconds: float = 60.0
    aggregate: str = "mean"


@dataclass(frozen=True)
class _Experiment:
    name: str
    reward: _Reward


def test_rules_from_config_shaped_objects() -> None:
    rules = rules_of([_Experiment("a", _Reward()), _Experiment("b", _Reward(wait_seconds=9e4))])
    assert rules["a"] == JoinRule(mode="mean", default=None, wait_seconds=60.0)
    assert max_wait(rules) == 9e4
    assert marker_ttl(rules) == 1.8e5
    assert marker_ttl({"a": rules["a"]}) == 86_400.0
    with pytest.raises(ValueError, match="aggregate"):
        rules_of([_Experiment("c", _Reward(aggregate="median"))])


def test_router_reward_config_fits() -> None:
    from common.config_sections import RewardConfig

    rule = JoinRule.from_settings(RewardConfig(aggregate="sum", default=None))
    assert rule == JoinRule(mode="sum", default=None)


def test_parse_decision_and_reward() -> None:
    text = json.dumps({"event_id": "e1", "experiment": "x", "timestamp": 5, "context": {}})
    parsed = parse_decision(text)
    assert (parsed.event_id, parsed.experiment, parsed.timestamp, parsed.json) == (
        "e1", "x", 5.0, text)
    for bad in ("[1]", "{", '{"event_id": "e", "experiment": "x"}',
                '{"event_id": "", "experiment": "x", "timestamp": 1}',
                '{"event_id": "e", "experiment": "x", "timestamp": true}'):
        with pytest.raises(ValueError):
            parse_decision(bad)
    reward = parse_reward({"event_id": "e1", "reward": 1, "received_at": 7, "reward_id": "r"})
    assert (reward.text, reward.received_at) == ("1.0", 7.0)
    for bad_value in (float("nan"), "1", True, 10**400, None):
        with pytest.raises(ValueError):
            parse_reward({"event_id": "e1", "reward": bad_value, "received_at": 7,
                          "reward_id": "r"})
    with pytest.raises(ValueError, match="reward_id"):
        parse_reward('{"event_id": "e1", "reward": 1, "received_at": 7}')


def test_joined_event_round_trip() -> None:
    decision = '{"event_id":"e1","experiment":"x","context":{"a":1.10},"eligible":[]}'
    event = JoinedEvent(decision, 0.5, False, 2, 1234.5)
    fields = event.fields()
    assert fields == {"event": decision, "reward": "0.5", "default": "0", "rewards": "2",
                      "joined_at": "1234.5"}
    assert JoinedEvent.from_fields(fields) == event
    assert JoinedEvent.from_fields({k.encode(): v.encode() for k, v in fields.items()}) == event
    assert event.to_dict() == {"event_id": "e1", "experiment": "x", "context": {"a": 1.1},
                               "eligible": [], "reward": 0.5, "default_reward": False,
                               "rewards": 2, "joined_at": 1234.5}
    with pytest.raises(ValueError, match="malformed"):
        JoinedEvent.from_fields({"event": decision})
    assert reward_text(1) == "1.0"
