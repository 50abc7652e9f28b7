"""Regret of our policies against mabwiser's and against VW run directly, on the same draws.

    .venv/bin/python bench/regret.py            # the full run (minutes on 2 cores)
    .venv/bin/python bench/regret.py --quick    # a smoke run (≈ 5 s)
    .venv/bin/python bench/regret.py --cases drift            # the drift suite
    .venv/bin/python bench/regret.py --cases drift --quick    # its smoke run

Every policy, ours or a reference, runs through ``bandit.sim.run``: for a given
seed the same contexts, the same choice uniforms and, arm for arm, the same
reward draws (common random numbers), so differences are the policies'.
References plug into ``run`` through adapters that offer what it calls
(``arms``, ``probabilities``, ``update``):

- mabwiser 2.7 ``MAB(arms, LearningPolicy.X(...), seed=seed)``: ``predict``
  picks an arm, served with probability 1; feedback goes to ``fit`` (the first
  time) and then ``partial_fit``. mabwiser refuses ``predict`` before a ``fit``,
  so until its first feedback the adapter offers the arms uniformly (what our
  policies do with no data). Its UCB1 scores an arm with no reward yet as 0,
  below every tried arm, so it would never try it: for UCB1 the adapter offers
  the arms without feedback first (UCB1's own initialisation, Auer et al. 2002,
  and what our ucb1 does).
- VW ``--cb_explore_adf`` run directly: a ``vowpalwabbit.Workspace`` with the
  arguments our VW policy gives VW, fed text examples formatted in ``_common``
  (not by ``bandit``); its pmf is served as is.

All policies learn in batches of ``--batch`` events (ours via ``run(batch=B)``,
the references through the same loop), so mabwiser's per-call cost stays
bounded and every policy sees the same information at every step.

Cases (the means are part of the contract of this benchmark):

- ``k2-close``: means 0.05 / 0.06, T = 50,000.
- ``k5``: means 0.30 / 0.35 / 0.40 / 0.45 / 0.50, T = 20,000.
- ``switch``: the k5 means, reversed at step 10,000 (the best arm becomes the
  worst), T = 20,000. Our discounted policies use γ = 0.998: Garivier & Moulines
  (2011) tune discounted UCB with γ = 1 − ¼·√(Υ/T) for Υ breakpoints over T
  steps, here 1 − ¼·√(1/20,000) ≈ 0.998 (a memory of ≈ 500 events). Rows for
  γ = 0.999 and 0.9995 show how the result depends on that choice; the budget
  is checked on γ = 0.998, chosen before any run. The change-detecting policies
  (``change_detection`` at its defaults: a GLR test per arm, restart on alarm)
  run here and, to show what false alarms cost, on the stationary cases too.
- ``delay``: the k5 problem with each reward arriving 500 steps late.
- ``contextual``: ``ContextualProblem(n_arms=4, n_features=20, seed=0)``, T = 10,000.
- ``categorical``: ``CategoricalProblem(n_arms=4, seed=0)`` (country, device, plan
  and a bool: one-hot features only), T = 10,000.

The drift suite (``--cases drift``; ``--cases all`` runs both sets), T = 20,000,
for K = 2, 3, 5 with means 0.3 / 0.5, 0.3 / 0.5 / 0.4 and 0.3 / 0.5 / 0.4 /
0.35 / 0.45 (arm 0 the worst, arm 1 the best), cases ``drift-k{K}-{shape}``:

- ``best-worse``: arm 1 drops to 0.2 at T/2.
- ``abandoned-small`` / ``abandoned-large``: arm 0, abandoned early, rises to
  0.6 / 0.8 at T/2 (the best by 0.1 / 0.3).
- ``two-switches``: arm 0 rises to 0.7 at T/3 and falls back to 0.3 at 2T/3.
- ``gradual``: arm 0 rises in a straight line from 0.3 to 0.7 over T/4 to
  3T/4 (``DriftingProblem``), passing arm 1 at T/2.
- ``stationary``: no change, to show what false alarms and exploration cost.

Its contenders: our thompson with change detection at its defaults and with
other ``explore`` / ``restart`` settings, with ``discount`` 0.998 and plain; our
ucb1 with and without change detection; mabwiser's UCB1 and Thompson; and the
oracle-restart reference, our thompson rebuilt from scratch at each true change
step (for ``gradual``, at T/2).

Budgets (this benchmark's own; the speed budgets are in bench/README.md): our thompson ≤ 1.1 ×
mabwiser's Thompson regret on k2-close, k5 and delay; our change-detecting thompson
and our discounted thompson each ≤ 1.0 × mabwiser's UCB1 regret on switch; each of
our VW policies' mean reward within 1 % of VW run directly with the same flags;
our ``squarecb`` (numpy, no VW) on both contextual cases at most 0.01 below the mean
reward of VW's ``--squarecb`` run directly with the same interactions (``-q sa``);
earning more passes. In the drift suite, the change-detecting thompson ≤ 0.8 ×
mabwiser's UCB1 regret on every abrupt case (``best-worse``, ``abandoned-*``,
``two-switches``) and ≤ 1.05 × our plain thompson's on every ``stationary`` case,
checked on the defaults and on each other change-detecting setting.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import _common
import numpy as np
import vowpalwabbit
from mabwiser.mab import MAB, LearningPolicy

from bandit import Feedback, Policy, make_policy
from bandit._change_detection import DEFAULT_EXPLORE
from bandit.sim import (
    BernoulliProblem,
    CategoricalProblem,
    ContextualProblem,
    DriftingProblem,
    Problem,
    run,
)

K5_MEANS = (0.30, 0.35, 0.40, 0.45, 0.50)
SWITCH_DISCOUNT = 0.998
SENSITIVITY_DISCOUNTS = (0.999, 0.9995)
DELAY = 500
# The GLR change detector at its defaults (δ = 0.001, blocks of 10 events).
CHANGE_DETECTING = "ours thompson, change detection"


# -- the contenders -----------------------------------------------------------


class SimPolicy(Protocol):
    """What ``bandit.sim.run`` calls on a policy; the reference adapters offer it."""

    @property
    def arms(self) -> tuple[str, ...]: ...

    def probabilities(self, context: Any = None, eligible: Any = None) -> dict[str, float]: ...

    def update(self, feedback: Iterable[Feedback]) -> None: ...


class MabwiserReference:
    """A mabwiser ``MAB`` behind the interface ``run`` uses (see the module docstring)."""

    def __init__(self, arms: Sequence[str], learning_policy: Any, seed: int) -> None:
        self.arms = tuple(arms)
        self._mab = MAB(list(arms), learning_policy, seed=seed)
        self._fitted = False
        untried_first = isinstance(learning_policy, LearningPolicy.UCB1)
        self._untried = set(arms) if untried_first else set()

    def probabilities(self, context: Any = None, eligible: Any = None) -> dict[str, float]:
        if not self._fitted or self._untried:
            offered = self._untried or set(self.arms)
            return {arm: 1.0 / len(offered) if arm in offered else 0.0 for arm in self.arms}
        choice = self._mab.predict()
        return {arm: 1.0 if arm == choice else 0.0 for arm in self.arms}

    def update(self, feedback: Iterable[Feedback]) -> None:
        batch = list(feedback)
        decisions = [item.arm for item in batch]
        rewards = [item.reward for item in batch]
        if self._fitted:
            self._mab.partial_fit(decisions, rewards)
        else:
            self._mab.fit(decisions, rewards)
            self._fitted = True
        self._untried.difference_update(decisions)


class VWReference:
    """VW's ``cb_explore_adf`` run directly on text examples formatted by ``_common``."""

    def __init__(self, arms: Sequence[str], args: str) -> None:
        self.arms = tuple(arms)
        self._actions = _common.action_lines(self.arms)
        self._index = {arm: i for i, arm in enumerate(self.arms)}
        self._workspace = vowpalwabbit.Workspace(args)

    def probabilities(self, context: Any = None, eligible: Any = None) -> dict[str, float]:
        pmf = self._workspace.predict(_common.adf_example(context, self._actions))
        return {arm: float(p) for arm, p in zip(self.arms, pmf, strict=True)}

    def update(self, feedback: Iterable[Feedback]) -> None:
        for item in feedback:
            assert item.context is not None  # noqa: S101 - run always passes the context
            self._workspace.learn(_common.labelled_example(
                item.context, self._actions, self._index[item.arm], item.reward,
                item.probability))


