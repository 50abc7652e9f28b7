"""The demo's lanes: level progress, common random numbers, refusal of unknown names."""

from __future__ import annotations

import numpy as np
import pytest

from bandit_router.demo import Demo, available_policies


def test_lanes_advance_level_and_share_contexts_and_draws() -> None:
    demo = Demo(steps=250, seed=3, policies=["static", "thompson"], batch=5, window=100)
    assert [(lane.scenario.name, lane.policy) for lane in demo.lanes] == [
        ("bernoulli", "static"), ("bernoulli", "thompson"),
        ("contextual", "static"), ("contextual", "thompson"),
    ]
    demo.advance(100)
    assert demo.done == 100 and not demo.finished
    demo.advance(1000)
    assert demo.done == 250 and demo.finished
    for scenario in demo.scenarios:
        first, second = (lane.simulation.result() for lane in demo.lanes
                         if lane.scenario is scenario)
        # Same seed: the same contexts, hence the same expected rewards, step by step.
        assert np.array_equal(first.means, second.means)
    rows = demo.summary()
    assert [(row.scenario, row.policy, row.steps) for row in rows] == [
        (lane.scenario.name, lane.policy, 250) for lane in demo.lanes
    ]


def test_every_available_policy_is_a_registered_type() -> None:
    # online_cover and vw_squarecb are VW's contextual policies: the demo is
    # built to show them.
    assert available_policies() == ("static", "epsilon_greedy", "thompson", "ucb1",
                                    "online_cover", "vw_squarecb")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policies": ["thompson", "softmax"]}, "unknown policy softmax"),
        ({"policies": []}, "unknown policy \\(none given\\)"),
        ({"problems": ["chess"]}, "unknown problem chess"),
    ],
)
def test_unknown_names_are_refused(kwargs: dict[str, list[str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Demo(steps=100, **kwargs)  # type: ignore[arg-type]
