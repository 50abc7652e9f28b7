"""Is the log itself trustworthy? Checks of the logged probabilities against what happened.

Every estimator divides by the logged μ, so a logger that records the wrong
probabilities (a stale snapshot, a forgotten renormalisation) biases every
estimate, silently. Two checks need nothing but the log, and hold for any
logger however adaptive, because each event's μ_i is the distribution it was
drawn from *given the past*:

- **calibration**, per (experiment, policy version, variant v): over the events
  offering v with μ_i(v) > 0, x_i = 1{a_i = v}/μ_i(v) has conditional mean 1 and
  conditional variance 1/μ_i(v) − 1. So Σ (x_i − 1) is a martingale whose
  variance Σ (1/μ_i(v) − 1) the log itself states, and the mean x̄ is compared
  with 1 using that variance. The terms are far from normal where it matters:
  right-skewed for an unlikely variant (rare choices worth 1/μ), and for a
  near-certain one almost constant (chosen every time, each worth 1/μ ≈ 1.01),
  where normal thresholds, even skew-corrected, fail honest logs. So the
  thresholds come from Freedman's inequality (Freedman 1975), valid for any
  martingale with bounded increments: P(S ≥ t) ≤ exp(−t²/(2(V + bt/3))) with V the
  stated variance and b the largest increment, 1/μ − 1 above and 1 below. An
  honest log fails a row with probability at most its level, whatever the μ and
  however few the events; the price is power: the thresholds are ≈ √(2 log(2/α))
  standard errors, against the normal z_{α/2} (3.2 against 2.5 at α = 0.0125).
  Rows expected to be chosen fewer than ``MIN_EXPECTED`` times are not tested.
- **sample ratio**, per (experiment, policy version): the counts O_v of each
  variant taken against E_v = Σ_i μ_i(v). Their difference has covariance
  Σ_i (diag(μ_i) − μ_i μ_iᵀ), known from the log, and (O − E)ᵀ Σ⁺ (O − E) is
  χ² with rank(Σ) degrees of freedom (the multivariate martingale CLT). With a
  constant μ it is Pearson's χ² exactly; with μ moving, as an adaptive
  logger's does, Pearson's denominator diag(E) − EEᵀ/n overstates the variance
  by Σ_i (μ_i − μ̄)(μ_i − μ̄)ᵀ and the test loses power, hence the exact form.
  Variants expected fewer than ``MIN_EXPECTED`` times are pooled into one cell,
  merged into the largest if it is still that small (Cochran 1954: far out in
  the tail the χ² approximation needs counts).

Both checks have a row per version and, for an experiment with several
versions, one over all of them (``policy_version`` None). Memory stays bounded
however many versions a long log holds: past ``MAX_VERSION_ROWS`` rows in an
experiment, neighbouring versions (in the order first seen) are merged pairwise into
one row labelled ``first..last`` (both checks hold on any set of events, so a merged
row is as valid as a version's own, and a version seen again after its row was
merged starts a new one). A logger's bug is
usually the same in every version, and the pool sees what each version's
handful of events cannot.

**Many rows, one verdict.** Hundreds of versions make hundreds of rows; at 5%
each, an honest log would always fail somewhere. Every tested row of both
checks is one family, held at the family-wise error 1 − ``confidence`` by
Bonferroni: a row fails when its p-value is below α/m (m tested rows). Holm's
step-down is never less powerful, but its verdict on the whole log, "some row
fails", is the same (both reject first at min p < α/m); only which rows are
flagged after the first differs, and Bonferroni's per-row level makes each
row's interval a simultaneous one that holds 1 exactly when the row is ok.
Power: at n events offering a variant with probability μ, its calibration row
catches a mean off 1 by δ once n·δ passes the Freedman threshold, about
√(2 log(2m/α)·(1/μ − 1)/n) for m tested rows: for μ = ⅓ and n = 10,000, δ ≈ 0.064
with 4 tested rows, 0.075 with 100. A logger writing 1.2·μ(v) renormalised (a mean
of 0.89 for v at μ = ⅓) fails every time at that size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._chi2 import chi2_survival
from .._errors import EvaluationError
from .._types import Arm
from ._chunks import FloatArray, IntArray, LogChunk
from ._estimate import _z_score
from ._json import finite_or_none

__all__ = [
    "MIN_EXPECTED",
    "AuditResult",
    "CalibrationRow",
    "LogAudit",
    "SampleRatioRow",
    "chi2_survival",
]

MAX_VERSION_ROWS = 256
"""Per experiment, the most version rows kept before neighbours are merged pairwise."""

MIN_EXPECTED = 10.0
"""The fewest expected choices a variant needs for its calibration row or its own
sample-ratio cell to be tested (it is still reported)."""

# A covariance eigenvalue this small next to the largest is the structural zero
# (Σ_v (O_v − E_v) = 0 always), not a direction to test.
_RANK_TOLERANCE = 1e-9

# How far from 1 a calibration mean may be when every μ is 1 (nothing random).
_EXACT_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class CalibrationRow:
    """The mean of 1{chosen = v}/μ(v) over ``n`` events offering ``variant``: 1 if honest.

    ``lower``/``upper`` hold the mean's simultaneous interval (Freedman's bounds
    with the null's variance, at the Bonferroni level): ``ok`` exactly when it holds 1.
    ``tested`` is False when the variant was expected to be chosen fewer than
    ``MIN_EXPECTED`` times: reported, never failed.
    """

    experiment: str | None
    policy_version: str | None
    variant: Arm
    n: int
    mean: float
    lower: float
    upper: float
    ok: bool
    tested: bool

    def to_json(self) -> dict[str, Any]:
        """The row as the replay's JSON writes it."""
        return {"experiment": self.experiment, "policy_version": self.policy_version,
                "variant": self.variant, "n": self.n, "mean": finite_or_none(self.mean),
                "lower": finite_or_none(self.lower), "upper": finite_or_none(self.upper),
                "ok": self.ok}


