"""DSJSON lines: the fields by hand, VW's own parser, VW learning from them, and the way back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import vowpalwabbit
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit._vw_features import FeatureEncoder
from bandit.dsjson import from_dsjson, iso_timestamp, parse_timestamp, to_dsjson
from bandit.sim import ContextualProblem

T0 = 1_714_564_800.25  # 2024-05-01T12:00:00.250Z


def joined(**changes: Any) -> dict[str, Any]:
    """A joined event as the joiner writes it (decision event + reward fields)."""
    event: dict[str, Any] = {
        "format": 1, "event_id": "e1", "timestamp": T0, "experiment": "churn",
        "endpoint": "DEMO-churn", "policy_version": "7", "variants": ["V1", "V2", "V3"],
        "eligible": None,
        "context": {"age": 42, "plan": "gold", "premium": True, "trial": False, "note": None,
                    "user": {"country": "fr", "score": 0.5}},
        "variant": "V2", "probability": 0.6,
        "probabilities": {"V1": 0.3, "V2": 0.6, "V3": 0.1},
        "targeted": False, "unit_id": None, "source": "invocations", "outcome": "ok",
        "latency_ms": 12.5, "reward": 1.0, "default_reward": False, "rewards": 1,
        "joined_at": T0 + 3,
    }
    event.update(changes)
    return event


def vw_read(path: Path, capfd: pytest.CaptureFixture[str]) -> float:
    """Run VW's own driver over ``path``; returns the examples it read; fails on any error."""
    workspace = vowpalwabbit.Workspace(f"--cb_explore_adf --dsjson -d {path} --quiet")
    workspace.run_parser()
    read = workspace.get_weighted_examples()
    workspace.finish()
    # VW logs a bad line as "[error] ... JSON parser error" and skips it (even --quiet
    # does not hide the count): so check both the count and the log.
    assert "error" not in capfd.readouterr().err.lower()
    return float(read)


def test_fields_by_hand() -> None:
    line = to_dsjson(joined())
    record = json.loads(line)
    assert list(record)[:4] == ["_label_cost", "_label_probability", "_label_Action",
                                "_labelIndex"]
    assert list(record).index("c") > list(record).index("_labelIndex")  # VW labels at c's end
    assert record == {
        "_label_cost": -1.0, "_label_probability": 0.6, "_label_Action": 2, "_labelIndex": 1,
        "o": [{"v": 1.0, "EventId": "e1", "ActionTaken": False}],
        "Timestamp": "2024-05-01T12:00:00.250Z", "Version": "1", "EventId": "e1",
        "a": [2, 1, 3],
        "c": {"s": {"age": 42, "plan=gold": 1, "premium": 1, "user.country=fr": 1,
                    "user.score": 0.5},
              "_multi": [{"a": {"arm=V1": 1}}, {"a": {"arm=V2": 1}}, {"a": {"arm=V3": 1}}]},
        "p": [0.6, 0.3, 0.1],
        "experiment": "churn", "policy_version": "7", "variants": ["V1", "V2", "V3"],
        "targeted": False, "default_reward": False,
    }
    assert "\n" not in line and ": " not in line  # compact: VW's fast key skip needs '"k":'


def test_targeted_and_default_reward() -> None:
    targeted = json.loads(to_dsjson(joined(
        variant="V3", probability=1.0, probabilities={"V3": 1.0}, targeted=True)))
    assert (targeted["a"], targeted["p"]) == ([3, 1, 2], [1.0, 0.0, 0.0])
    assert (targeted["_label_Action"], targeted["_labelIndex"]) == (3, 2)
    assert targeted["_label_probability"] == 1.0 and targeted["targeted"] is True

    default = json.loads(to_dsjson(joined(reward=0.0, default_reward=True)))
    assert default["o"] == [] and default["default_reward"] is True
    assert str(default["_label_cost"]) == "0.0"  # not -0.0


def test_eligible_subset_is_the_action_set() -> None:
    # V2 excluded by the caller; V4 suspended by a guardrail (offered with probability 0).
    record = json.loads(to_dsjson(joined(
        variants=["V1", "V2", "V3", "V4"], eligible=["V4", "V3", "V1"], variant="V3",
        probability=0.75, probabilities={"V1": 0.25, "V2": 0.0, "V3": 0.75, "V4": 0.0})))
    arms = [next(iter(item["a"])) for item in record["c"]["_multi"]]
    assert arms == ["arm=V1", "arm=V3", "arm=V4"]  # the experiment's order, not the caller's
    assert (record["a"], record["p"]) == ([2, 1, 3], [0.75, 0.25, 0.0])
    assert (record["_label_Action"], record["_labelIndex"]) == (2, 1)
    back = from_dsjson(json.dumps(record))
    assert back["eligible"] == ["V1", "V3", "V4"]
    assert back["variants"] == ["V1", "V2", "V3", "V4"]
    assert back["probabilities"] == {"V3": 0.75, "V1": 0.25, "V4": 0.0}


