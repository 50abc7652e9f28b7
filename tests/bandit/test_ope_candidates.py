"""Candidates replayed over a DSJSON archive: VW's own driver, brute force, arm changes."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import vowpalwabbit

from bandit import BanditError, Feedback, Policy, make_policy, sample
from bandit._vw import VWPolicy
from bandit.dsjson import ReplayEvent, from_dsjson, to_dsjson
from bandit.ope import EvaluationError, LogChunk, read_archive
from bandit.ope._candidates import Candidate, CandidateError

# The experiment's variant list over the log: an arm added, then one removed.
SCHEDULE = [(0, ("A", "B", "C")), (900, ("A", "B", "C", "D")), (1800, ("A", "C", "D"))]
EVENTS = 2700
CHUNK = 400  # smaller than a schedule step: chunks end both on size and on a list change
SEED = 11


def variants_at(t: int) -> tuple[str, ...]:
    return [arms for start, arms in SCHEDULE if start <= t][-1]


def logging_run(n: int, seed: int, *, reward_range: float = 1.0) -> list[str]:
    """DSJSON lines of a contextual logging policy (VW, ε = 0.3) serving and learning live,
    with eligible subsets on a quarter of the decisions and the schedule's arm changes."""
    rng = np.random.default_rng(seed)
    logger = make_policy({"type": "vw", "flags": "--epsilon 0.3"}, SCHEDULE[0][1], seed)
    truth = {arm: rng.normal(size=3) for arm in ("A", "B", "C", "D")}
    lines = []
    for t in range(n):
        variants = variants_at(t)
        for arm in variants:
            if arm not in logger.arms:
                logger.add_arm(arm)
        for arm in logger.arms:
            if arm not in variants:
                logger.remove_arm(arm)
        x = rng.normal(size=3).round(4)
        context = {"x0": float(x[0]), "x1": float(x[1]), "x2": float(x[2]),
                   "plan": "gold" if x[0] > 0 else "free", "premium": bool(x[1] > 1)}
        eligible = None
        if rng.random() < 0.25:
            eligible = [arm for arm in variants if rng.random() < 0.6] or [variants[-1]]
        probs = logger.probabilities(context, eligible)
        arm = sample(probs, float(rng.random()))
        chance = 1.0 / (1.0 + np.exp(-truth[arm] @ x))
        reward = reward_range * float(rng.random() < chance)
        lines.append(to_dsjson({
            "event_id": f"e{t}", "timestamp": 1.7e9 + t, "experiment": "x",
            "policy_version": "1", "variants": list(variants), "eligible": eligible,
            "context": context, "variant": arm, "probability": probs[arm],
            "probabilities": probs, "reward": reward}))
        logger.update([Feedback(arm, reward, probs[arm], context,
                                None if eligible is None else tuple(eligible))])
    return lines


def chunks(lines: Sequence[str], size: int = CHUNK) -> Iterator[LogChunk]:
    """LogChunks the way the reader cuts them: on a variant-list change or when full."""
    batch: list[tuple[str, ReplayEvent]] = []
    for line in lines:
        event = from_dsjson(line)
        if batch and (len(batch) == size or event["variants"] != batch[0][1]["variants"]):
            yield chunk_of(batch)
            batch = []
        batch.append((line, event))
    if batch:
        yield chunk_of(batch)


def chunk_of(batch: list[tuple[str, ReplayEvent]]) -> LogChunk:
    events = [event for _, event in batch]
    arms = tuple(events[0]["variants"])
    column = {arm: j for j, arm in enumerate(arms)}
    logged = np.zeros((len(events), len(arms)))
    for i, event in enumerate(events):
        for arm, p in event["probabilities"].items():
            logged[i, column[arm]] = p
    offered = np.array([[arm in (event["eligible"] or arms) for arm in arms]
                        for event in events])
    return LogChunk(
        experiment=events[0]["experiment"], arms=arms,
        action=np.array([column[e["variant"]] for e in events], dtype=np.intp),
        propensity=np.array([e["probability"] for e in events]),
        logged=logged, offered=offered,
        reward=np.array([e["reward"] for e in events]),
        timestamp=np.array([e["timestamp"] for e in events]),
        default_reward=np.array([e["default_reward"] for e in events]),
        version=np.zeros(len(events), dtype=np.intp), versions=("1",),
        contexts=[e["context"] for e in events], lines=[line for line, _ in batch])


