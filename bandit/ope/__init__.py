"""Off-policy evaluation: what a candidate policy would have earned on logged decisions.

- ``estimate``: IPS, SNIPS, DM and DR, each with an interval, over logged decisions;
- ``LogChunk``: logged decisions as arrays, the unit the archive reader yields;
- ``Evaluation``: the same estimators over chunks, in flat memory, with each one's
  paired difference from the logging policy and the candidate's support;
- ``LogAudit``: are the logged probabilities the ones the decisions were drawn from?
"""

from ._audit import AuditResult, CalibrationRow, LogAudit, SampleRatioRow
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
from ._json import interval_json
from ._streaming import BASELINE, Evaluation, EvaluationResult

__all__ = [
    "BASELINE",
    "ESTIMATORS",
    "REWARD_MODELS",
    "AuditResult",
    "CalibrationRow",
    "Estimate",
    "Evaluation",
    "EvaluationError",
    "EvaluationResult",
    "LogAudit",
    "LogChunk",
    "LoggedDecision",
    "RewardFunction",
    "SampleRatioRow",
    "Target",
    "TargetFunction",
    "TargetPolicy",
    "estimate",
    "interval_json",
]
