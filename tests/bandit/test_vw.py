"""The Vowpal Wabbit policies: specs, invariants, snapshots, arm changes, learning."""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit import (
    ArmError,
    ContextError,
    Feedback,
    FeedbackError,
    OnlineCoverPolicy,
    Policy,
    SnapshotError,
    SpecError,
    VWFlagsPolicy,
    load_policy,
    make_policy,
)
from bandit.sim import ContextualProblem, run

ARMS = ["A", "B", "C"]
SPECS: list[dict[str, Any]] = [
    {"type": "online_cover"},
    {"type": "online_cover", "cover": 2, "cb_type": "dr", "floor": 0.05},
    {"type": "vw", "flags": "--squarecb --gamma_scale 10"},
    {"type": "vw", "flags": "--epsilon 0.1"},
    {"type": "vw", "flags": "--bag 3"},  # draws from VW's RNG while learning
    {"type": "vw", "flags": "--rnd 2"},  # keeps state VW does not save
    {"type": "vw", "flags": "--softmax --lambda 5 -l 0.2 --l2 1e-6", "interactions": ["sa", "ss"]},
]
SPEC_IDS = [f"{s['type']}-{i}" for i, s in enumerate(SPECS)]

contexts = st.one_of(
    st.none(),
    st.fixed_dictionaries({}, optional={
        "x": st.floats(-3, 3), "y": st.integers(-5, 5), "plan": st.sampled_from(["a", "b c"]),
        "vip": st.booleans(),
    }),
)
# One step of a random history: learn a batch, add an arm, or remove one.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("update"), st.lists(
            st.tuples(st.integers(0, 9), st.floats(0, 1), contexts), min_size=1, max_size=6)),
        st.tuples(st.just("add"), st.none()),
        st.tuples(st.just("remove"), st.integers(0, 9)),
    ),
    max_size=8,
)


def replay(policy: Policy, history: list[tuple[str, Any]]) -> None:
    """Apply a generated history; arm indexes wrap around the current arms."""
    for op, arg in history:
        arms = policy.arms
        if op == "update":
            policy.update(Feedback(arm=arms[i % len(arms)], reward=r, probability=0.5, context=c)
                          for i, r, c in arg)
        elif op == "add":
            if policy.floor * (len(arms) + 1) <= 1.0:
                policy.add_arm(f"new{policy.version}")  # versions never repeat
        elif len(arms) > 1:
            policy.remove_arm(arms[arg % len(arms)])


PROBES: list[dict[str, Any] | None] = [None, {"x": 1.0, "plan": "a"}, {"x": -2.0, "vip": True}]


def answers(policy: Policy) -> list[dict[str, float]]:
    """Probabilities on a few contexts and eligible sets."""
    arms = policy.arms
    return [policy.probabilities(c, e) for c in PROBES for e in (None, arms[:1], arms[-2:])]


def contextual_history(policy: Policy, n: int = 60) -> None:
    """A arm is good when x > 0, B when x < 0, C never."""
    rng = np.random.default_rng(4)
    for _ in range(n):
        x = float(rng.normal())
        good = "A" if x > 0 else "B"
        policy.update([Feedback(arm, 1.0 if arm == good else 0.0, 1 / 3, {"x": x})
                       for arm in ("A", "B", "C")])


