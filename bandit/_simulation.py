"""Running a policy against a simulated problem: ``Simulation``, ``run`` and their results.

A simulation draws from three independent streams spawned from its seed
(contexts, the uniform each choice is sampled with, rewards), so two policies
run with the same seed see the same contexts and, arm for arm, the same reward
draws: their difference is the policies' (common random numbers).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._policy import FloatArray, Policy
from ._problems import Problem
from ._sampling import sample
from ._types import Arm, Feedback

IntArray = npt.NDArray[np.intp]

DEFAULT_WINDOW = 1000


@dataclass(frozen=True, slots=True, eq=False)
class RunResult:
    """What happened at every step of a run, in the problem's arm order.

    ``means[t]`` is every arm's expected reward at step t, ``chosen[t]`` the arm
    index played, ``probabilities[t]`` the policy's probabilities it was sampled
    from, ``rewards[t]`` the reward drawn, and ``regret[t] = max(means[t]) −
    means[t, chosen[t]]`` the expected (pseudo-)regret.
    """

    arms: tuple[Arm, ...]
    rewards: FloatArray
    regret: FloatArray
    chosen: IntArray
    probabilities: FloatArray
    means: FloatArray

    @property
    def steps(self) -> int:
        return int(self.chosen.size)

    @property
    def mean_reward(self) -> float:
        """Mean drawn reward per step."""
        return float(self.rewards.mean())

    @property
    def total_regret(self) -> float:
        """Sum of the per-step expected regret."""
        return float(self.regret.sum())

    @property
    def best(self) -> IntArray:
        """Index of the best arm at each step (the first one on ties)."""
        return np.asarray(self.means.argmax(axis=1), dtype=np.intp)

    @property
    def oracle_reward(self) -> float:
        """Mean expected reward of always playing each step's best arm."""
        return float(self.means.max(axis=1).mean())

    @property
    def arm_rewards(self) -> FloatArray:
        """Mean expected reward of always playing each arm (the fixed-arm baselines)."""
        return np.asarray(self.means.mean(axis=0), dtype=np.float64)

    def shares(self, window: int | None = None) -> FloatArray:
        """Traffic share per arm over the last ``window`` steps (all steps when None)."""
        recent = self.chosen[_window_slice(self.steps, window)]
        return np.bincount(recent, minlength=len(self.arms)) / recent.size

    def best_share(self, window: int | None = None) -> float:
        """Fraction of the last ``window`` steps that played that step's best arm."""
        last = _window_slice(self.steps, window)
        return float((self.chosen[last] == self.best[last]).mean())


@dataclass(frozen=True, slots=True, eq=False)
class Progress:
    """A view of a run in progress, for live displays.

    ``step`` steps of ``steps`` are done. ``shares``, ``recent_reward`` and
    ``best_share`` cover the last ``window`` steps (fewer at the start);
    ``probabilities`` are the policy's at the latest step; ``mean_reward`` and
    ``regret`` (cumulative expected regret) cover every step so far.
    """

    step: int
    steps: int
    arms: tuple[Arm, ...]
    shares: FloatArray
    probabilities: FloatArray
    mean_reward: float
    recent_reward: float
    regret: float
    best_share: float
    window: int