class OracleRestart:
    """Our policy, rebuilt from scratch at the true change steps: what a perfect,
    instant change detector would do (the oracle-restart reference).

    ``run`` asks for probabilities once per step, so the calls count the steps.
    Feedback from before a change still in the current batch (< ``--batch``
    events) reaches the rebuilt policy, as it would after a real restart.
    """

    def __init__(self, arms: Sequence[str], spec: dict[str, Any], changes: Sequence[int],
                 seed: int) -> None:
        self.arms = tuple(arms)
        self._spec, self._seed, self._changes = spec, seed, frozenset(changes)
        self._policy = make_policy(spec, arms, seed=seed)
        self._step = 0

    def probabilities(self, context: Any = None, eligible: Any = None) -> dict[str, float]:
        if self._step in self._changes:
            self._policy = make_policy(self._spec, self.arms, seed=self._seed)
        self._step += 1
        return self._policy.probabilities(context, eligible)

    def update(self, feedback: Iterable[Feedback]) -> None:
        self._policy.update(feedback)


@dataclass(frozen=True, slots=True)
class Contender:
    """One policy in a case: ours (a ``make_policy`` spec) or a reference.

    ``source`` is ``ours``, ``mabwiser`` (``spec`` = the LearningPolicy's name
    and keyword arguments), ``vw`` (``spec`` = the spec of our VW policy whose
    arguments VW is run with) or ``oracle`` (our policy of ``spec``, rebuilt
    from scratch at each of the case's true change steps).
    """

    label: str
    source: str
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def is_reference(self) -> bool:
        return self.source != "ours"

    def build(self, arms: Sequence[str], seed: int, changes: Sequence[int] = ()) -> SimPolicy:
        if self.source == "ours":
            return make_policy(self.spec, arms, seed=seed)
        if self.source == "oracle":
            return OracleRestart(arms, self.spec, changes, seed)
        if self.source == "mabwiser":
            learning_policy = getattr(LearningPolicy, self.spec["policy"])(**self.spec["args"])
            return MabwiserReference(arms, learning_policy, seed)
        return VWReference(arms, _common.vw_command(make_policy(self.spec, arms, seed=seed)))


