"""Off-policy evaluation: what a candidate policy would have earned on logged decisions.

- ``estimate``: IPS, SNIPS, DM and DR, each with an interval, over logged decisions;
- ``LogChunk``: logged decisions as arrays, the unit the archive reader yields.
"""

from ._chunks import LogChunk
from ._estimate import (
    ESTIMATORS,
    REWARD_MODELS,
    Estimate,
    EvaluationError,
    LoggedDecision,
    RewardFunction,
    Target,
    TargetFunction,
    TargetPolicy,
    estimate,
)

__all__ = [
    "ESTIMATORS",
    "REWARD_MODELS",
    "Estimate",
    "EvaluationError",
    "LogChunk",
    "LoggedDecision",
    "RewardFunction",
    "Target",
    "TargetFunction",
    "TargetPolicy",
    "estimate",
]