@dataclass(frozen=True, slots=True)
class SampleRatioRow:
    """Counts taken per variant against those the logged probabilities expect."""

    experiment: str | None
    policy_version: str | None
    chi2: float
    dof: int
    p_value: float
    ok: bool
    observed: dict[Arm, int]
    expected: dict[Arm, float]

    def to_json(self) -> dict[str, Any]:
        """The row as the replay's JSON writes it."""
        return {"experiment": self.experiment, "policy_version": self.policy_version,
                "chi2": finite_or_none(self.chi2), "dof": self.dof,
                "p_value": finite_or_none(self.p_value), "ok": self.ok,
                "observed": dict(self.observed), "expected": dict(self.expected)}


@dataclass(frozen=True, slots=True)
class AuditResult:
    """The smallest logged propensities, the calibration and the sample-ratio rows.

    ``row_level`` is the significance each tested row is held to, α/m, so that
    an honest log passes both checks with probability ≥ ``confidence``.
    """

    smallest_probabilities: tuple[float, ...]
    calibration: tuple[CalibrationRow, ...]
    sample_ratio: tuple[SampleRatioRow, ...]
    row_level: float

    @property
    def calibration_ok(self) -> bool:
        """No calibration row fails."""
        return all(row.ok for row in self.calibration)

    @property
    def sample_ratio_ok(self) -> bool:
        """No sample-ratio row fails."""
        return all(row.ok for row in self.sample_ratio)

    @property
    def ok(self) -> bool:
        """Both checks pass."""
        return self.calibration_ok and self.sample_ratio_ok

    def to_json(self) -> dict[str, Any]:
        """``smallest_probabilities``, ``calibration`` and ``sample_ratio`` of the audit JSON."""
        return {
            "smallest_probabilities": list(self.smallest_probabilities),
            "calibration": {"ok": self.calibration_ok,
                            "rows": [row.to_json() for row in self.calibration]},
            "sample_ratio": {"ok": self.sample_ratio_ok,
                             "rows": [row.to_json() for row in self.sample_ratio]},
        }