def ours(label: str, **spec: Any) -> Contender:
    return Contender(label, "ours", spec)


def mabwiser(label: str, policy: str, **args: Any) -> Contender:
    return Contender(label, "mabwiser", {"policy": policy, "args": args})


CONTEXT_FREE = (
    ours("ours thompson", type="thompson"),
    ours(CHANGE_DETECTING, type="thompson", change_detection={}),
    ours("ours epsilon_greedy (ε 0.1)", type="epsilon_greedy", epsilon=0.1),
    ours("ours ucb1 (α 1)", type="ucb1", alpha=1.0),
    mabwiser("mabwiser ThompsonSampling", "ThompsonSampling"),
    mabwiser("mabwiser EpsilonGreedy (ε 0.1)", "EpsilonGreedy", epsilon=0.1),
    mabwiser("mabwiser UCB1 (α 1)", "UCB1", alpha=1.0),
)

SWITCHING = (
    ours(CHANGE_DETECTING, type="thompson", change_detection={}),
    ours("ours ucb1 (α 1), change detection", type="ucb1", alpha=1.0, change_detection={}),
    ours(f"ours thompson, discount {SWITCH_DISCOUNT}", type="thompson",
         discount=SWITCH_DISCOUNT),
    ours(f"ours ucb1 (α 1), discount {SWITCH_DISCOUNT}", type="ucb1", alpha=1.0,
         discount=SWITCH_DISCOUNT),
    *(ours(f"ours thompson, discount {g} (sensitivity)", type="thompson", discount=g)
      for g in SENSITIVITY_DISCOUNTS),
    ours("ours thompson", type="thompson"),
    ours("ours ucb1 (α 1)", type="ucb1", alpha=1.0),
    mabwiser("mabwiser ThompsonSampling", "ThompsonSampling"),
    mabwiser("mabwiser UCB1 (α 1)", "UCB1", alpha=1.0),
)

