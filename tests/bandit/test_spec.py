"""Bad policy specs are refused with an error that starts with the key's path."""

from __future__ import annotations

from typing import Any

import pytest

from bandit import SnapshotError, SpecError, load_policy, make_policy

BAD_SPECS: list[tuple[Any, str]] = [
    ({}, "policy.type: is required"),
    ({"type": "bogus"}, "policy.type: must be one of"),
    ({"type": "epsilon_greedy", "epsilon": 2}, "policy.epsilon: must be in [0, 1], got 2.0"),
    ({"type": "epsilon_greedy", "epsilon": "lots"}, "policy.epsilon: must be a number"),
    ({"type": "epsilon_greedy", "epsilon": True}, "policy.epsilon: must be a number"),
    ({"type": "epsilon_greedy", "decay": -1}, "policy.decay: must be in [0, inf)"),
    ({"type": "thompson", "prior": {"alpha": 0}}, "policy.prior.alpha: must be in (0, inf)"),
    ({"type": "thompson", "prior": {"alpah": 1}}, "policy.prior.alpah: unknown key"),
    ({"type": "thompson", "prior": {"variance": 1}}, "policy.prior.variance: unknown key"),
    ({"type": "thompson", "family": "poisson"}, "policy.family: must be one of beta, gaussian"),
    ({"type": "thompson", "samples": 5}, "policy.samples: must be in [100, 1000000]"),
    ({"type": "thompson", "discount": 0}, "policy.discount: must be in (0, 1]"),
    ({"type": "thompson", "discount": 1.5}, "policy.discount: must be in (0, 1]"),
    ({"type": "ucb1", "alpha": float("nan")}, "policy.alpha: must be finite"),
    ({"type": "ucb1", "epsilon": 0.1}, "policy.epsilon: unknown key"),
    ({"type": "ucb1", "floor": 1}, "policy.floor: must be in [0, 1)"),
    ({"type": "ucb1", "floor": 0.4}, "policy.floor: 0.4 × 3 arms exceeds 1"),
    ({"type": "static", "weights": {"Z": 1}}, "policy.weights.Z: is not an arm"),
    ({"type": "static", "weights": {"A": -1}}, "policy.weights.A: must be in [0, inf)"),
    ({"type": "static", "weights": {"A": 0}}, "policy.weights: must give at least one arm"),
    ({"type": "static", "weights": [1, 2]}, "policy.weights: must be a mapping"),
    ({"type": "thompson", "change_detection": {"delta": 0}},
     "policy.change_detection.delta: must be in (0, 1)"),
    ({"type": "ucb1", "change_detection": {"block": 0}},
     "policy.change_detection.block: must be in [1, 100000]"),
    ({"type": "ucb1", "change_detection": {"max_blocks": 1}},
     "policy.change_detection.max_blocks: must be in [2, 1000000]"),
    ({"type": "ucb1", "change_detection": {"window": 5}},
     "policy.change_detection.window: unknown key"),
    ({"type": "ucb1", "change_detection": True}, "policy.change_detection: must be a mapping"),
    ({"type": "static", "change_detection": {}}, "policy.change_detection: unknown key"),
    ("thompson", "policy: must be a mapping"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS, ids=[m for _, m in BAD_SPECS])
def test_bad_spec_names_the_key(spec: Any, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        make_policy(spec, ["A", "B", "C"])
    assert str(caught.value).startswith(message)


def test_spec_error_carries_the_path() -> None:
    with pytest.raises(SpecError) as caught:
        make_policy({"type": "thompson", "prior": {"beta": -1}}, ["A"])
    assert caught.value.path == "policy.prior.beta"


@pytest.mark.parametrize("blob", [b"", b"not json", b"[]", b'{"format": 2}',
                                  b'{"format":1,"type":"nope","arms":[],"floor":0,'
                                  b'"seed":0,"version":0,"state":{}}',
                                  b'{"format":1,"type":"ucb1","arms":["A"],"floor":0,'
                                  b'"seed":0,"version":0,"state":{}}'])
def test_bad_snapshots_are_refused(blob: bytes) -> None:
    with pytest.raises(SnapshotError):
        load_policy(blob)


def test_every_problem_of_a_spec_is_named_the_first_as_before() -> None:
    with pytest.raises(SpecError) as caught:
        make_policy({"type": "epsilon_greedy", "floor": 0.9, "epsilon": 2.0, "typo": 1},
                    ["A", "B", "C"])
    assert caught.value.problems == [
        ("policy.floor", "0.9 × 3 arms exceeds 1"),
        ("policy.epsilon", "must be in [0, 1], got 2.0"),
        ("policy.typo", "unknown key (known keys: decay, discount, epsilon, floor, type)"),
    ]
    assert (caught.value.path, caught.value.problem) == caught.value.problems[0]
    assert str(caught.value) == ("policy.floor: 0.9 × 3 arms exceeds 1; policy.epsilon: must "
                                 "be in [0, 1], got 2.0; policy.typo: unknown key (known keys: "
                                 "decay, discount, epsilon, floor, type)")


def test_a_single_problem_reads_as_documented() -> None:
    with pytest.raises(SpecError) as caught:
        make_policy({"type": "epsilon_greedy", "epsilon": 2.0}, ["A", "B"])
    assert str(caught.value) == "policy.epsilon: must be in [0, 1], got 2.0"
    assert caught.value.problems == [("policy.epsilon", "must be in [0, 1], got 2.0")]
