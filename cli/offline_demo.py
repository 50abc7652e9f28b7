"""The demo: several policies learning side by side on simulated problems.

Each (problem, policy) pair is a lane: a ``bandit.sim.Simulation`` seeded
alike, so every policy on a problem sees the same contexts and reward draws
(common random numbers) and the differences are the policies'. ``Demo.advance``
moves every lane the same number of steps in turn, so the lanes stay level and
a view can show them learning together. The terminal view is ``demo_view``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bandit import PolicySpec, make_policy, policy_types
from bandit.sim import BernoulliProblem, ContextualProblem, Problem, Simulation

# Label → spec, in display order. static is the A/B baseline (an equal split
# that never learns); online_cover and vw_squarecb are VW's contextual
# explorers (shown when the installed bandit registers them). Both appear
# because they differ visibly: on the context-free problem online cover's
# learners keep splitting traffic between arms (VW run directly does the same),
# while SquareCB converges on both problems.
DEMO_POLICIES: dict[str, PolicySpec] = {
    "static": {"type": "static"},
    "epsilon_greedy": {"type": "epsilon_greedy", "epsilon": 0.1},
    "thompson": {"type": "thompson"},
    "ucb1": {"type": "ucb1"},
    "online_cover": {"type": "online_cover"},
    "vw_squarecb": {"type": "vw", "flags": "--squarecb"},
}

# Four variants converting at 45–60 %: close enough that an A/B test needs
# thousands of requests to tell them apart, far enough for a bandit to find
# Variant3 within the demo's default 20k steps.
BERNOULLI_MEANS = (0.50, 0.55, 0.60, 0.45)


def available_policies() -> tuple[str, ...]:
    """The demo's policy labels whose type this installation registers."""
    registered = set(policy_types())
    return tuple(name for name, spec in DEMO_POLICIES.items() if spec["type"] in registered)


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named problem with a one-line description."""

    name: str
    title: str
    problem: Problem


def scenarios(seed: int) -> dict[str, Scenario]:
    """The demo's problems by name: ``bernoulli`` and ``contextual``."""
    arms = [f"Variant{i + 1}" for i in range(len(BERNOULLI_MEANS))]
    rates = ", ".join(f"{m:.0%}" for m in BERNOULLI_MEANS)
    return {
        "bernoulli": Scenario(
            "bernoulli", f"Bernoulli: 4 variants converting at {rates}",
            BernoulliProblem(BERNOULLI_MEANS, arms=arms),
        ),
        "contextual": Scenario(
            "contextual", "Contextual: 4 arms, 20 features; each arm best for its own contexts",
            ContextualProblem(n_arms=4, n_features=20, seed=seed),
        ),
    }


@dataclass(frozen=True, slots=True)
class Lane:
    """One policy learning on one scenario."""

    scenario: Scenario
    policy: str
    simulation: Simulation


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """A lane's outcome: ``best_share`` over the last ``window`` steps, the rest overall."""

    scenario: str
    policy: str
    steps: int
    best_share: float
    mean_reward: float
    regret: float


class Demo:
    """Every chosen policy on every chosen scenario, advanced together.

    Raises ``ValueError`` for an unknown scenario or policy, or bad step counts.
    """

    def __init__(
        self,
        *,
        steps: int,
        seed: int = 0,
        batch: int = 10,
        delay: int = 0,
        window: int = 1000,
        policies: Sequence[str] | None = None,
        problems: Sequence[str] = ("bernoulli", "contextual"),
    ) -> None:
        available = available_policies()
        chosen = list(available if policies is None else policies)
        unknown = [p for p in chosen if p not in available]
        if unknown or not chosen:
            raise ValueError(f"unknown policy {', '.join(unknown) or '(none given)'} "
                             f"(available: {', '.join(available)})")
        every = scenarios(seed)
        bad = [p for p in problems if p not in every]
        if bad or not problems:
            raise ValueError(f"unknown problem {', '.join(bad) or '(none given)'} "
                             f"(available: {', '.join(every)})")
        self.steps = steps
        self.window = window
        self.scenarios = [every[name] for name in dict.fromkeys(problems)]
        self.lanes = [
            Lane(scenario, label, Simulation(
                make_policy(DEMO_POLICIES[label], scenario.problem.arms, seed=seed),
                scenario.problem, steps, seed=seed, delay=delay, batch=batch, window=window,
            ))
            for scenario in self.scenarios
            for label in dict.fromkeys(chosen)
        ]

    @property
    def done(self) -> int:
        """Steps every lane has completed (they advance level)."""
        return min(lane.simulation.done for lane in self.lanes)

    @property
    def finished(self) -> bool:
        return self.done == self.steps

    def advance(self, steps: int) -> None:
        """Move every lane ``steps`` further (fewer at the end)."""
        for lane in self.lanes:
            lane.simulation.advance(steps)

    def summary(self) -> list[SummaryRow]:
        """One row per lane that has run at least one step."""
        rows = []
        for lane in self.lanes:
            if lane.simulation.done == 0:
                continue
            result = lane.simulation.result()
            rows.append(SummaryRow(
                scenario=lane.scenario.name, policy=lane.policy, steps=result.steps,
                best_share=result.best_share(self.window), mean_reward=result.mean_reward,
                regret=result.total_regret,
            ))
        return rows
