"""squarecb on the paths every policy takes: the learner, the service's shares, replay."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from bandit import Feedback, Policy, load_policy, make_policy, sample
from bandit.dsjson import from_dsjson, to_dsjson
from bandit.ope import read_archive
from bandit.ope._candidates import Candidate
from common.config import ConfigError, parse_settings
from reward_ingest.join_rules import JoinedEvent
from reward_ingest.joiner import JoinedLog
from reward_ingest.learner import LearnerSettings, MemoryCheckpoints, MemoryLearner
from reward_ingest.lease import MemoryLeaseTable
from reward_ingest.service import IngestService
from tests.reward_ingest._pipeline import T0, decision

SPEC: dict[str, Any] = {"type": "squarecb", "floor": 0.01}


def contextual_events(n: int, seed: int) -> list[tuple[dict[str, Any], str, float]]:
    """(context, arm, reward): A pays when x > 0, B when x < 0, C on plan "pro"."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = float(rng.normal())
        plan = str(rng.choice(["free", "pro"]))
        arm = "ABC"[int(rng.integers(3))]
        good = arm == ("A" if x > 0 else "B") or (arm == "C" and plan == "pro")
        out.append(({"x": x, "plan": plan}, arm, float(good)))
    return out


def test_the_learner_teaches_squarecb_what_direct_updates_teach_it() -> None:
    events = contextual_events(600, seed=1)
    log = JoinedLog()
    for i, (context, arm, reward) in enumerate(events):
        event = decision(f"e{i}", "first", T0, variant=arm, probability=1 / 3, context=context)
        log.append(JoinedEvent(json.dumps(event), reward, False, 1, T0))
    store = MemoryCheckpoints()
    settings = LearnerSettings("first", SPEC, ("A", "B", "C"), batch=250)

    async def learn() -> MemoryLearner:
        learner = MemoryLearner(settings, log, store, MemoryLeaseTable())
        assert await learner.lease.try_acquire()
        await learner.restore()
        while await learner.step():
            pass
        return learner

    learner = asyncio.run(learn())
    assert learner.counters.learned == 600
    assert learner.counters.skipped_invalid == 0
    direct = make_policy(SPEC, ("A", "B", "C"))
    for context, arm, reward in events:
        direct.update([Feedback(arm, reward, 1 / 3, context)])
    checkpointed = load_policy(store.checkpoints["first"].snapshot)
    assert checkpointed.snapshot() == direct.snapshot()
    assert learner.policy is not None and learner.policy.snapshot() == direct.snapshot()
    # It learned the context: each region's arm is the likeliest there.
    for context, best in [({"x": 2.0, "plan": "free"}, "A"), ({"x": -2.0, "plan": "free"}, "B")]:
        probs = checkpointed.probabilities(context)
        assert max(probs, key=probs.__getitem__) == best


def test_the_service_shares_of_squarecb_are_the_recent_decisions_mean() -> None:
    # A contextual policy has no split of its own: the weights push follows what it served.
    policy = make_policy(SPEC, ("A", "B"))

    class Holder:
        def __init__(self, policy: Policy) -> None:
            self.policy = policy

    recent: deque[Mapping[str, float]] = deque([{"A": 0.2, "B": 0.8}, {"A": 0.6, "B": 0.4}])
    service = IngestService(settings=cast(Any, None), joiner=cast(Any, None),
                            learners={"x": cast(Any, Holder(policy))}, joined=cast(Any, None),
                            recent={"x": recent})
    assert service.shares("x") == pytest.approx({"A": 0.4, "B": 0.6}, rel=1e-12)
    assert IngestService(settings=cast(Any, None), joiner=cast(Any, None),
                         learners={"x": cast(Any, Holder(policy))},
                         joined=cast(Any, None)).shares("x") is None


SCHEDULE = [(0, ("A", "B", "C")), (300, ("A", "B", "C", "D")), (600, ("A", "C", "D"))]


def follow(policy: Policy, variants: tuple[str, ...]) -> None:
    for arm in variants:
        if arm not in policy.arms:
            policy.add_arm(arm)
    for arm in policy.arms:
        if arm not in variants:
            policy.remove_arm(arm)


def archive_lines(n: int, seed: int) -> list[str]:
    """DSJSON lines of a uniform logger over the schedule's variants, with eligible subsets."""
    rng = np.random.default_rng(seed)
    lines = []
    for t in range(n):
        variants = [arms for start, arms in SCHEDULE if start <= t][-1]
        eligible = None
        if rng.random() < 0.25:
            eligible = [arm for arm in variants if rng.random() < 0.6] or [variants[-1]]
        offered = eligible or list(variants)
        probs = {arm: (1 / len(offered) if arm in offered else 0.0) for arm in variants}
        arm = sample(probs, float(rng.random()))
        x = round(float(rng.normal()), 4)
        context = {"x": x, "plan": "gold" if rng.random() < 0.5 else "free", "vip": x > 1}
        reward = float(rng.random() < (0.8 if (arm == "A") == (x > 0) else 0.3))
        lines.append(to_dsjson({
            "event_id": f"e{t}", "timestamp": 1.7e9 + t, "experiment": "x",
            "policy_version": "1", "variants": list(variants), "eligible": eligible,
            "context": context, "variant": arm, "probability": probs[arm],
            "probabilities": probs, "reward": reward}))
    return lines


def test_a_squarecb_candidate_replays_as_the_learner_would_train_it(tmp_path: Path) -> None:
    lines = archive_lines(900, seed=2)
    path = tmp_path / "x-20240501T120000-0.json"
    path.write_text("\n".join(lines) + "\n")
    candidate = Candidate("squarecb", SPEC, seed=3)
    assert (candidate.learning, candidate.needs_contexts, candidate.needs_lines) == (
        True, True, False)
    columns = "ABCD"
    rows = []
    for chunk in read_archive(path, contexts=True, chunk_size=128):
        full = np.zeros((len(chunk), 4))
        full[:, [columns.index(arm) for arm in chunk.arms]] = candidate.probabilities(chunk)
        rows.append(full)
    replayed = np.vstack(rows)

    # The production path: probabilities, then one update per event, following the variants.
    policy = make_policy(SPEC, SCHEDULE[0][1], seed=3)
    expected = np.zeros((len(lines), 4))
    for i, line in enumerate(lines):
        event = from_dsjson(line)
        follow(policy, tuple(event["variants"]))
        for arm, p in policy.probabilities(event["context"], event["eligible"]).items():
            expected[i, columns.index(arm)] = p
        eligible = event["eligible"]
        policy.update([Feedback(event["variant"], event["reward"], event["probability"],
                                event["context"], None if eligible is None else tuple(eligible))])
    assert replayed.shape == (900, 4)
    assert np.array_equal(replayed, expected)  # the same policy, bit for bit
    assert np.abs(np.diff(replayed, axis=0)).max() > 0.1  # it learned, and it depends on x
    assert candidate.skipped == 0


def test_the_config_accepts_squarecb_and_names_a_bad_key() -> None:
    def settings(policy: dict[str, Any]) -> Any:
        return parse_settings({"experiments": [{
            "name": "churn", "endpoint": "churn-endpoint",
            "variants": [{"name": "V1"}, {"name": "V2"}], "policy": policy}]})

    spec = {"type": "squarecb", "gamma_scale": 20, "ridge": 0.5}
    assert settings(spec).experiments[0].policy == spec
    with pytest.raises(ConfigError) as caught:
        settings({"type": "squarecb", "max_features": 1})
    assert caught.value.problems == [
        "experiments[0].policy.max_features: must be in [2, 1024], got 1"]
