"""``replay``: candidate policies scored on logged decisions in one pass, beside the log's audit.

One pass over the chunks feeds, for each chunk: the log audit (is the log itself
trustworthy?), the report's series, and per candidate its probabilities on each
event (progressively, for learning candidates) into a streaming evaluation that
pairs it with the logging policy's on-policy mean. Memory stays flat: nothing
outlives a chunk but sums, counts and the candidates' own state.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._policy import Policy
from .._types import PolicySpec
from ._archive import ReadStats
from ._audit import AuditResult, LogAudit
from ._candidates import Candidate
from ._chunks import LogChunk
from ._estimate import ESTIMATORS, Estimate, EvaluationError
from ._json import interval_json
from ._series import LogSeries
from ._streaming import Evaluation, EvaluationResult

# A candidate whose weights leave fewer effective events than this fraction of the
# log (or than LOW_ESS_EVENTS) is flagged: a few events then carry its estimate.
LOW_ESS_FRACTION = 0.01
LOW_ESS_EVENTS = 100


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What ``replay`` found: per candidate its estimates, the baseline, the audit, the series."""

    experiment: str | None
    events: int
    candidates: dict[str, EvaluationResult]
    specs: dict[str, PolicySpec | None]
    audit: AuditResult
    series: dict[str, Any]

    @property
    def baseline(self) -> Estimate:
        """The logging policy's own mean reward per decision (on-policy)."""
        return next(iter(self.candidates.values())).baseline

    def low_ess(self, name: str) -> bool:
        """Whether a few events carry ``name``'s weighted estimates."""
        result = self.candidates[name]
        ess = min((estimate.ess for estimate in result.estimates.values()), default=math.inf)
        return ess < max(LOW_ESS_EVENTS, LOW_ESS_FRACTION * self.events)

    def to_json(self, stats: ReadStats | None = None,
                paths: Sequence[str] = ()) -> dict[str, Any]:
        """The result as the replay command's ``--json`` object (NaN and inf as null).

        ``stats``: the reader's counters (exclusions, bad lines, default rewards) and
        ``paths``: what was read, for the audit's and the archive's keys.
        """
        candidates: dict[str, Any] = {}
        warnings: list[str] = []
        for name, result in self.candidates.items():
            entry: dict[str, Any] = {"spec": self.specs.get(name), **result.to_json(),
                                     "low_ess": self.low_ess(name)}
            candidates[name] = entry
            if result.biased:
                warnings.append(f"candidate {name!r} puts probability where the logging policy "
                                f"gave none ({result.unsupported_events:,} events): biased")
            if entry["low_ess"]:
                warnings.append(f"candidate {name!r} has a low effective sample size: its "
                                "estimates rest on few events")
        audit = self.audit.to_json()
        if stats is not None:
            audit = {"excluded": dict(stats.excluded),
                     "bad_lines": {"count": stats.bad_lines,
                                   "examples": [{"path": bad.path, "line": bad.line,
                                                 "message": bad.message}
                                                for bad in stats.bad_examples]},
                     "default_rewards": {"count": stats.default_rewards,
                                         "kept": not stats.excluded.get("default_reward")},
                     **audit}
        audit["warnings"] = [*audit.get("warnings", []), *warnings]
        document: dict[str, Any] = {"experiment": self.experiment}
        if stats is not None:
            document["archive"] = {"paths": list(paths), "files": stats.files,
                                   "indexed_files": stats.indexed_files,
                                   "lines": stats.lines, "events": stats.events}
        document["baseline"] = {"name": "logging policy", **interval_json(self.baseline)}
        document["candidates"] = candidates
        document["audit"] = audit
        document["series"] = self.series
        return document


def replay(
    events: Iterable[LogChunk],
    candidates: Mapping[str, PolicySpec | Policy | Candidate],
    *,
    estimators: Sequence[str] = ESTIMATORS,
    clip: float | None = None,
    confidence: float = 0.95,
    seed: int = 0,
    on_chunk: Callable[[LogChunk], None] | None = None,
) -> ReplayResult:
    """Score every candidate on ``events`` (chunks in log order) in one pass.

    Non-learning candidates are scored by their probabilities per event; learning
    ones by progressive replay (each event scored before the candidate learns it:
    see ``Candidate``). Each candidate gets IPS, SNIPS, DM and DR (or ``estimators``)
    and its paired difference from the logging policy's on-policy mean.
    """
    if not candidates:
        raise EvaluationError("no candidates: name at least one policy to evaluate")
    players = [spec if isinstance(spec, Candidate) else Candidate(name, spec, seed=seed)
               for name, spec in candidates.items()]
    evaluations = {player.name: Evaluation(estimators=estimators, clip=clip,
                                           confidence=confidence) for player in players}
    audit = LogAudit(confidence=confidence)
    series = LogSeries()
    experiment: str | None = None
    events_seen = 0
    for chunk in events:
        if not len(chunk):
            continue
        experiment = chunk.experiment
        events_seen += len(chunk)
        audit.add(chunk)
        series.add(chunk)
        for player in players:
            evaluations[player.name].add(chunk, player.probabilities(chunk))
        if on_chunk is not None:
            on_chunk(chunk)
    if not events_seen:
        raise EvaluationError("no logged decisions to evaluate (after the filters)")
    specs: dict[str, PolicySpec | None] = {
        name: None if isinstance(spec, Policy | Candidate) else dict(spec)
        for name, spec in candidates.items()}
    return ReplayResult(experiment=experiment, events=events_seen,
                        candidates={name: ev.result() for name, ev in evaluations.items()},
                        specs=specs, audit=audit.result(), series=series.result())