@dataclass(slots=True)
class _VersionSums:
    """One (experiment, version)'s sufficient statistics, one entry per variant."""

    arms: dict[Arm, int] = field(default_factory=dict)
    offered: FloatArray = field(default_factory=lambda: np.zeros(0))  # events with μ(v) > 0
    inverse: FloatArray = field(default_factory=lambda: np.zeros(0))  # Σ 1{a = v}/μ(v)
    variance: FloatArray = field(default_factory=lambda: np.zeros(0))  # Σ 1/μ(v) − 1
    largest: FloatArray = field(default_factory=lambda: np.zeros(0))  # max 1/μ(v) − 1
    observed: FloatArray = field(default_factory=lambda: np.zeros(0))  # Σ 1{a = v}
    expected: FloatArray = field(default_factory=lambda: np.zeros(0))  # Σ μ(v)
    outer: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))  # Σ μ μᵀ
    first: str | None = None  # the versions this row covers, first and last seen
    last: str | None = None

    @property
    def label(self) -> str | None:
        """The version, or ``first..last`` for merged versions."""
        return self.first if self.first == self.last else f"{self.first}..{self.last}"

    def columns(self, arms: Sequence[Arm]) -> IntArray:
        old = len(self.arms)
        for arm in arms:
            self.arms.setdefault(arm, len(self.arms))
        grow = len(self.arms) - old
        if grow:
            for name in ("offered", "inverse", "variance", "largest", "observed", "expected"):
                setattr(self, name, np.concatenate([getattr(self, name), np.zeros(grow)]))
            self.outer = np.pad(self.outer, ((0, grow), (0, grow)))
        return np.fromiter((self.arms[arm] for arm in arms), np.intp, len(arms))

    def add(self, columns: IntArray, logged: FloatArray, action: IntArray) -> None:
        rows = np.arange(action.size)
        positive = logged > 0.0
        inverse = np.divide(1.0, logged, out=np.zeros_like(logged), where=positive)
        chosen = np.zeros_like(logged)
        chosen[rows, action] = inverse[rows, action]
        np.add.at(self.offered, columns, positive.sum(axis=0))
        np.add.at(self.inverse, columns, chosen.sum(axis=0))
        np.add.at(self.variance, columns, (inverse - positive).sum(axis=0))
        np.maximum.at(self.largest, columns, (inverse - positive).max(axis=0))
        np.add.at(self.observed, columns, np.bincount(action, minlength=columns.size))
        np.add.at(self.expected, columns, logged.sum(axis=0))
        self.outer[np.ix_(columns, columns)] += logged.T @ logged

    def merge(self, other: _VersionSums) -> None:
        columns = self.columns(list(other.arms))
        for name in ("offered", "inverse", "variance", "observed", "expected"):
            np.add.at(getattr(self, name), columns, getattr(other, name))
        np.maximum.at(self.largest, columns, other.largest)
        self.outer[np.ix_(columns, columns)] += other.outer