# The drift suite's contenders: ours with and without change detection and
# discount, mabwiser's UCB1 and Thompson, and the oracle-restart reference. The
# rows that vary ``explore`` and ``restart`` show what the defaults trade.
ORACLE = "oracle restart (thompson)"
MABWISER_UCB1 = "mabwiser UCB1 (α 1)"
DRIFT_EXPLORE = tuple(a for a in (0.0, 0.01, 0.03) if a != DEFAULT_EXPLORE)
DRIFTING = (
    ours(CHANGE_DETECTING, type="thompson", change_detection={}),
    *(ours(f"ours thompson, change detection, explore {a:g}", type="thompson",
           change_detection={"explore": a}) for a in DRIFT_EXPLORE),
    ours("ours thompson, change detection, restart arm", type="thompson",
         change_detection={"restart": "arm"}),
    ours(f"ours thompson, discount {SWITCH_DISCOUNT}", type="thompson",
         discount=SWITCH_DISCOUNT),
    ours("ours thompson", type="thompson"),
    ours("ours ucb1 (α 1), change detection", type="ucb1", alpha=1.0, change_detection={}),
    ours("ours ucb1 (α 1), change detection, restart all", type="ucb1", alpha=1.0,
         change_detection={"restart": "all"}),
    ours("ours ucb1 (α 1)", type="ucb1", alpha=1.0),
    mabwiser("mabwiser ThompsonSampling", "ThompsonSampling"),
    mabwiser(MABWISER_UCB1, "UCB1", alpha=1.0),
    Contender(ORACLE, "oracle", {"type": "thompson"}),
)

DRIFT_CANDIDATES = tuple(c.label for c in DRIFTING
                         if c.label.startswith("ours thompson, change detection"))


VW_POLICIES = (
    ("online_cover (cover 3)", {"type": "online_cover", "cover": 3}),
    ("vw --squarecb", {"type": "vw", "flags": "--squarecb"}),
    ("vw --epsilon 0.05", {"type": "vw", "flags": "--epsilon 0.05"}),
)
SQUARECB = "ours squarecb"
VW_SQUARECB = "VW direct, as vw --squarecb"
CONTEXTUAL = (
    ours(SQUARECB, type="squarecb"),
    *(Contender(f"ours {name}", "ours", spec) for name, spec in VW_POLICIES),
    ours("ours thompson (context-free)", type="thompson"),
    *(Contender(f"VW direct, as {name}", "vw", spec) for name, spec in VW_POLICIES),
)
CATEGORICAL = (
    ours(SQUARECB, type="squarecb"),
    Contender("ours vw --squarecb", "ours", {"type": "vw", "flags": "--squarecb"}),
    ours("ours thompson (context-free)", type="thompson"),
    Contender(VW_SQUARECB, "vw", {"type": "vw", "flags": "--squarecb"}),
)
CONTEXTUAL_PROBLEMS = (ContextualProblem, CategoricalProblem)


# -- the cases ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    description: str
    problem: Problem
    steps: int
    delay: int
    contenders: tuple[Contender, ...]
    switch_at: int | None = None
    changes: tuple[int, ...] = ()

    def contender(self, label: str) -> Contender:
        return next(c for c in self.contenders if c.label == label)