def replay(candidate: Candidate, lines: Sequence[str], size: int = CHUNK) -> np.ndarray:
    """π of every event over the union of the variants, ordered A, B, C, D."""
    rows = []
    for chunk in chunks(lines, size):
        pi = candidate.probabilities(chunk)
        assert pi.shape == (len(chunk), len(chunk.arms))
        assert np.allclose(pi.sum(axis=1), 1.0, rtol=0, atol=1e-9)
        assert not pi[~chunk.offered].any()
        full = np.zeros((len(chunk), 4))
        full[:, ["ABCD".index(arm) for arm in chunk.arms]] = pi
        rows.append(full)
    return np.vstack(rows)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("archive") / "x-20240501T120000-0.json"
    path.write_text("\n".join(logging_run(EVENTS, SEED)) + "\n")
    return path


def vw_driver(path: Path, args: str, tmp_path: Path) -> np.ndarray:
    """VW's own ``--dsjson`` pass over the file: the pmf it predicted for each line, as π."""
    predictions = tmp_path / "predictions.txt"
    workspace = vowpalwabbit.Workspace(
        f"--cb_explore_adf --dsjson -d {path} -p {predictions} --quiet {args}")
    workspace.run_parser()
    workspace.finish()
    rows = []
    for line, text in zip(path.read_text().splitlines(),
                          predictions.read_text().split("\n\n"), strict=False):
        offered = [item["a"] for item in json.loads(line)["c"]["_multi"]]
        names = [next(iter(features))[len("arm="):] for features in offered]
        row = np.zeros(4)
        for token in text.strip().split(","):
            action, p = token.split(":")
            row["ABCD".index(names[int(action)])] = float(p)
        rows.append(row)
    return np.array(rows)


# -- (1) VW candidates: VW's own driver over the same file ----------------------------

VW_CANDIDATES = [
    # spec, and the arguments the policy passes VW (bandit._vw: FIXED_ARGS, seed, flags)
    ({"type": "vw", "flags": "--squarecb"}, "--squarecb --interactions sa"),
    ({"type": "online_cover"}, "--cover 3 --cb_type mtr --interactions sa"),
    ({"type": "vw", "flags": "--epsilon 0.1", "interactions": ["sa", "ss"]},
     "--epsilon 0.1 --interactions sa --interactions ss"),
    ({"type": "vw", "flags": "--bag 3"}, "--bag 3 --interactions sa"),
    ({"type": "vw", "flags": "--regcb --cb_min_cost -1 --cb_max_cost 0"},
     "--regcb --cb_min_cost -1.0 --cb_max_cost 0.0 --interactions sa"),
    ({"type": "vw", "flags": "--rnd 2"}, "--rnd 2 --interactions sa"),
    ({"type": "vw", "flags": "--first 50"}, "--first 50 --interactions sa"),
    ({"type": "vw", "flags": "--softmax --lambda 5"}, "--softmax --lambda 5.0 --interactions sa"),
    ({"type": "vw", "flags": "--synthcover"}, "--synthcover --interactions sa"),
]