def test_features_are_the_policys_features() -> None:
    """VW hashes the DSJSON line exactly as the policy's text lines, feature for feature."""
    context = {"age": 42.5, "n": -3, "plan": "gold plus|x:y", "premium": True, "off": False,
               "user": {"country": "fr", "deep": {"x": 1e-7}}, "é.k=y": "ü", "0": 7}
    event = joined(context=context, variants=["V1", "V-2", "V3"], variant="V-2",
                   probabilities={"V1": 0.3, "V-2": 0.6, "V3": 0.1})
    from_json = vowpalwabbit.Workspace("--cb_explore_adf --dsjson --quiet -q sa")
    from_text = vowpalwabbit.Workspace("--cb_explore_adf --quiet -q sa")
    lines = FeatureEncoder().lines(context, event["variants"])
    lines[2] = f"0:-1.0:0.6 {lines[2]}"
    json_examples = from_json.parse(to_dsjson(event))
    text_examples = from_text.parse("\n".join(lines))
    assert len(json_examples) == len(text_examples) == 4
    for a, b in zip(json_examples, text_examples, strict=True):
        json_features, text_features = sorted(a.iter_features()), sorted(b.iter_features())
        assert [h for h, _ in json_features] == [h for h, _ in text_features]
        # Values agree to float32 precision: VW's text float parser is not correctly
        # rounded (1e-7 reads as 9.9999987e-08), its JSON parser is; a few ulps apart.
        assert [v for _, v in json_features] == pytest.approx(
            [v for _, v in text_features], rel=1e-6)
    # The label sits on the chosen action, as the policy's learn line puts it.
    assert [e.get_cbandits_num_costs() for e in json_examples] == [1, 0, 1, 0]
    label = json_examples[2]
    assert (label.get_cbandits_cost(0), label.get_cbandits_probability(0)) == (
        -1.0, pytest.approx(0.6))
    from_json.finish_example(json_examples)
    from_text.finish_example(text_examples)
    from_json.finish()
    from_text.finish()


def test_leading_underscore_is_encoded() -> None:
    # VW's JSON parser ignores (or treats specially) keys starting with "_":
    # "_label_cost" inside c would even relabel the example. Ours are %5F-encoded.
    line = to_dsjson(joined(context={"_label_cost": 5, "_tag": "x", "a": 1}))
    assert json.loads(line)["c"]["s"] == {"%5Flabel_cost": 5, "%5Ftag=x": 1, "a": 1}
    assert from_dsjson(line)["context"] == {"_label_cost": 5, "_tag": "x", "a": 1}


def test_unencodable_context_keeps_the_rest() -> None:
    record = json.loads(to_dsjson(joined(context={"tags": ["a", "b"], "age": 3})))
    assert record["c"]["s"] == {"age": 3}
    assert record["dropped_features"] == ["tags"]


@pytest.mark.parametrize("change", [
    {"variant": "V9"}, {"probability": 0.0}, {"reward": float("nan")}, {"variants": None},
    {"eligible": "V1"}, {"probabilities": {"V1": "x"}}, {"probabilities": [0.5]}])
def test_malformed_events_raise(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="e1"):
        to_dsjson(joined(**change))


@pytest.mark.parametrize("line", [
    "{", "[]", '{"a":[1],"p":[1.0]}',
    to_dsjson(joined()).replace('"_label_Action":2', '"_label_Action":0'),
    to_dsjson(joined()).replace('"a":[2,1,3]', '"a":[2,1]')])
def test_from_dsjson_refuses_other_lines(line: str) -> None:
    with pytest.raises(ValueError):
        from_dsjson(line)


def test_timestamps() -> None:
    assert iso_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert iso_timestamp(1.9996) == "1970-01-01T00:00:02.000Z"  # rounding carries
    assert parse_timestamp("2024-05-01T12:00:00.250Z") == T0
    assert parse_timestamp("2021-02-04T16:31:29.2460000Z") == pytest.approx(1612456289.246)


