"""Off-policy evaluation: what a candidate policy would have earned on logged decisions.

- ``read_archive``: the decision archive (files, directories, globs, S3) as ``LogChunk``s;
- ``build_index``: an archive file's index (``<file>.index``), which ``read_archive``
  reads instead of parsing the file;
- ``replay``: candidate policies scored on those chunks in one pass (progressively,
  for learning ones), each against the logging policy, beside the log's audit;
- ``estimate``: IPS, SNIPS, DM and DR, each with an interval, over logged decisions
  (a list of ``LoggedDecision`` or chunks);
- ``Evaluation``: the same estimators over chunks, in flat memory, with each one's
  paired difference from the logging policy and the candidate's support;
- ``LogAudit``: are the logged probabilities the ones the decisions were drawn from?
- ``LogChunk``: logged decisions as arrays, the unit all of these exchange.
"""

from ._archive import Archive, ArchiveError, BadLine, ReadStats, read_archive
from ._audit import AuditResult, CalibrationRow, LogAudit, SampleRatioRow
from ._candidates import Candidate, CandidateError
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
from ._index import INDEX_SUFFIX, InvalidIndexError, build_index, load_index
from ._json import interval_json
from ._replay import ReplayResult, replay
from ._series import LogSeries
from ._streaming import BASELINE, Evaluation, EvaluationResult

__all__ = [
    "BASELINE",
    "ESTIMATORS",
    "INDEX_SUFFIX",
    "REWARD_MODELS",
    "Archive",
    "ArchiveError",
    "AuditResult",
    "BadLine",
    "CalibrationRow",
    "Candidate",
    "CandidateError",
    "Estimate",
    "Evaluation",
    "EvaluationError",
    "EvaluationResult",
    "InvalidIndexError",
    "LogAudit",
    "LogChunk",
    "LogSeries",
    "LoggedDecision",
    "ReadStats",
    "ReplayResult",
    "RewardFunction",
    "SampleRatioRow",
    "Target",
    "TargetFunction",
    "TargetPolicy",
    "build_index",
    "estimate",
    "interval_json",
    "load_index",
    "read_archive",
    "replay",
]