@pytest.mark.parametrize(("spec", "args"), VW_CANDIDATES, ids=lambda v: str(v))
def test_vw_candidate_predicts_what_vws_own_driver_predicts(
        archive: Path, tmp_path: Path, spec: dict[str, Any], args: str) -> None:
    seed = 5
    expected = vw_driver(archive, f"--save_resume --random_seed {seed} {args}", tmp_path)
    candidate = Candidate("vw", spec, seed=seed)
    assert (candidate.learning, candidate.needs_lines, candidate.needs_contexts) == (
        True, True, False)
    pi = replay(candidate, archive.read_text().splitlines())
    assert pi.shape == expected.shape == (EVENTS, 4)
    # VW prints 6 significant digits (±5e-7), and the candidate rescales VW's float32
    # pmf to sum to 1 (synthcover's can be 1e-6 short); one event late or early misses
    # by far more.
    assert np.abs(pi - expected).max() < 2e-6
    assert np.abs(np.diff(pi, axis=0)).max() > 0.01
    assert candidate.skipped == 0


def test_vw_candidate_over_read_archive_predicts_what_vws_own_driver_predicts(
        archive: Path, tmp_path: Path) -> None:
    # The whole path the replay command takes: the file through read_archive's chunks.
    spec: dict[str, Any] = {"type": "vw", "flags": "--squarecb"}
    expected = vw_driver(archive, "--save_resume --random_seed 5 --squarecb --interactions sa",
                         tmp_path)
    candidate = Candidate("vw", spec, seed=5)
    rows = []
    for chunk in read_archive(archive, lines=True, chunk_size=700):
        full = np.zeros((len(chunk), 4))
        full[:, ["ABCD".index(arm) for arm in chunk.arms]] = candidate.probabilities(chunk)
        rows.append(full)
    assert np.abs(np.vstack(rows) - expected).max() < 1e-6


@pytest.mark.parametrize("spec", [
    VW_CANDIDATES[0][0], {"type": "online_cover", "cover": 2, "floor": 0.1}], ids=str)
def test_vw_candidate_is_the_policy_the_learner_would_train(
        archive: Path, spec: dict[str, Any]) -> None:
    # The production path: the policy's own text examples from the contexts, one
    # probabilities and one update per event, following the variant list.
    lines = archive.read_text().splitlines()[:1500]
    policy = make_policy(spec, SCHEDULE[0][1], seed=3)
    expected = np.zeros((len(lines), 4))
    for i, line in enumerate(lines):
        event = from_dsjson(line)
        follow(policy, tuple(event["variants"]))
        eligible = event["eligible"]
        for arm, p in policy.probabilities(event["context"], eligible).items():
            expected[i, "ABCD".index(arm)] = p
        policy.update([feedback(event)])
    pi = replay(Candidate("vw", spec, seed=3), lines)
    # VW's JSON and text parsers read a float a few ulps apart: not bit for bit.
    assert np.abs(pi - expected).max() < 1e-4


def test_vw_policy_instance_learns_on_from_its_state(archive: Path) -> None:
    lines = archive.read_text().splitlines()
    head, tail = lines[:600], lines[600:1500]
    spec = {"type": "vw", "flags": "--squarecb"}
    trained = make_policy(spec, SCHEDULE[0][1], seed=2)
    for line in head:
        trained.update([feedback(from_dsjson(line))])
    before = trained.snapshot()
    pi = replay(Candidate("trained", trained), tail)
    assert trained.snapshot() == before  # the caller's policy is not taught

    expected = np.zeros((len(tail), 4))
    for i, line in enumerate(tail):  # the production path, from the same state
        event = from_dsjson(line)
        follow(trained, tuple(event["variants"]))
        for arm, p in trained.probabilities(event["context"], event["eligible"]).items():
            expected[i, "ABCD".index(arm)] = p
        trained.update([feedback(event)])
    assert np.abs(pi - expected).max() < 1e-4
    fresh = replay(Candidate("fresh", spec, seed=2), tail)
    assert np.abs(pi - fresh).max() > 0.05  # what it learned first shows


def driver_rows(lines: Sequence[str], args: str, tmp_path: Path, *,
                model: bytes | None = None) -> np.ndarray:
    """``vw_driver`` over ``lines`` written to a file, from ``model`` (a saved model) if given."""
    path = tmp_path / "lines.json"
    path.write_text("\n".join(lines) + "\n")
    if model is not None:
        (tmp_path / "model").write_bytes(model)
        args = f"{args} -i {tmp_path / 'model'}"
    return vw_driver(path, args, tmp_path)


