"""The demo's lanes: level progress, common random numbers, refusal of unknown names."""

from __future__ import annotations

import numpy as np
import pytest

from cli.offline_demo import Demo, available_policies


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


# The live demo's parts, in process.


def test_live_state_shares_and_rewards() -> None:
    from collections import deque

    from cli.live_demo import LiveOptions, LiveState, VariantView

    state = LiveState(LiveOptions(), {"A": VariantView("A", "logistic", 0.7),
                                      "B": VariantView("B", "forest", 0.9)})
    assert state.best == "B" and state.rolling_reward() is None
    state.recent = deque([("A", 0.0), ("B", 1.0), ("B", 1.0), ("B", 0.0)])
    assert state.shares(state.recent) == {"A": 0.25, "B": 0.75}
    assert state.rolling_reward() == 0.5


def test_aws_environment_is_the_demos_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from cli.live_demo import aws_environment

    monkeypatch.setenv("AWS_PROFILE", "somebody")
    monkeypatch.delenv("AWS_ENDPOINT_URL_SAGEMAKER", raising=False)
    with aws_environment("http://127.0.0.1:1"):
        assert os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] == "http://127.0.0.1:1"
        assert os.environ["AWS_CONFIG_FILE"] == os.devnull
        assert "AWS_PROFILE" not in os.environ
    assert os.environ["AWS_PROFILE"] == "somebody"
    assert "AWS_ENDPOINT_URL_SAGEMAKER" not in os.environ


def test_the_demo_config_is_valid() -> None:
    from cli.live_demo import settings

    experiment = settings(push=True, push_interval_s=5.0, seed=0).experiments[0]
    assert experiment.weights_push.enabled and experiment.weights_push.interval_s == 5.0
    assert experiment.context.source == "header" and experiment.policy == {"type": "thompson"}


def test_without_moto_the_demo_runs_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import threading

    from rich.console import Console

    from cli import live_demo
    from cli.live_demo_view import play_live, summary_lines

    monkeypatch.setattr(live_demo, "moto_available", lambda: False)
    demo = live_demo.LiveDemo(live_demo.LiveOptions(requests=120, rate=0, duration_s=30))
    out = io.StringIO()
    state = play_live(demo, Console(file=out, width=200), live=False)
    assert state.done == 120 and state.errors == 0 and state.rewards_posted == 120
    assert state.pushes == 0 and state.moto_url is None
    assert "moto is not installed" in out.getvalue()
    assert any("weights pushed: none" in line for line in summary_lines(state))
    assert not [t.name for t in threading.enumerate() if t.name.startswith("demo-uvicorn")]