class Simulation:
    """A run that advances on demand; ``run`` drives one to the end in a single call.

    The feedback of step t comes due at the end of step ``t + delay`` (so the
    decision at step s has learned from steps ≤ s − 1 − delay at most); due
    feedback is applied with ``policy.update`` in batches of exactly ``batch``,
    in order. Feedback still in flight or short of a batch when the run ends is
    not applied. Stepping in chunks or all at once gives the same result.
    """

    def __init__(
        self,
        policy: Policy,
        problem: Problem,
        steps: int,
        *,
        seed: int = 0,
        delay: int = 0,
        batch: int = 1,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        for name, value, low in (("steps", steps, 1), ("delay", delay, 0), ("batch", batch, 1),
                                 ("window", window, 1)):
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        self.arms = problem.arms
        if sorted(policy.arms) != sorted(self.arms):
            raise ValueError(f"policy arms {policy.arms} differ from problem arms {self.arms}")
        self.policy = policy
        self.problem = problem
        self.steps = steps
        self.delay = delay
        self.batch = batch
        self.window = window
        self.done = 0
        self._index = {arm: i for i, arm in enumerate(self.arms)}
        self._context_rng, choice_rng, self._reward_rng = (
            np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(3)
        )
        self._uniforms = choice_rng.random(steps)
        k = len(self.arms)
        self._rewards = np.zeros(steps)
        self._chosen = np.zeros(steps, dtype=np.intp)
        self._probabilities = np.zeros((steps, k))
        self._means = np.zeros((steps, k))
        self._regret = np.zeros(steps)
        self._in_flight: deque[Feedback] = deque()
        self._ready: list[Feedback] = []

    @property
    def finished(self) -> bool:
        return self.done == self.steps

    def advance(self, n: int) -> int:
        """Run up to ``n`` more steps (fewer at the end); return how many ran."""
        stop = min(self.steps, self.done + max(0, n))
        policy, problem, arms, index = self.policy, self.problem, self.arms, self._index
        for t in range(self.done, stop):
            context = problem.context(t, self._context_rng)
            probs = policy.probabilities(context)
            arm = sample(probs, float(self._uniforms[t]))
            i = index[arm]
            means = problem.means(t, context)
            reward = problem.reward(t, context, i, self._reward_rng)
            self._means[t] = means
            self._rewards[t] = reward
            self._chosen[t] = i
            self._probabilities[t] = [probs[a] for a in arms]
            self._regret[t] = means.max() - means[i]
            self._in_flight.append(
                Feedback(arm=arm, reward=reward, probability=probs[arm], context=context)
            )
            if len(self._in_flight) > self.delay:
                self._ready.append(self._in_flight.popleft())
                if len(self._ready) == self.batch:
                    policy.update(self._ready)
                    self._ready = []
        ran = stop - self.done
        self.done = stop
        return ran

    def result(self) -> RunResult:
        """The steps run so far (views of the simulation's buffers, which later steps
        do not touch)."""
        done = slice(0, self.done)
        return RunResult(arms=self.arms, rewards=self._rewards[done],
                         regret=self._regret[done], chosen=self._chosen[done],
                         probabilities=self._probabilities[done], means=self._means[done])

    def progress(self) -> Progress:
        """Where the run stands; needs at least one step done."""
        if self.done == 0:
            raise ValueError("no step has run yet")
        result = self.result()
        recent = slice(max(0, self.done - self.window), self.done)
        return Progress(
            step=self.done, steps=self.steps, arms=self.arms,
            shares=result.shares(self.window),
            probabilities=result.probabilities[-1].copy(),
            mean_reward=result.mean_reward,
            recent_reward=float(result.rewards[recent].mean()),
            regret=result.total_regret,
            best_share=result.best_share(self.window),
            window=self.window,
        )


def run(
    policy: Policy,
    problem: Problem,
    steps: int,
    *,
    seed: int = 0,
    delay: int = 0,
    batch: int = 1,
    on_progress: Callable[[Progress], None] | None = None,
    progress_every: int = 1000,
    window: int = DEFAULT_WINDOW,
) -> RunResult:
    """Run ``policy`` on ``problem`` for ``steps`` decisions; same seed, same result.

    Each step: context → ``policy.probabilities`` → ``sample`` with a seeded
    uniform → reward → feedback, delivered as ``Simulation`` describes.
    ``on_progress`` receives a ``Progress`` every ``progress_every`` steps and
    after the last one; its windowed figures cover the last ``window`` steps.
    """
    if progress_every < 1:
        raise ValueError(f"progress_every must be >= 1, got {progress_every}")
    simulation = Simulation(policy, problem, steps, seed=seed, delay=delay, batch=batch,
                            window=window)
    while not simulation.finished:
        simulation.advance(progress_every)
        if on_progress is not None:
            on_progress(simulation.progress())
    return simulation.result()


def _window_slice(steps: int, window: int | None) -> slice:
    if window is None:
        return slice(0, steps)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    return slice(max(0, steps - window), steps)