def test_vw_reads_an_archive_without_error(tmp_path: Path,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    events = [
        joined(),
        joined(event_id="e2", context=None),
        joined(event_id="e3", context={}, variant="V1", probability=1.0,
               probabilities={"V1": 1.0}, targeted=True),
        joined(event_id="e4", reward=0.0, default_reward=True),
        joined(event_id="e5", eligible=["V3"], variant="V3", probability=1.0,
               probabilities={"V1": 0.0, "V2": 0.0, "V3": 1.0}),
        joined(event_id="e\"6\\}", experiment="x{y}", context={
            "_label_cost": 3, "_multi": "z", "k\"}": "v\"]", "_a": 1, "_p": 2, "_text": "t",
            "lone": "\ud800", "ctrl": "a\nb\x00c", "list": [1], "deep": {"_x": {"y": 2}}}),
    ]
    path = tmp_path / "archive.json"
    path.write_text("".join(to_dsjson(e) + "\n" for e in events))
    assert vw_read(path, capfd) == len(events)


def test_vw_learns_the_context_from_the_archive(tmp_path: Path) -> None:
    """Train VW on an archive logged by a uniform policy; it must learn which arm suits
    which context, and its model must work on the policy's own text features."""
    problem = ContextualProblem(n_arms=4, n_features=5, seed=3)
    arms = list(problem.arms)
    rng = np.random.default_rng(11)
    lines = []
    for t in range(6000):
        context = problem.context(t, rng)
        k = int(rng.integers(len(arms)))
        lines.append(to_dsjson(joined(
            event_id=f"e{t}", timestamp=T0 + t, variants=arms, context=context,
            variant=arms[k], probability=0.25, probabilities=dict.fromkeys(arms, 0.25),
            reward=problem.reward(t, context, k, rng))))
    archive, model = tmp_path / "log.json", tmp_path / "model.vw"
    archive.write_text("\n".join(lines) + "\n")
    trainer = vowpalwabbit.Workspace(
        f"--cb_explore_adf --dsjson -d {archive} -q sa --quiet -f {model}")
    trainer.run_parser()
    assert trainer.get_weighted_examples() == len(lines)
    trainer.finish()

    player = vowpalwabbit.Workspace(f"--cb_explore_adf -i {model} -t --quiet")
    encoder = FeatureEncoder(arms)
    learned, best_fixed, oracle, agree = [], [], [], 0
    test_rng = np.random.default_rng(99)
    for t in range(1000):
        context = problem.context(t, test_rng)
        means = problem.means(t, context)
        examples = player.parse("\n".join(encoder.lines(context, arms)))
        player.predict(examples)
        scores = examples[0].get_action_scores()  # the pmf, in action order
        player.finish_example(examples)
        choice = int(np.argmax(scores))
        learned.append(means[choice])
        best_fixed.append(means)
        oracle.append(means.max())
        agree += choice == int(np.argmax(means))
    player.finish()
    fixed = float(np.mean(best_fixed, axis=0).max())
    value, top = float(np.mean(learned)), float(np.mean(oracle))
    # Measured: 0.822 vs best fixed 0.578 and oracle 0.828; the best arm 89% of the time.
    assert value > fixed + 0.15 and value > top - 0.05, (value, fixed, top)
    assert agree / 1000 > 0.7


names = st.text(min_size=1, max_size=6)
scalars = st.one_of(
    st.none(), st.booleans(), st.text(max_size=6),
    st.integers(-(10**12), 10**12),
    st.floats(-1e30, 1e30, allow_nan=False, allow_infinity=False))
contexts = st.dictionaries(
    names, st.one_of(scalars, st.dictionaries(names, scalars, max_size=3)), max_size=5)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    variants = draw(st.lists(st.from_regex(r"[A-Za-z0-9](-?[A-Za-z0-9]){0,5}", fullmatch=True),
                             min_size=1, max_size=5, unique=True))
    eligible = draw(st.none() | st.lists(st.sampled_from(variants), min_size=1, unique=True))
    offered = variants if eligible is None else [v for v in variants if v in eligible]
    weights = draw(st.lists(st.floats(0.01, 1.0), min_size=len(offered),
                            max_size=len(offered)))
    probabilities = {v: w / sum(weights) for v, w in zip(offered, weights, strict=True)}
    chosen = draw(st.sampled_from(offered))
    return joined(
        event_id=draw(st.text(min_size=1, max_size=10)),
        timestamp=draw(st.integers(0, 4_000_000_000_000)) / 1000,
        experiment=draw(st.text(max_size=8)), variants=variants, eligible=eligible,
        context=draw(st.none() | contexts), variant=chosen,
        probability=probabilities[chosen], probabilities=probabilities,
        targeted=draw(st.booleans()), default_reward=draw(st.booleans()),
        reward=draw(st.floats(-1e6, 1e6)))


@settings(max_examples=200, deadline=None)
@given(events())
def test_round_trip(event: dict[str, Any]) -> None:
    back = from_dsjson(to_dsjson(event))
    same = ("event_id", "experiment", "policy_version", "variants", "variant",
            "probability", "reward", "targeted", "default_reward")
    assert {k: back[k] for k in same} == {k: event[k] for k in same}  # type: ignore[literal-required]
    assert back["timestamp"] == pytest.approx(event["timestamp"], abs=5e-4)
    offered = [v for v in event["variants"]
               if event["eligible"] is None or v in event["eligible"]]
    assert back["eligible"] == (None if offered == event["variants"] else offered)
    assert back["probabilities"] == pytest.approx(
        {v: event["probabilities"].get(v, 0.0) for v in offered})
    # The context comes back up to the encoding: the policy sees the very same features.
    encoder = FeatureEncoder()
    assert encoder.shared_line(back["context"]) == encoder.shared_line(event["context"])


def test_negative_zero_keeps_its_encoding() -> None:
    """-0.0 is written as ``-0``; read back it must encode to the same feature line."""
    event = joined(context={"x": -0.0, "y": 0.0})
    back = from_dsjson(to_dsjson(event))
    encoder = FeatureEncoder()
    assert encoder.shared_line(back["context"]) == encoder.shared_line(event["context"])
