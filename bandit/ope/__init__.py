"""Off-policy evaluation: what a candidate policy would have earned on logged decisions.

- ``estimate``: IPS, SNIPS, DM and DR, each with an interval, over logged decisions;
- ``LogChunk``: logged decisions as arrays, the unit the archive reader yields;
- ``read_archive``: the decision archive (files, directories, globs, S3) as ``LogChunk``s.
"""

from ._archive import Archive, ArchiveError, BadLine, ReadStats, read_archive
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
    "Archive",
    "ArchiveError",
    "BadLine",
    "Estimate",
    "EvaluationError",
    "LogChunk",
    "LoggedDecision",
    "ReadStats",
    "RewardFunction",
    "Target",
    "TargetFunction",
    "TargetPolicy",
    "estimate",
    "read_archive",
]