# -- specs ---------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "message"), [
    ({"type": "online_cover", "cover": 0}, r"^policy\.cover: must be in \[1, 100\], got 0"),
    ({"type": "online_cover", "cover": 2.5}, r"^policy\.cover: must be an integer"),
    ({"type": "online_cover", "cb_type": "foo"}, r"^policy\.cb_type: must be one of ips, dr, mtr"),
    ({"type": "online_cover", "bogus": 1}, r"^policy\.bogus: unknown key"),
    ({"type": "vw", "flags": "--epsilon 0.1", "cover": 3}, r"^policy\.cover: unknown key"),
    ({"type": "online_cover", "interactions": "sa"}, r"^policy\.interactions: must be a list"),
    ({"type": "vw", "interactions": ["sa", "sz"]}, r"^policy\.interactions\[1\]: must be"),
    ({"type": "vw", "interactions": ["s"]}, r"^policy\.interactions\[0\]: must be"),
    ({"type": "vw", "flags": ["--epsilon", "0.1"]}, r"^policy\.flags: must be a string"),
    ({"type": "online_cover", "floor": 0.5}, r"^policy\.floor: 0\.5 × 3 arms exceeds 1"),
])
def test_spec_errors_name_the_key(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        make_policy(spec, ARMS)


FILES = "reads or writes files or opens sockets"


def refused(option: str, reason: str) -> str:
    """The regex of ``<option> is not allowed (<reason>``."""
    return re.escape(f"{option} is not allowed ({reason}")


@pytest.mark.parametrize(("flags", "message"), [
    ("--data x", refused("--data", FILES)),
    ("-d x", refused("-d", FILES)),
    ("--data=x", refused("--data", FILES)),
    ("-i model", refused("-i", FILES)),
    ("-f model", refused("-f", FILES)),
    ("--readable_model m", refused("--readable_model", FILES)),
    ("--invert_hash m", refused("--invert_hash", FILES)),
    ("-c", refused("-c", FILES)),
    ("--cache_file c", refused("--cache_file", FILES)),
    ("--daemon", refused("--daemon", FILES)),
    ("--port 26542", refused("--port", FILES)),
    ("--pid_file p", refused("--pid_file", FILES)),
    ("-p out", refused("-p", FILES)),
    ("-r out", refused("-r", FILES)),
    ("--dictionary d", refused("--dictionary", FILES)),
    ("--epsilon 0.1 --cb_explore_adf", refused("--cb_explore_adf", "set by the policy")),
    ("--save_resume", refused("--save_resume", "set by the policy")),
    ("--quiet", refused("--quiet", "set by the policy")),
    ("--random_seed 3", refused("--random_seed", "set by the policy")),
    ("--dsjson", refused("--dsjson", "set by the policy")),
    ("--oaa 3", refused("--oaa", "not an exploration or learning option")),
    ("-x", refused("-x", "not an exploration or learning option")),
    ("-epsilon 0.1", refused("-epsilon", "not an exploration or learning option")),
    ("0.1", "'0.1' is not an option"),
    ("--epsilon", "--epsilon needs a value"),
    ("--epsilon abc", "--epsilon needs a number, got 'abc'"),
    ("--epsilon 2", r"--epsilon must be in \[0, 1\], got '2'"),
    ("--epsilon nan", r"--epsilon must be in \[0, 1\], got 'nan'"),
    ("--bag 0", r"--bag must be in \[1, 100\], got '0'"),
    ("--cover 2.5", "--cover needs an integer, got '2.5'"),
    ("--squarecb=1", "--squarecb takes no value"),
    ("--epsilon 0.1 --epsilon 0.2", "--epsilon is given twice"),
    ("--squarecb --bag 3", "choose one explorer, got --bag and --squarecb"),
    ("--cover 2 --gamma_scale 3", "--gamma_scale applies to --squarecb, not --cover"),
    ("--lambda 3", "--lambda applies to --softmax, not epsilon-greedy"),
    ("--regcbopt", "--regcbopt applies to --regcb, not epsilon-greedy"),
    ("--cb_type foo", "--cb_type must be one of"),
    ("-q zz", "--quadratic 'zz': namespaces are s"),
    ("--epsilon '0.1", "cannot be parsed: No closing quotation"),
    ("--squarecb --cb_type ips", "rejected by Vowpal Wabbit: .*'ips' is not a valid choice"),
    ("-q s", "rejected by Vowpal Wabbit: .*two sets"),
])
def test_flags_outside_the_allowlist_are_spec_errors_on_flags(flags: str, message: str) -> None:
    with pytest.raises(SpecError, match=rf"^policy\.flags: {message}") as raised:
        make_policy({"type": "vw", "flags": flags}, ARMS)
    assert raised.value.path == "policy.flags"


@pytest.mark.parametrize("flags", [
    "", "--squarecb --gamma_scale 10", "--squarecb --elim --cb_min_cost -1 --cb_max_cost 0",
    "--epsilon 0.05", "--epsilon=0.05 --first_only", "--bag 5 --greedify", "--first 10",
    "--softmax --lambda 10", "--cover 3 --psi 0.5 --nounif --cb_type ips",
    "--regcb --regcbopt --mellowness 0.1 --cb_min_cost -1 --cb_max_cost 0",
    "--synthcover --synthcoversize 10", "--rnd 3 --rnd_alpha 0.2 --epsilon 0.01",
    "-l 0.1 --power_t 0 --l1 1e-8 --l2 1e-6 -b 16",
    "-q sa --quadratic ss --interactions ::  --cubic ssa --ignore_linear s --noconstant",
    "--sgd --initial_t 1", "--adaptive --invariant --normalized -l0.3",
])
def test_allowlisted_flags_build_a_working_policy(flags: str) -> None:
    policy = make_policy({"type": "vw", "flags": flags}, ARMS, seed=2)
    contextual_history(policy, 5)
    probs = policy.probabilities({"x": 1.0})
    assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-12)
    assert all(p >= 0.0 for p in probs.values())