@pytest.mark.parametrize("spec", [
    {"type": "online_cover"}, {"type": "vw", "flags": "--bag 3"},
    {"type": "vw", "flags": "--rnd 2"}], ids=str)
def test_vw_candidate_is_the_same_whatever_the_chunk_size(
        archive: Path, spec: dict[str, Any]) -> None:
    # One model walks the whole log: a chunk boundary must not save and reload it, after
    # which these three explorers predict differently (--save_resume keeps too little).
    lines = archive.read_text().splitlines()
    whole = replay(Candidate("vw", spec, seed=7), lines, size=EVENTS)  # one per arm list
    small = replay(Candidate("vw", spec, seed=7), lines, size=37)
    assert len(list(chunks(lines, 37))) > 70
    assert np.array_equal(small, whole)


def test_vw_candidate_reads_a_line_the_same_with_its_newline(archive: Path) -> None:
    lines = archive.read_text().splitlines()[:1000]
    spec = {"type": "vw", "flags": "--bag 3"}
    bare = replay(Candidate("vw", spec, seed=1), lines)
    for end in ("\n", "\r\n"):
        ended = replay(Candidate("vw", spec, seed=1), [line + end for line in lines])
        assert np.array_equal(ended, bare)


def test_vw_candidate_follows_arms_removed_and_added_back(
        archive: Path, tmp_path: Path) -> None:
    lines = archive.read_text().splitlines()
    # A, B, C; then A, C, D (B and D change places); then A, B, C, D; then A, B, C again.
    shuffled = lines[:300] + lines[1800:2100] + lines[900:1200] + lines[300:500]
    arm_lists = [chunk.arms for chunk in chunks(shuffled, size=250)]
    assert [arm_lists[0], arm_lists[2], arm_lists[4], arm_lists[-1]] == [
        ("A", "B", "C"), ("A", "C", "D"), ("A", "B", "C", "D"), ("A", "B", "C")]
    spec = {"type": "vw", "flags": "--cover 2 --epsilon 0.05"}
    expected = driver_rows(shuffled, "--save_resume --random_seed 4 --cover 2 --epsilon 0.05 "
                           "--interactions sa", tmp_path)
    pi = replay(Candidate("vw", spec, seed=4), shuffled, size=250)
    assert np.abs(pi - expected).max() < 1e-6


@pytest.mark.parametrize("spec", [
    {"type": "vw", "flags": "--squarecb"}, {"type": "online_cover", "cover": 2}], ids=str)
def test_vw_candidate_from_a_policy_predicts_what_vws_driver_predicts_from_its_model(
        archive: Path, tmp_path: Path, spec: dict[str, Any]) -> None:
    lines = archive.read_text().splitlines()
    head, tail = lines[:600], lines[600:1600]
    trained = make_policy(spec, SCHEDULE[0][1], seed=2)
    for line in head:
        trained.update([feedback(from_dsjson(line))])
    state = json.loads(trained.snapshot())["state"]
    assert isinstance(trained, VWPolicy)
    expected = driver_rows(tail, " ".join(["--save_resume", *trained.args]), tmp_path,
                           model=base64.b64decode(state["model"]))
    pi = replay(Candidate("trained", trained), tail, size=150)
    assert np.abs(pi - expected).max() < 1e-6
    assert np.abs(np.diff(pi, axis=0)).max() > 0.01


