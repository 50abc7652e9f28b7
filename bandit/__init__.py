"""The bandit core: policies, sampling, snapshots, off-policy estimators, simulation.

No I/O: the router and the reward ingester call this package; it calls neither.

    from bandit import make_policy, load_policy, Feedback
    policy = make_policy({"type": "thompson"}, arms=["A", "B"], seed=7)
    probs = policy.probabilities(context=None, eligible=None)
"""

from . import _epsilon_greedy, _squarecb, _static, _thompson, _ucb1, _vw  # noqa: F401  (register types)
from ._epsilon_greedy import EpsilonGreedyPolicy
from ._errors import (
    ArmError,
    BanditError,
    ContextError,
    EvaluationError,
    FeedbackError,
    SnapshotError,
    SpecError,
)
from ._policy import Policy
from ._registry import load_policy, make_policy, policy_types
from ._sampling import sample, unit_uniform
from ._squarecb import SquareCBPolicy
from ._static import StaticPolicy
from ._thompson import ThompsonPolicy
from ._types import Arm, Context, Eligible, Feedback, PolicySpec, Probabilities
from ._ucb1 import UCB1Policy
from ._vw import OnlineCoverPolicy, VWFlagsPolicy, VWPolicy

__all__ = [
    "Arm",
    "ArmError",
    "BanditError",
    "Context",
    "ContextError",
    "Eligible",
    "EpsilonGreedyPolicy",
    "EvaluationError",
    "Feedback",
    "FeedbackError",
    "OnlineCoverPolicy",
    "Policy",
    "PolicySpec",
    "Probabilities",
    "SnapshotError",
    "SpecError",
    "SquareCBPolicy",
    "StaticPolicy",
    "ThompsonPolicy",
    "UCB1Policy",
    "VWFlagsPolicy",
    "VWPolicy",
    "load_policy",
    "make_policy",
    "policy_types",
    "sample",
    "unit_uniform",
]