class LogAudit:
    """Calibration and sample-ratio checks of the logged probabilities, chunk by chunk.

    Memory is O(K²) per (experiment, policy version); see the module docstring
    for the statistics and the multiple-testing control.
    """

    def __init__(self, *, confidence: float = 0.95, smallest: int = 5) -> None:
        _z_score(confidence)  # the same check and message as the estimators'
        if isinstance(smallest, bool) or not isinstance(smallest, int) or smallest < 0:
            raise EvaluationError(f"smallest must be a non-negative integer, got {smallest!r}")
        self._alpha = 1.0 - confidence
        self._smallest_count = smallest
        self._smallest = np.zeros(0)
        self._sums: dict[tuple[str | None, str | None], _VersionSums] = {}
        self._rows: dict[str | None, int] = {}
        self._events = 0

    def add(self, chunk: LogChunk) -> None:
        """Add a chunk's events to the sums."""
        rows = len(chunk)
        if rows == 0:
            return
        chosen = chunk.logged[np.arange(rows), chunk.action]
        bad = np.flatnonzero(~((chosen > 0.0) & (chosen <= 1.0)))
        if bad.size:
            i = int(bad[0])
            raise EvaluationError(f"event {self._events + i} took {chunk.arms[chunk.action[i]]!r}, "
                                  f"logged with probability {float(chosen[i])!r}: not in (0, 1]")
        self._events += rows
        kept = np.concatenate([self._smallest, chunk.propensity])
        if kept.size > self._smallest_count:
            kept = np.partition(kept, self._smallest_count)[: self._smallest_count]
        self._smallest = np.sort(kept)
        order = np.argsort(chunk.version, kind="stable")
        versions, starts = np.unique(chunk.version[order], return_index=True)
        ends = [*starts[1:].tolist(), rows]
        for version, start, end in zip(versions.tolist(), starts.tolist(), ends, strict=True):
            name = chunk.versions[version]
            key = (chunk.experiment, name)
            sums = self._sums.get(key)
            if sums is None:
                if self._rows.get(chunk.experiment, 0) >= MAX_VERSION_ROWS:
                    self._merge_neighbours(chunk.experiment)
                sums = self._sums[key] = _VersionSums(first=name, last=name)
                self._rows[chunk.experiment] = self._rows.get(chunk.experiment, 0) + 1
            part = order[start:end]
            sums.add(sums.columns(chunk.arms), chunk.logged[part], chunk.action[part])

    def result(self) -> AuditResult:
        """Every row, each judged at the Bonferroni level over all tested rows."""
        groups = self._with_pooled_versions()
        calibration = [(key, arm, column, sums)
                       for key, sums in groups.items()
                       for arm, column in sums.arms.items() if sums.offered[column] > 0]
        ratios = [(key, sums, _ratio_cells(sums)) for key, sums in groups.items()]
        tested = sum(_calibration_tested(sums, column) for _, _, column, sums in calibration)
        tested += sum(len(cells) > 0 for _, _, cells in ratios)
        level = self._alpha / tested if tested else self._alpha
        return AuditResult(
            tuple(self._smallest.tolist()),
            tuple(_calibration_row(key, arm, column, sums, level)
                  for key, arm, column, sums in calibration),
            tuple(_ratio_row(key, sums, cells, level) for key, sums, cells in ratios),
            level,
        )

    def _merge_neighbours(self, experiment: str | None) -> None:
        """Halve the experiment's rows: each pair of neighbours (first seen order) becomes one."""
        keys = [key for key in self._sums if key[0] == experiment]
        merged: dict[tuple[str | None, str | None], _VersionSums] = {}
        for index in range(0, len(keys), 2):
            sums = self._sums.pop(keys[index])
            if index + 1 < len(keys):
                other = self._sums.pop(keys[index + 1])
                sums.merge(other)
                sums.last = other.last
            merged[experiment, sums.label] = sums
        self._sums.update(merged)
        self._rows[experiment] = len(merged)

    def _with_pooled_versions(self) -> dict[tuple[str | None, str | None], _VersionSums]:
        """Each experiment with several versions gets a row over all of them first (version None).

        A logger's bug is usually the same in every version; a version's own rows
        may hold too few events to see it, their pool does. The sums add up.
        """
        experiments: dict[str | None, list[_VersionSums]] = {}
        for (experiment, _), sums in self._sums.items():
            experiments.setdefault(experiment, []).append(sums)
        groups: dict[tuple[str | None, str | None], _VersionSums] = {}
        for experiment, versions in experiments.items():
            if len(versions) > 1:
                pooled = groups[experiment, None] = _VersionSums()
                for sums in versions:
                    pooled.merge(sums)
            groups.update((key, sums) for key, sums in self._sums.items() if key[0] == experiment)
        return groups