def test_vw_candidate_leaves_no_temporary_files(
        archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trained = make_policy({"type": "online_cover"}, SCHEDULE[0][1], seed=2)
    for line in archive.read_text().splitlines()[:50]:
        trained.update([feedback(from_dsjson(line))])
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    lines = archive.read_text().splitlines()[:1200]
    for candidate in (Candidate("trained", trained), Candidate("spec", {"type": "vw"})):
        replay(candidate, lines)
        assert list(scratch.iterdir()) == []
    # The model did pass through the scratch directory: the check looked at the right place.
    seen: list[str] = []
    real = tempfile.TemporaryDirectory

    def spy(*args: Any, **kwargs: Any) -> tempfile.TemporaryDirectory[str]:
        directory = real(*args, **kwargs)
        seen.append(directory.name)
        return directory

    monkeypatch.setattr(tempfile, "TemporaryDirectory", spy)
    replay(Candidate("trained", trained), lines[:10])
    assert seen and all(Path(name).parent == scratch for name in seen)
    assert list(scratch.iterdir()) == []


# -- (2) static: its weights on every offered set --------------------------------------

def test_static_candidate_serves_its_weights_on_every_offered_set(archive: Path) -> None:
    weights = {"A": 1.0, "B": 3.0, "C": 6.0}  # D, added later, gets weight 0
    candidate = Candidate("static", {"type": "static", "weights": weights})
    assert (candidate.learning, candidate.needs_lines, candidate.needs_contexts) == (
        False, False, False)
    lines = archive.read_text().splitlines()
    pi = replay(candidate, lines)
    for i, line in enumerate(lines):
        event = from_dsjson(line)
        offered = event["eligible"] or event["variants"]
        w = np.array([weights.get(arm, 0.0) if arm in offered else 0.0 for arm in "ABCD"])
        if w.sum() == 0.0:  # only D offered: the policy splits evenly
            w = np.array([arm in offered for arm in "ABCD"], dtype=float)
        np.testing.assert_allclose(pi[i], w / w.sum(), rtol=0, atol=1e-15)


# -- (3) learning context-free candidates: brute force ---------------------------------

def feedback(event: ReplayEvent) -> Feedback:
    """The learner's feedback for a joined event (reward_ingest.learner.base.learn)."""
    eligible = event["eligible"]
    return Feedback(event["variant"], event["reward"], event["probability"], event["context"],
                    None if eligible is None else tuple(eligible))


def follow(policy: Policy, variants: tuple[str, ...]) -> None:
    for arm in variants:
        if arm not in policy.arms:
            policy.add_arm(arm)
    for arm in policy.arms:
        if arm not in variants:
            policy.remove_arm(arm)


@pytest.mark.parametrize("spec", [
    {"type": "thompson", "samples": 200},
    {"type": "epsilon_greedy", "epsilon": 0.2, "decay": 0.05},
    {"type": "ucb1", "discount": 0.95, "floor": 0.05},
], ids=lambda spec: str(spec["type"]))
def test_learning_candidate_at_event_i_is_a_fresh_policy_taught_events_before_i(
        spec: dict[str, Any]) -> None:
    # Rewards of 2 on a few events: Beta-Thompson refuses them, as the learner skips them.
    lines = logging_run(EVENTS, SEED)
    picked = [lines[t] for t in range(0, EVENTS, 12)]  # every schedule step, all subsets
    picked = [line if i % 17 else line.replace('"_label_cost":-1.0', '"_label_cost":-2.0')
              for i, line in enumerate(picked)]
    candidate = Candidate("c", spec, seed=4)
    assert (candidate.learning, candidate.needs_contexts) == (True, False)
    pi = replay(candidate, picked, size=30)
    events = [from_dsjson(line) for line in picked]
    for i, event in enumerate(events):
        fresh = make_policy(spec, SCHEDULE[0][1], seed=4)
        for earlier in events[:i]:
            follow(fresh, tuple(earlier["variants"]))
            with contextlib.suppress(BanditError):  # refused: the learner skips it
                fresh.update([feedback(earlier)])
        follow(fresh, tuple(event["variants"]))
        expected = fresh.probabilities(None, event["eligible"])
        assert pi[i].tolist() == [expected.get(arm, 0.0) for arm in "ABCD"], i
    refused = sum(event["reward"] > 1 for event in events)
    assert refused > 5
    assert candidate.skipped == (refused if spec["type"] == "thompson" else 0)


# -- (4) errors --------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "message"), [
    ({"type": "epsilon_greedy", "epsilon": 2}, "policy.epsilon: must be in [0, 1], got 2"),
    ({"type": "nope"}, "policy.type: must be one of"),
    ({"type": "vw", "flags": "--cover 3 --squarecb"}, "policy.flags: choose one explorer"),
    ({"type": "static", "weights": {"A": 0}}, "policy.weights: must give at least one arm"),
    ({"type": "thompson", "floor": 0.6, "weights": 1}, "policy.weights: unknown key"),
    ("thompson", "policy: must be a mapping"),
])
def test_an_invalid_spec_is_refused_at_once(spec: Any, message: str) -> None:
    with pytest.raises(CandidateError, match=r"^candidate 'bad': ") as caught:
        Candidate("bad", spec)
    assert message in str(caught.value)
    assert isinstance(caught.value, EvaluationError)


