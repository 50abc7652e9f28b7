"""µs per decision and per update for every policy type, against references in the same run.

    .venv/bin/python bench/decide.py            # the full run (≈ 25 s here)
    .venv/bin/python bench/decide.py --quick    # a smoke run (≈ 2 s)

A decision is what the router does per request: ``policy.probabilities(context)``
then ``sample(probabilities, u)`` with ``u = random.random()``. Each policy has
4 arms and has first learned from 2,000 events, so its state is a realistic one.

Context-free policies cache their probabilities per state (and eligible set),
so two decision figures are given:

- **cached**: the state has not changed since the last decision: the router's
  hot path (a router serves many requests per snapshot);
- **after update**: the first decision after an update, which recomputes the
  probabilities (Thompson integrates P(best) over the posteriors); a router
  pays it once per new snapshot, the simulation's per-step
  loop once per update.

References, measured in the same run and interleaved with ours round by round:

- context-free: a bare Python inverse CDF over a dict of the same probabilities
  with ``random.random()`` (the least any decision can cost in Python);
  The product's budget is absolute: a context-free decision ≤ 20 µs (checked on the
  cached path).
- VW policies (20 shared features × 4 arms): VW's own ``Workspace.predict`` on
  the same example, pre-formatted as text (``_common``), with the same arguments
  our policy gives VW and trained on the same events; budget: our decision
  ≤ 1.5 × it. Updates are compared with ``Workspace.learn`` on the pre-formatted
  labelled example (no budget; the learner's budget (bench/loop.py) covers more than this call).
  For scale, VW's predict on examples parsed beforehand (no text handling at
  all) is shown too: the floor of any VW decision from Python.
- ``squarecb`` (numpy, no VW; the same 20 features × 4 arms and events): VW's
  ``--squarecb`` with the same interactions (``-q sa``), its ``Workspace.predict``
  and ``Workspace.learn`` on the pre-formatted text examples; budgets: our decision
  ≤ 1× VW's predict, and our learning at least half VW's rate (our update of one
  event ≤ 2× VW's learn).

Every figure is the median over rounds of the mean time per call in a round.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import _common
import numpy as np
import vowpalwabbit

from bandit import Feedback, Policy, make_policy, sample

ARMS = ("A", "B", "C", "D")
N_FEATURES = 20
WARMUP_EVENTS = 2_000
CONTEXT_FREE_BUDGET_US = 20.0
VW_BUDGET_RATIO = 1.5
OWN_DECISION_BUDGET_RATIO = 1.0
OWN_LEARN_BUDGET_RATIO = 2.0  # µs per event: learning at ≥ 0.5× VW's rate

CONTEXT_FREE_SPECS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("static", {"type": "static"}),
    ("epsilon_greedy", {"type": "epsilon_greedy"}),
    ("thompson", {"type": "thompson"}),
    ("ucb1", {"type": "ucb1"}),
    ("thompson, discount 0.998", {"type": "thompson", "discount": 0.998}),
    ("thompson, change detection", {"type": "thompson", "change_detection": {}}),
)
VW_SPECS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("online_cover (cover 3)", {"type": "online_cover", "cover": 3}),
    ("vw --squarecb", {"type": "vw", "flags": "--squarecb"}),
    ("vw --epsilon 0.05", {"type": "vw", "flags": "--epsilon 0.05"}),
)
# Our own contextual policies, each against the VW policy whose arguments VW runs with.
OWN_SPECS: tuple[tuple[str, dict[str, Any], dict[str, Any]], ...] = (
    ("squarecb", {"type": "squarecb"}, {"type": "vw", "flags": "--squarecb"}),
)

Timer = Callable[[int], float]
"""Runs ``n`` calls and returns the seconds they took (setup excluded)."""


@dataclass(frozen=True, slots=True)
class Rounds:
    rounds: int
    calls: int

    def scaled(self, factor: float) -> Rounds:
        return Rounds(self.rounds, max(1, int(self.calls * factor)))


def median_us(timers: Sequence[Timer], rounds: Rounds) -> list[float]:
    """Median over rounds of µs per call, for each timer; timers alternate within a round."""
    samples: list[list[float]] = [[] for _ in timers]
    for _ in range(rounds.rounds):
        for timer, out in zip(timers, samples, strict=True):
            out.append(timer(rounds.calls) / rounds.calls * 1e6)
    return [statistics.median(s) for s in samples]


# -- timers -------------------------------------------------------------------


def bare_decision(probabilities: dict[str, float]) -> Timer:
    """The reference: inverse CDF over a dict with ``random.random()``, inlined."""
    def timer(n: int) -> float:
        rnd = random.random
        start = time.perf_counter()
        for _ in range(n):
            u = rnd()
            cumulative = 0.0
            for _arm, p in probabilities.items():
                cumulative += p
                if u < cumulative:
                    break
        return time.perf_counter() - start
    return timer


def cached_decision(policy: Policy, context: dict[str, float] | None = None) -> Timer:
    def timer(n: int) -> float:
        probabilities, rnd = policy.probabilities, random.random
        start = time.perf_counter()
        for _ in range(n):
            sample(probabilities(context), rnd())
        return time.perf_counter() - start
    return timer


def decision_after_update(policy: Policy, events: Sequence[Feedback]) -> Timer:
    """One update (not timed), then one decision (timed): the recompute path."""
    def timer(n: int) -> float:
        rnd = random.random
        total = 0.0
        for i in range(n):
            policy.update([events[i % len(events)]])
            start = time.perf_counter()
            sample(policy.probabilities(None), rnd())
            total += time.perf_counter() - start
        return total
    return timer


def updates(policy: Policy, events: Sequence[Feedback], batch: int) -> Timer:
    """``n`` events applied in updates of ``batch`` events; time per event."""
    batches = [list(events[i:i + batch]) for i in range(0, len(events) - batch + 1, batch)]

    def timer(n: int) -> float:
        start = time.perf_counter()
        for i in range(max(1, n // batch)):
            policy.update(batches[i % len(batches)])
        return (time.perf_counter() - start) * n / (max(1, n // batch) * batch)
    return timer


def contextual_decision(policy: Policy, contexts: Sequence[dict[str, float]]) -> Timer:
    def timer(n: int) -> float:
        probabilities, rnd, m = policy.probabilities, random.random, len(contexts)
        start = time.perf_counter()
        for i in range(n):
            sample(probabilities(contexts[i % m]), rnd())
        return time.perf_counter() - start
    return timer


def vw_predict(workspace: Any, examples: Sequence[list[str]]) -> Timer:
    def timer(n: int) -> float:
        predict, m = workspace.predict, len(examples)
        start = time.perf_counter()
        for i in range(n):
            predict(examples[i % m])
        return time.perf_counter() - start
    return timer


def vw_predict_parsed(workspace: Any, parsed: Sequence[Any]) -> Timer:
    """VW's predict on examples parsed beforehand: VW's own compute, no text at all."""
    def timer(n: int) -> float:
        predict, m = workspace.predict, len(parsed)
        start = time.perf_counter()
        for i in range(n):
            predict(parsed[i % m])
        return time.perf_counter() - start
    return timer


def vw_learn(workspace: Any, examples: Sequence[list[str]]) -> Timer:
    def timer(n: int) -> float:
        learn, m = workspace.learn, len(examples)
        start = time.perf_counter()
        for i in range(n):
            learn(examples[i % m])
        return time.perf_counter() - start
    return timer


# -- data ---------------------------------------------------------------------


def bernoulli_events(n: int, rng: np.random.Generator) -> list[Feedback]:
    """Events over ARMS with 0/1 rewards (means 0.2–0.5), uniform logging probability."""
    means = dict(zip(ARMS, (0.2, 0.3, 0.4, 0.5), strict=True))
    arms = rng.choice(len(ARMS), size=n)
    u = rng.random(n)
    return [Feedback(arm=ARMS[a], reward=float(u[i] < means[ARMS[a]]),
                     probability=1.0 / len(ARMS)) for i, a in enumerate(arms)]


def contexts(n: int, rng: np.random.Generator) -> list[dict[str, float]]:
    values = rng.standard_normal((n, N_FEATURES)).tolist()
    return [{f"x{j}": row[j] for j in range(N_FEATURES)} for row in values]


def contextual_events(ctxs: Sequence[dict[str, float]], rng: np.random.Generator
                      ) -> list[Feedback]:
    """Events with a context, a uniformly logged arm and a reward that depends on both."""
    out = []
    for ctx in ctxs:
        a = int(rng.integers(len(ARMS)))
        p = 1.0 / (1.0 + np.exp(-2.0 * ctx[f"x{a}"]))
        out.append(Feedback(arm=ARMS[a], reward=float(rng.random() < p),
                            probability=1.0 / len(ARMS), context=ctx))
    return out


# -- the benchmark ------------------------------------------------------------


def context_free_rows(rounds: Rounds, rng: np.random.Generator, progress: Callable[[str], None]
                      ) -> tuple[list[list[str]], list[list[str]]]:
    events = bernoulli_events(WARMUP_EVENTS + 10_000, rng)
    rows, budgets = [], []
    for label, spec in CONTEXT_FREE_SPECS:
        progress(label)
        policy = make_policy(spec, ARMS, seed=1)
        policy.update(events[:WARMUP_EVENTS])
        probabilities = policy.probabilities()
        reference, cached = median_us([bare_decision(probabilities), cached_decision(policy)],
                                      rounds)
        slow = 0.02 if spec["type"] == "thompson" else 0.2
        (recompute,) = median_us([decision_after_update(policy, events[WARMUP_EVENTS:])],
                                 rounds.scaled(slow))
        (update_one,) = median_us([updates(policy, events[WARMUP_EVENTS:], 1)],
                                  rounds.scaled(0.2))
        (update_batch,) = median_us([updates(policy, events[WARMUP_EVENTS:], 100)], rounds)
        rows.append([label, f"{reference:.2f}", f"{cached:.2f}", f"{cached / reference:.1f}",
                     f"{recompute:.1f}", f"{update_one:.1f}", f"{update_batch:.2f}"])
        verdict = "PASS" if cached <= CONTEXT_FREE_BUDGET_US else "FAIL"
        budgets.append([f"{label}: cached decision", f"≤ {CONTEXT_FREE_BUDGET_US:g} µs",
                        f"{cached:.2f} µs", verdict])
    return rows, budgets


def vw_rows(rounds: Rounds, rng: np.random.Generator, progress: Callable[[str], None]
            ) -> tuple[list[list[str]], list[list[str]]]:
    ctxs = contexts(WARMUP_EVENTS + 256, rng)
    warmup = contextual_events(ctxs[:WARMUP_EVENTS], rng)
    probe = ctxs[WARMUP_EVENTS:]
    actions = _common.action_lines(ARMS)
    index = {arm: i for i, arm in enumerate(ARMS)}

    def labelled(event: Feedback) -> list[str]:
        assert event.context is not None  # noqa: S101 - contextual_events sets it
        return _common.labelled_example(event.context, actions, index[event.arm],
                                        event.reward, event.probability)

    learn_examples = [labelled(e) for e in warmup]
    predict_examples = [_common.adf_example(c, actions) for c in probe]
    rows, budgets = [], []
    for label, spec in VW_SPECS:
        progress(label)
        policy = make_policy(spec, ARMS, seed=1)
        workspace = vowpalwabbit.Workspace(_common.vw_command(policy))
        policy.update(warmup)
        for example in learn_examples:
            workspace.learn(example)
        parsed = [workspace.parse(example) for example in predict_examples]
        vw, ours, vw_parsed = median_us([vw_predict(workspace, predict_examples),
                                         contextual_decision(policy, probe),
                                         vw_predict_parsed(workspace, parsed)],
                                        rounds.scaled(0.1))
        for example in parsed:
            workspace.finish_example(example)
        learn_rounds = rounds.scaled(0.05)
        vw_up, ours_up = median_us([vw_learn(workspace, learn_examples),
                                    updates(policy, warmup, 1)], learn_rounds)
        rows.append([label, f"{vw_parsed:.1f}", f"{vw:.1f}", f"{ours:.1f}", f"{ours / vw:.2f}",
                     f"{vw_up:.1f}", f"{ours_up:.1f}", f"{ours_up / vw_up:.2f}"])
        verdict = "PASS" if ours <= VW_BUDGET_RATIO * vw else "FAIL"
        budgets.append([f"{label}: decision", f"≤ {VW_BUDGET_RATIO:g}× VW predict",
                        f"{ours / vw:.2f}×", verdict])
    return rows, budgets


def own_rows(rounds: Rounds, rng: np.random.Generator, progress: Callable[[str], None]
             ) -> tuple[list[list[str]], list[list[str]]]:
    """Our contextual policies against VW run with the reference spec's arguments."""
    ctxs = contexts(WARMUP_EVENTS + 256, rng)
    warmup = contextual_events(ctxs[:WARMUP_EVENTS], rng)
    probe = ctxs[WARMUP_EVENTS:]
    actions = _common.action_lines(ARMS)
    index = {arm: i for i, arm in enumerate(ARMS)}
    learn_examples = [
        _common.labelled_example(e.context or {}, actions, index[e.arm], e.reward,
                                 e.probability) for e in warmup]
    predict_examples = [_common.adf_example(c, actions) for c in probe]
    rows, budgets = [], []
    for label, spec, reference in OWN_SPECS:
        progress(label)
        policy = make_policy(spec, ARMS, seed=1)
        workspace = vowpalwabbit.Workspace(_common.vw_command(make_policy(reference, ARMS,
                                                                          seed=1)))
        policy.update(warmup)
        for example in learn_examples:
            workspace.learn(example)
        parsed = [workspace.parse(example) for example in predict_examples]
        vw, ours, vw_parsed = median_us([vw_predict(workspace, predict_examples),
                                         contextual_decision(policy, probe),
                                         vw_predict_parsed(workspace, parsed)],
                                        rounds.scaled(0.1))
        for example in parsed:
            workspace.finish_example(example)
        vw_up, ours_up = median_us([vw_learn(workspace, learn_examples),
                                    updates(policy, warmup, 1)], rounds.scaled(0.05))
        vw_label = f"VW {reference.get('flags', '')}".strip()
        rows.append([label, vw_label, f"{vw_parsed:.1f}", f"{vw:.1f}", f"{ours:.1f}",
                     f"{ours / vw:.2f}", f"{vw_up:.1f}", f"{ours_up:.1f}",
                     f"{vw_up / ours_up:.2f}"])
        decision_ok = ours <= OWN_DECISION_BUDGET_RATIO * vw
        learn_ok = ours_up <= OWN_LEARN_BUDGET_RATIO * vw_up
        budgets.append([f"{label}: decision", f"≤ {OWN_DECISION_BUDGET_RATIO:g}× {vw_label} "
                        "predict", f"{ours / vw:.2f}×", "PASS" if decision_ok else "FAIL"])
        budgets.append([f"{label}: learning rate",
                        f"≥ {1 / OWN_LEARN_BUDGET_RATIO:g}× {vw_label} learn",
                        f"{vw_up / ours_up:.2f}×", "PASS" if learn_ok else "FAIL"])
    return rows, budgets


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke run: fewer, shorter rounds")
    args = parser.parse_args(argv)
    rounds = Rounds(rounds=3, calls=5_000) if args.quick else Rounds(rounds=7, calls=50_000)
    rng = np.random.default_rng(0)
    random.seed(0)

    def progress(label: str) -> None:
        print(f"measuring {label} ...", file=sys.stderr, flush=True)

    print(_common.run_header("bench/decide.py", ["bench/decide.py", *sys.argv[1:]]))
    print(f"\n{len(ARMS)} arms; each policy first learns from {WARMUP_EVENTS:,} events; "
          f"median over {rounds.rounds} rounds.")
    if args.quick:
        print("\n**Quick run**: short rounds; a smoke test, not the benchmark.")

    cf_rows, cf_budgets = context_free_rows(rounds, rng, progress)
    vw_table, vw_budgets = vw_rows(rounds, rng, progress)
    own_table, own_budgets = own_rows(rounds, rng, progress)

    print("\n## Context-free policies (µs)\n")
    print(_common.markdown_table(
        ["policy", "reference: bare inverse CDF", "decision, cached", "ratio",
         "decision after update", "update, 1 event", "update, per event in 100"], cf_rows))
    print(f"\n## VW policies, {N_FEATURES} shared features × {len(ARMS)} arms (µs)\n")
    print(_common.markdown_table(
        ["policy", "VW predict (parsed)", "reference: VW predict (text)", "our decision",
         "ratio", "VW learn (text)",
         "our update, 1 event", "ratio"], vw_table))
    print(f"\n## Our contextual policies against VW, {N_FEATURES} shared features × "
          f"{len(ARMS)} arms (µs)\n")
    print(_common.markdown_table(
        ["policy", "reference", "VW predict (parsed)", "VW predict (text)", "our decision",
         "ratio", "VW learn (text)", "our update, 1 event", "learning rate, ours / VW"],
        own_table))
    print("\n## Budgets\n")
    print(_common.markdown_table(["what", "budget", "measured", "verdict"],
                                 cf_budgets + vw_budgets + own_budgets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