def test_workspace_arguments() -> None:
    cover = make_policy({"type": "online_cover"}, ARMS, seed=9)
    assert isinstance(cover, OnlineCoverPolicy)
    assert cover.args == ["--cover", "3", "--cb_type", "mtr", "--interactions", "sa"]
    vw = make_policy({"type": "vw", "flags": "-l 0.1 --bag 2", "interactions": []}, ARMS)
    assert isinstance(vw, VWFlagsPolicy)
    assert vw.args == ["--learning_rate", "0.1", "--bag", "2"]
    arguments = cover._workspace.get_arguments()
    for expected in ("--cb_explore_adf", "--quiet", "--save_resume", "--random_seed 9",
                     "--cover 3", "--cb_type mtr", "--interactions sa"):
        assert expected in arguments


# -- invariants ---------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@settings(max_examples=15, deadline=None)
@given(history=steps, context=contexts)
def test_probabilities_are_a_distribution_over_eligible_arms(
    spec: dict[str, Any], history: list[tuple[str, Any]], context: dict[str, Any] | None
) -> None:
    policy = make_policy(spec, ARMS, seed=3)
    replay(policy, history)
    arms = policy.arms
    for eligible in (None, arms[:1], arms[::2], arms[-2:]):
        probs = policy.probabilities(context, eligible)
        offered = set(arms if eligible is None else eligible)
        assert list(probs) == list(arms)
        assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-12)
        for arm, p in probs.items():
            if arm in offered:
                assert p >= policy.floor - 1e-12
            else:
                assert p == 0.0


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@settings(max_examples=20, deadline=None)
@given(history=steps, more=steps)
def test_snapshot_round_trip_gives_identical_probabilities(
    spec: dict[str, Any], history: list[tuple[str, Any]], more: list[tuple[str, Any]]
) -> None:
    policy = make_policy(spec, ARMS, seed=11)
    replay(policy, history)
    answers(policy)  # predictions before the snapshot must not matter
    blob = policy.snapshot()
    restored = load_policy(blob)
    assert type(restored) is type(policy)
    assert restored.version == policy.version
    assert restored.arms == policy.arms
    assert restored.snapshot() == blob
    assert answers(restored) == answers(policy)
    # ...and they stay identical as both keep learning.
    replay(policy, more)
    replay(restored, more)
    assert answers(restored) == answers(policy)


EVERY_EXPLORER = [*SPECS, *({"type": "vw", "flags": f} for f in (
    "--first 5", "--regcb --regcbopt --cb_min_cost -1 --cb_max_cost 0", "--synthcover",
    "--squarecb --elim --cb_min_cost -1 --cb_max_cost 0", "--bag 3 --greedify",
))]


@pytest.mark.parametrize("spec", EVERY_EXPLORER, ids=[str(s) for s in EVERY_EXPLORER])
def test_probabilities_are_a_function_of_the_state_and_predicting_changes_nothing(
    spec: dict[str, Any]
) -> None:
    quiet = make_policy(spec, ARMS, seed=5)
    busy = make_policy(spec, ARMS, seed=5)
    rng = np.random.default_rng(0)
    for step in range(40):
        x = float(rng.normal())
        for _ in range(3):  # only `busy` is asked; `quiet` never predicts
            busy.probabilities({"x": x, "plan": "a"})
        batch = [Feedback(ARMS[step % 3], float(x > 0), 0.4, {"x": x})]
        quiet.update(batch)
        busy.update(batch)
    assert answers(busy) == answers(quiet) == answers(quiet)
    assert answers(load_policy(busy.snapshot())) == answers(quiet)


def test_floor_is_respected() -> None:
    policy = make_policy({"type": "vw", "flags": "--epsilon 0", "floor": 0.1}, ARMS)
    contextual_history(policy)
    probs = policy.probabilities({"x": 2.0})
    # Greedy VW gives A everything; p' = floor + (1 − 3·floor)·p.
    assert probs == pytest.approx({"A": 0.8, "B": 0.1, "C": 0.1})


# -- context and arms ----------------------------------------------------------


def test_the_context_changes_the_choice() -> None:
    policy = make_policy({"type": "vw", "flags": "--epsilon 0.1"}, ARMS)
    contextual_history(policy)
    # Greedy pick gets 1 − ε + ε/3, the others ε/3.
    assert policy.probabilities({"x": 2.0})["A"] == pytest.approx(0.9 + 0.1 / 3, rel=1e-6)
    assert policy.probabilities({"x": -2.0})["B"] == pytest.approx(0.9 + 0.1 / 3, rel=1e-6)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_adding_and_removing_arms_keeps_what_the_others_learned(spec: dict[str, Any]) -> None:
    policy = make_policy(spec, ARMS, seed=1)
    contextual_history(policy)
    pair = ("A", "B")

    def on_pair() -> list[tuple[float, float]]:
        return [(p["A"], p["B"]) for p in (policy.probabilities(c, pair) for c in PROBES)]

    before = on_pair()
    policy.add_arm("D")
    policy.remove_arm("C")
    assert policy.arms == ("A", "B", "D")
    # The model is untouched: the same offered arms give the same answer.
    assert on_pair() == before
    probs = policy.probabilities({"x": 1.0})
    assert probs["D"] > 0.0 or spec.get("flags", "").startswith("--bag")
    # An arm re-added under its old name resumes from its old weights.
    policy.remove_arm("A")
    policy.add_arm("A")
    assert on_pair() == before