def test_problems_only_the_arms_reveal_are_refused_on_the_first_chunk(archive: Path) -> None:
    first = next(chunks(archive.read_text().splitlines()))  # arms A, B, C
    candidate = Candidate("static", {"type": "static", "weights": {"A": 1, "Z": 1}})
    with pytest.raises(CandidateError, match=r"policy.weights.Z: is not an arm \(A, B, C\)"):
        candidate.probabilities(first)
    crowded = Candidate("floor", {"type": "thompson", "floor": 0.3})
    crowded.probabilities(first)
    later = next(chunk for chunk in chunks(archive.read_text().splitlines())
                 if len(chunk.arms) == 4)
    with pytest.raises(CandidateError, match=r"cannot follow the variant list .* floor 0\.3"):
        crowded.probabilities(later)


@pytest.mark.parametrize(("broken", "message"), [
    ('"_labelIndex":', r"line 3 of the chunk is refused: .*_labelIndex must be smaller"),
    ('"c":{', r"line 3 of the chunk is refused: JSON parser error"),
], ids=["label", "json"])
def test_a_line_vowpal_wabbit_refuses_is_named(archive: Path, broken: str, message: str) -> None:
    first = next(chunks(archive.read_text().splitlines()))
    lines = list(first.lines or ())
    if broken == '"_labelIndex":':
        lines[3] = re.sub(r'"_labelIndex":\d+', '"_labelIndex":9', lines[3])
    else:
        lines[3] = lines[3].replace('"c":{', '"c":{{', 1)
    with pytest.raises(CandidateError, match=r"^candidate 'vw': Vowpal Wabbit: " + message):
        Candidate("vw", {"type": "online_cover"}).probabilities(
            dataclasses.replace(first, lines=lines))


def test_a_line_whose_actions_are_not_the_chunks_is_refused(archive: Path) -> None:
    first = next(chunks(archive.read_text().splitlines()))
    full = int(np.flatnonzero(first.offered.all(axis=1))[5])
    offered = first.offered.copy()
    offered[full, 1] = False  # the chunk says two of the three arms; the line offers three
    with pytest.raises(CandidateError, match=rf"line {full} of the chunk offers 3 actions, "
                                             r"the chunk 2$"):
        Candidate("vw", {"type": "vw"}).probabilities(dataclasses.replace(first, offered=offered))


def test_a_chunk_without_what_the_candidate_needs_is_refused(archive: Path) -> None:
    first = next(chunks(archive.read_text().splitlines()))
    bare = dataclasses.replace(first, contexts=None, lines=None)
    with pytest.raises(CandidateError, match="learns from the DSJSON lines"):
        Candidate("vw", {"type": "online_cover"}).probabilities(bare)
    # Context-free candidates need neither.
    assert Candidate("t", {"type": "epsilon_greedy"}).probabilities(bare).shape == (
        len(first), 3)