def _calibration_tested(sums: _VersionSums, column: int) -> bool:
    return bool(sums.expected[column] >= MIN_EXPECTED and sums.variance[column] > 0.0)


def _calibration_row(
    key: tuple[str | None, str | None], arm: Arm, column: int, sums: _VersionSums, level: float
) -> CalibrationRow:
    """ok when S = Σ (x_i − 1) lies within Freedman's thresholds at ``level`` (two-sided).

    Each tail at level/2: P(S ≥ t) ≤ exp(−t²/(2(V + bt/3))) = level/2 solves to
    t = Lb/3 + √((Lb/3)² + 2LV) with L = log(2/level); b = max(1/μ − 1) above, 1 below.
    The interval is the mean's: [mean − t_above/n, mean + t_below/n].
    """
    n = int(sums.offered[column])
    mean = float(sums.inverse[column]) / n
    variance = float(sums.variance[column])
    tested = _calibration_tested(sums, column)
    if variance <= 0.0:  # μ = 1 on every event: x is 1, nothing is random
        return CalibrationRow(*key, arm, n, mean, mean, mean,
                              abs(mean - 1.0) <= _EXACT_TOLERANCE, tested)
    log_term = math.log(2.0 / level)
    above = _freedman_threshold(variance, float(sums.largest[column]), log_term)
    below = _freedman_threshold(variance, 1.0, log_term)
    lower, upper = mean - above / n, mean + below / n
    ok = (not tested) or lower <= 1.0 <= upper
    return CalibrationRow(*key, arm, n, mean, lower, upper, ok, tested)


def _freedman_threshold(variance: float, bound: float, log_term: float) -> float:
    """The t with exp(−t²/(2(V + bt/3))) = exp(−log_term)."""
    linear = log_term * bound / 3.0
    return linear + math.sqrt(linear * linear + 2.0 * log_term * variance)


def _ratio_cells(sums: _VersionSums) -> list[list[int]]:
    """The variants tested as cells: each expected ≥ MIN_EXPECTED times, the rest pooled."""
    expected = sums.expected
    cells = [[column] for column in range(expected.size) if expected[column] >= MIN_EXPECTED]
    small = [column for column in range(expected.size) if 0.0 < expected[column] < MIN_EXPECTED]
    if small and float(expected[small].sum()) >= MIN_EXPECTED:
        cells.append(small)
    elif small and cells:
        # Counts sum to n, so a cell left out would be tested through the others:
        # it joins the largest instead (Cochran's merging of sparse cells).
        max(cells, key=lambda cell: float(expected[cell].sum())).extend(small)
    return cells if len(cells) > 1 else []


def _ratio_row(
    key: tuple[str | None, str | None], sums: _VersionSums, cells: list[list[int]], level: float
) -> SampleRatioRow:
    """(O − E)ᵀ Σ⁺ (O − E) over the cells, Σ = Σ_i diag(μ_i) − μ_i μ_iᵀ summed into cells."""
    arms = list(sums.arms)
    observed = {arm: int(sums.observed[column]) for arm, column in sums.arms.items()}
    expected = {arm: float(sums.expected[column]) for arm, column in sums.arms.items()}
    if not cells:
        return SampleRatioRow(*key, 0.0, 0, 1.0, True, observed, expected)
    pool = np.zeros((len(cells), len(arms)))
    for cell, columns in enumerate(cells):
        pool[cell, columns] = 1.0
    difference = pool @ (sums.observed - sums.expected)
    covariance = pool @ (np.diag(sums.expected) - sums.outer) @ pool.T
    values, vectors = np.linalg.eigh(covariance)
    keep = values > _RANK_TOLERANCE * max(float(values.max()), 0.0)
    projected = vectors[:, keep].T @ difference
    chi2 = float(projected @ (projected / values[keep]))
    dof = int(keep.sum())
    p_value = chi2_survival(chi2, dof)
    return SampleRatioRow(*key, chi2, dof, p_value, p_value >= level, observed, expected)
