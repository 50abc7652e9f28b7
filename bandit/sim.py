"""Simulated bandit problems and a loop that runs a policy against one.

Used by the tests, the demo and the benchmarks; pure (no I/O, no clock).

    from bandit import make_policy
    from bandit.sim import BernoulliProblem, run
    problem = BernoulliProblem([0.2, 0.8], switches=[(1000, [0.8, 0.2])])
    result = run(make_policy({"type": "thompson"}, problem.arms), problem, 2000, seed=1)
    result.shares(window=500)        # traffic share per arm over the last 500 steps
    result.total_regret              # sum of max(means) - means[chosen], step by step

``run`` drives a ``Simulation`` to the end; a display that shows several
policies learning side by side advances their simulations in turns instead.
"""

from ._problems import (
    BernoulliProblem,
    CategoricalProblem,
    ContextualProblem,
    DriftingProblem,
    Problem,
)
from ._simulation import Progress, RunResult, Simulation, run

__all__ = [
    "BernoulliProblem",
    "CategoricalProblem",
    "ContextualProblem",
    "DriftingProblem",
    "Problem",
    "Progress",
    "RunResult",
    "Simulation",
    "run",
]