def make_cases(quick: bool) -> dict[str, Case]:
    """The six cases; ``quick`` shortens them for a smoke run."""
    scale = 10 if quick else 1
    k5_steps = 20_000 // scale
    switch_at = k5_steps // 2
    cases = [
        Case("k2-close", "K=2, means 0.05 / 0.06", BernoulliProblem([0.05, 0.06]),
             50_000 // scale, 0, CONTEXT_FREE),
        Case("k5", f"K=5, means {' / '.join(f'{m:.2f}' for m in K5_MEANS)}",
             BernoulliProblem(K5_MEANS), k5_steps, 0, CONTEXT_FREE),
        Case("switch", f"the k5 means, reversed at step {switch_at:,}",
             BernoulliProblem(K5_MEANS, switches=[(switch_at, K5_MEANS[::-1])]),
             k5_steps, 0, SWITCHING, switch_at),
        Case("delay", f"the k5 problem, rewards {DELAY} steps late",
             BernoulliProblem(K5_MEANS), k5_steps, DELAY, CONTEXT_FREE),
        Case("contextual", "ContextualProblem(n_arms=4, n_features=20, seed=0)",
             ContextualProblem(n_arms=4, n_features=20, seed=0), 10_000 // scale, 0,
             CONTEXTUAL),
        Case("categorical", "CategoricalProblem(n_arms=4, seed=0)",
             CategoricalProblem(n_arms=4, seed=0), 10_000 // scale, 0, CATEGORICAL),
    ]
    return {case.name: case for case in [*cases, *drift_cases(quick)]}


# The drift suite: K = 2, 3, 5 arms, arm 0 the worst and arm 1 the best at the start.
DRIFT_MEANS = {2: (0.3, 0.5), 3: (0.3, 0.5, 0.4), 5: (0.3, 0.5, 0.4, 0.35, 0.45)}
DRIFT_STEPS = 20_000
ABRUPT = ("best-worse", "abandoned-small", "abandoned-large", "two-switches")
STATIONARY = "stationary"


def drift_cases(quick: bool) -> list[Case]:
    """Every drift case for every K (see the module docstring)."""
    steps = DRIFT_STEPS // (10 if quick else 1)
    half, third = steps // 2, steps // 3
    cases = []
    for k, start in DRIFT_MEANS.items():
        def moved(arm: int, mean: float, start: tuple[float, ...] = start) -> list[float]:
            return [mean if i == arm else m for i, m in enumerate(start)]

        def switch(description: str, *changes: tuple[int, list[float]],
                   start: tuple[float, ...] = start) -> tuple[str, Problem, tuple[int, ...]]:
            return (description, BernoulliProblem(start, switches=list(changes)),
                    tuple(step for step, _ in changes))

        shapes = {
            "best-worse": switch(f"arm 1 (best) 0.5 → 0.2 at step {half:,}",
                                 (half, moved(1, 0.2))),
            "abandoned-small": switch(f"arm 0 (worst) 0.3 → 0.6 at step {half:,}",
                                      (half, moved(0, 0.6))),
            "abandoned-large": switch(f"arm 0 (worst) 0.3 → 0.8 at step {half:,}",
                                      (half, moved(0, 0.8))),
            "two-switches": switch(f"arm 0 0.3 → 0.7 at step {third:,}, back to 0.3 at "
                                   f"{2 * third:,}", (third, moved(0, 0.7)),
                                   (2 * third, list(start))),
            "gradual": (f"arm 0 0.3 → 0.7 in a straight line over steps {steps // 4:,}–"
                        f"{3 * steps // 4:,} (best from {half:,})",
                        DriftingProblem([(0, start), (steps // 4, start),
                                         (3 * steps // 4, moved(0, 0.7))]), (half,)),
            STATIONARY: ("no change", BernoulliProblem(start), ()),
        }
        for shape, (description, problem, changes) in shapes.items():
            cases.append(Case(f"drift-k{k}-{shape}",
                              f"K={k}, means {' / '.join(f'{m:.2f}' for m in start)}; "
                              f"{description}", problem, steps, 0, DRIFTING,
                              changes[0] if changes else None, changes))
    return cases


@dataclass(frozen=True, slots=True)
class Outcome:
    regret: float
    reward: float
    seconds: float
    regret_after_switch: float


def simulate(case_name: str, label: str, seed: int, quick: bool, batch: int) -> Outcome:
    """One run of one contender on one case (in a worker process)."""
    case = make_cases(quick)[case_name]
    policy = case.contender(label).build(case.problem.arms, seed, case.changes)
    start = time.perf_counter()
    # run only calls arms / probabilities / update, which the references offer too.
    result = run(cast(Policy, policy), case.problem, case.steps, seed=seed, delay=case.delay,
                 batch=batch)
    seconds = time.perf_counter() - start
    after = float(result.regret[case.switch_at:].sum()) if case.switch_at else math.nan
    return Outcome(result.total_regret, result.mean_reward, seconds, after)


# -- statistics and the report ------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class Summary:
    """One contender's outcomes on one case, indexed by seed (so that runs pair up)."""

    regrets: np.ndarray
    rewards: np.ndarray
    seconds: float
    regret_after_switch: float

    @classmethod
    def of(cls, outcomes: dict[int, Outcome]) -> Summary:
        seeds = sorted(outcomes)
        return cls(np.array([outcomes[s].regret for s in seeds]),
                   np.array([outcomes[s].reward for s in seeds]),
                   float(np.mean([o.seconds for o in outcomes.values()])),
                   float(np.mean([o.regret_after_switch for o in outcomes.values()])))

    @property
    def regret(self) -> float:
        return float(self.regrets.mean())

    @property
    def reward(self) -> float:
        return float(self.rewards.mean())


def _se(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else math.nan


def paired_ratio(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """mean(a) / mean(b) and its standard error, a[s] and b[s] from the same seed s.

    Delta method for a ratio of means of paired samples:
    Var(ā / b̄) ≈ Var(aₛ − r·bₛ) / (n·b̄²) with r = ā / b̄, which credits the
    correlation that common random numbers create (identical runs give SE 0).
    """
    ratio = float(a.mean() / b.mean())
    return ratio, _se(a - ratio * b) / abs(float(b.mean()))


def case_table(case: Case, summaries: dict[str, Summary]) -> str:
    references = [c for c in case.contenders if c.is_reference]
    best_regret = min(summaries[c.label].regret for c in references)
    best_reward = max(summaries[c.label].reward for c in references)
    contextual = isinstance(case.problem, CONTEXTUAL_PROBLEMS)
    headers = ["policy", "regret (mean ± SE)", "median", "ratio to best ref",
               "mean reward ± SE"]
    if case.switch_at:
        headers[3:3] = ["before switch", "after switch"]
    if contextual:
        headers.append("reward ratio to best ref")
    headers.append("s / run")
    rows = []
    for contender in case.contenders:
        s = summaries[contender.label]
        row = [contender.label, f"{s.regret:,.1f} ± {_se(s.regrets):,.1f}",
               f"{float(np.median(s.regrets)):,.1f}",
               "ref" if contender.is_reference else f"{s.regret / best_regret:.2f}",
               f"{s.reward:.4f} ± {_se(s.rewards):.4f}"]
        if case.switch_at:
            after = s.regret_after_switch
            row[3:3] = [f"{s.regret - after:,.1f}", f"{after:,.1f}"]
        if contextual:
            row.append("ref" if contender.is_reference else f"{s.reward / best_reward:.3f}")
        row.append(f"{s.seconds:.1f}")
        rows.append(row)
    return _common.markdown_table(headers, rows)


@dataclass(frozen=True, slots=True)
class Budget:
    """``ours`` against ``reference`` on ``case``: a regret ratio cap, a reward tolerance
    (a ratio, either way) or a reward margin (ours at most this far below)."""

    case: str
    ours: str
    reference: str
    max_regret_ratio: float | None = None
    reward_tolerance: float | None = None
    reward_margin: float | None = None

    def check(self, summaries: dict[str, dict[str, Summary]]) -> list[str]:
        a = summaries[self.case][self.ours]
        b = summaries[self.case][self.reference]
        if self.max_regret_ratio is not None:
            ratio, se = paired_ratio(a.regrets, b.regrets)
            limit = f"regret ≤ {self.max_regret_ratio:g}×"
            passed = ratio <= self.max_regret_ratio
            measured = f"{ratio:.3f} ± {se:.3f}"
        elif self.reward_margin is not None:
            difference = a.rewards - b.rewards  # paired by seed
            limit = f"reward ≥ ref − {self.reward_margin:g}"
            passed = float(difference.mean()) >= -self.reward_margin
            measured = f"{float(difference.mean()):+.4f} ± {_se(difference):.4f} (difference)"
        else:
            assert self.reward_tolerance is not None  # noqa: S101 - one of the three is set
            ratio, se = paired_ratio(a.rewards, b.rewards)
            limit = f"reward within {self.reward_tolerance:.0%}"
            passed = abs(ratio - 1.0) <= self.reward_tolerance
            measured = f"{ratio:.4f} ± {se:.4f}"
        return [self.case, self.ours, self.reference, limit, measured,
                "PASS" if passed else "FAIL"]


BUDGETS = (
    *(Budget(case, "ours thompson", "mabwiser ThompsonSampling", max_regret_ratio=1.1)
      for case in ("k2-close", "k5", "delay")),
    Budget("switch", CHANGE_DETECTING, "mabwiser UCB1 (α 1)", max_regret_ratio=1.0),
    Budget("switch", f"ours thompson, discount {SWITCH_DISCOUNT}", "mabwiser UCB1 (α 1)",
           max_regret_ratio=1.0),
    *(Budget("contextual", f"ours {name}", f"VW direct, as {name}", reward_tolerance=0.01)
      for name, _ in VW_POLICIES),
    *(Budget(case, SQUARECB, VW_SQUARECB, reward_margin=0.01)
      for case in ("contextual", "categorical")),
    # The drift budgets, checked on the defaults and, to show what each setting
    # trades, on every change-detecting variant of the suite.
    *(Budget(f"drift-k{k}-{shape}", label, MABWISER_UCB1, max_regret_ratio=0.8)
      for label in DRIFT_CANDIDATES for k in DRIFT_MEANS for shape in ABRUPT),
    *(Budget(f"drift-k{k}-{STATIONARY}", label, "ours thompson", max_regret_ratio=1.05)
      for label in DRIFT_CANDIDATES for k in DRIFT_MEANS),
)


# -- the driver ---------------------------------------------------------------


class ProgressLine:
    """Progress on stderr: one rewritten line on a terminal, a line per ~5 % otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.start = time.monotonic()
        self._tty = sys.stderr.isatty()
        self._next_report = 0.0

    def advance(self, note: str) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        line = (f"[{self.done}/{self.total}] {elapsed:6.0f} s elapsed, ~{eta:4.0f} s left  "
                f"{note}")
        if self._tty:
            print(f"\r\x1b[2K{line}", end="" if self.done < self.total else "\n",
                  file=sys.stderr, flush=True)
        elif self.done >= self._next_report or self.done == self.total:
            print(line, file=sys.stderr, flush=True)
            self._next_report = self.done + self.total / 20


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1/10 of the steps, 3 seeds")
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds per policy and case (default 30, 3 with --quick)")
    parser.add_argument("--batch", type=int, default=10,
                        help="events per update, for every policy alike (default 10)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="worker processes (default: up to 2)")
    parser.add_argument("--cases", nargs="+", default=None,
                        help="only these cases: names (k2-close k5 switch delay contextual "
                             "categorical drift-k3-stationary ...) or groups: classic (the "
                             "default), drift (the drift suite), all")
    args = parser.parse_args(argv)
    seeds = args.seeds if args.seeds is not None else (3 if args.quick else 30)
    cases = make_cases(args.quick)
    groups = {"all": list(cases), "drift": [n for n in cases if n.startswith("drift-")],
              "classic": [n for n in cases if not n.startswith("drift-")]}
    selected = [name for wanted in (args.cases or ["classic"])
                for name in groups.get(wanted, [wanted])]
    unknown = set(selected) - set(cases)
    if unknown:
        parser.error(f"unknown case(s): {', '.join(sorted(unknown))}")

    tasks = [(name, c.label, seed) for name in selected for c in cases[name].contenders
             for seed in range(seeds)]
    print(_common.run_header("bench/regret.py", ["bench/regret.py", *sys.argv[1:]]))
    print(f"\n{seeds} seeds per policy (seed s: run(seed=s), policy seed s), updates every "
          f"{args.batch} events for every policy (B = {args.batch}), {args.jobs} worker "
          "processes. Regret: total expected (pseudo-)regret over the run; SE over seeds; "
          "budget ratios are paired by seed (same draws), SE by the delta method.")
    if args.quick:
        print("\n**Quick run**: 1/10 of the steps and few seeds; the verdicts below are a "
              "smoke test, not the benchmark.")

    outcomes: dict[tuple[str, str], dict[int, Outcome]] = {}
    progress = ProgressLine(len(tasks))
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(simulate, name, label, seed, args.quick, args.batch):
                   (name, label, seed) for name, label, seed in tasks}
        for future in as_completed(futures):
            name, label, seed = futures[future]
            outcome = future.result()
            outcomes.setdefault((name, label), {})[seed] = outcome
            progress.advance(f"{name}: {label}, seed {seed}: regret {outcome.regret:,.1f}")

    summaries: dict[str, dict[str, Summary]] = {}
    for name in selected:
        case = cases[name]
        summaries[name] = {c.label: Summary.of(outcomes[(name, c.label)])
                           for c in case.contenders}
        print(f"\n## {name}: {case.description}; T = {case.steps:,}, delay {case.delay}\n")
        print(case_table(case, summaries[name]))
        if isinstance(case.problem, CONTEXTUAL_PROBLEMS):
            result = run(make_policy({"type": "static"}, case.problem.arms), case.problem,
                         case.steps, seed=0)
            arms = ", ".join(f"{m:.3f}" for m in result.arm_rewards)
            print(f"\nFor scale (seed 0): oracle mean reward {result.oracle_reward:.3f}; "
                  f"each fixed arm {arms}.")

    budgets = [b for b in BUDGETS if b.case in summaries]
    if budgets:
        print("\n## Budgets\n")
        print(_common.markdown_table(
            ["case", "ours", "reference", "budget", "measured ± SE", "verdict"],
            [b.check(summaries) for b in budgets]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