def test_eligible_subsets_in_decisions_and_feedback() -> None:
    policy = make_policy({"type": "online_cover"}, ARMS)
    assert policy.probabilities({"x": 1.0}, ["B"]) == {"A": 0.0, "B": 1.0, "C": 0.0}
    with pytest.raises(ArmError, match="unknown arm"):
        policy.probabilities(None, ["Z"])
    policy.update([Feedback("B", 1.0, 0.5, {"x": 1.0}, eligible=("B", "C"))])
    # An arm removed since the decision was made still counts as offered then.
    policy.remove_arm("C")
    policy.update([Feedback("B", 1.0, 0.5, {"x": 1.0}, eligible=("B", "C"))])
    assert policy.version == 3


@pytest.mark.parametrize(("feedback", "error", "message"), [
    (Feedback("A", 1.0, 0.5, None, eligible=("B", "C")), FeedbackError, "not among the eligible"),
    (Feedback("A", 1.0, 0.5, None, eligible=("A", "A")), FeedbackError, "unique"),
    (Feedback("A", 1.0, 0.5, {"tags": [1]}), ContextError, "'tags'"),
    (Feedback("Z", 1.0, 0.5), ArmError, "unknown arm 'Z'"),
    (Feedback("A", math.inf, 0.5), FeedbackError, "finite"),
])
def test_a_refused_batch_changes_nothing(feedback: Feedback, error: type[Exception],
                                        message: str) -> None:
    policy = make_policy({"type": "vw", "flags": "--squarecb"}, ARMS)
    contextual_history(policy, 10)
    before = policy.snapshot()
    with pytest.raises(error, match=message):
        policy.update([Feedback("A", 1.0, 0.5, {"x": 1.0}), feedback])
    assert policy.snapshot() == before
    assert answers(policy) == answers(load_policy(before))


def test_a_bad_context_in_a_decision_is_a_context_error() -> None:
    policy = make_policy({"type": "online_cover"}, ARMS)
    with pytest.raises(ContextError, match="'x'"):
        policy.probabilities({"x": math.nan})


# -- snapshots that are not ours -------------------------------------------------


def tampered(blob: bytes, **state: Any) -> bytes:
    document = json.loads(blob)
    document["state"].update(state)
    return json.dumps(document).encode()


def test_corrupt_or_tampered_snapshots_are_refused() -> None:
    blob = make_policy({"type": "online_cover"}, ARMS).snapshot()
    with pytest.raises(SnapshotError, match="base64"):
        load_policy(tampered(blob, model="not base64!"))
    with pytest.raises(SnapshotError, match="cannot load the model"):
        load_policy(tampered(blob, model=base64.b64encode(b"garbage").decode()))
    # Arguments come back through the same allowlist: a snapshot cannot open files.
    with pytest.raises(SnapshotError, match=r"--data is not allowed \(reads or writes files"):
        load_policy(tampered(blob, args=["--cover", "3", "--data", "/etc/passwd"]))


# -- learning -------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "margin"), [
    # Margins: expected reward of the arms played over steps 2000–4000, minus the
    # best fixed arm's (arm0, ≈ 0.575; the per-context oracle ≈ 0.829). Measured
    # with seeds 0–7: cover 0.137 ± 0.012 (sd over seeds), --squarecb 0.219 ±
    # 0.007, --epsilon 0.05 0.174 ± 0.009; each bound is the mean − 4 sd. A
    # learner blind to the context cannot beat the best fixed arm (without the
    # sa interaction VW measured −0.07 to −0.03), and one learning the wrong
    # sign does worse still.
    ({"type": "online_cover"}, 0.09),
    ({"type": "vw", "flags": "--squarecb"}, 0.19),
    ({"type": "vw", "flags": "--epsilon 0.05"}, 0.14),
])
def test_contextual_policies_beat_the_best_fixed_arm(spec: dict[str, Any], margin: float) -> None:
    steps = 4000
    problem = ContextualProblem(n_arms=4, n_features=20, seed=0)
    result = run(make_policy(spec, problem.arms, seed=0), problem, steps, seed=0)
    best_fixed = float(result.means.mean(axis=0).max())
    played = result.means[np.arange(steps), result.chosen][steps // 2:]
    assert best_fixed == pytest.approx(0.575, abs=0.015)  # the problem's own figure
    assert float(played.mean()) - best_fixed >= margin
