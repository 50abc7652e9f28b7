"""What the terminal view and the HTML report of a replay result both say, in the same words.

The result is the replay command's JSON object (numbers may be ``null`` where a value
is NaN or infinite; a result built in Python may hold NaN itself). These helpers read
it defensively, because a report must render whatever the evaluation produced: a
missing or non-finite number becomes "—", never an exception.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

ESTIMATOR_ORDER = ("IPS", "SNIPS", "DM", "DR")

ESTIMATOR_NAMES = {
    "IPS": "inverse propensity scoring",
    "SNIPS": "self-normalised IPS",
    "DM": "direct method (reward model)",
    "DR": "doubly robust",
}

# Why events were left out of the evaluation, per ``audit.excluded`` key.
EXCLUSION_REASONS = {
    "duplicate": "duplicates (an event archived twice)",
    "targeted": "targeted (the caller chose the variant)",
    "other_experiment": "other experiments",
    "before_since": "before --since",
    "after_until": "after --until",
    "default_reward": "default reward, dropped (--drop-default-rewards)",
}

MISSING = "—"

_LOW_ESS = re.compile(r"\bESS\b|effective sample size", re.IGNORECASE)

Verdict = Literal["better", "worse", "unclear", "unknown"]


def finite(value: object) -> float | None:
    """``value`` as a float when it is a finite number, else None (null, NaN, ±inf, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def whole(value: object) -> int | None:
    """``value`` as an int when it is a finite whole number, else None."""
    number = finite(value)
    return int(number) if number is not None and number == int(number) else None


def mapping(value: object) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one (a missing section renders empty)."""
    return value if isinstance(value, Mapping) else {}


def sequence(value: object) -> Sequence[Any]:
    """``value`` when it is a list or tuple, else an empty one."""
    return value if isinstance(value, list | tuple) else ()


@dataclass(frozen=True, slots=True)
class Interval:
    """One interval object of the result: a point, its 95% interval and diagnostics."""

    value: float | None
    lower: float | None
    upper: float | None
    std_error: float | None
    ess: float | None
    n: int | None

    @classmethod
    def read(cls, obj: object) -> Interval:
        fields = mapping(obj)
        return cls(finite(fields.get("value")), finite(fields.get("lower")),
                   finite(fields.get("upper")), finite(fields.get("std_error")),
                   finite(fields.get("ess")), whole(fields.get("n")))

    @property
    def verdict(self) -> Verdict:
        """For a difference from the baseline: which side of 0 its interval lies on."""
        if self.lower is None or self.upper is None:
            return "unknown"
        if self.lower > 0.0:
            return "better"
        if self.upper < 0.0:
            return "worse"
        return "unclear"


def estimators(candidate: Mapping[str, Any]) -> list[str]:
    """The candidate's estimator keys: the known ones in their usual order, then any other."""
    known = [name for name in ESTIMATOR_ORDER if isinstance(candidate.get(name), Mapping)]
    others = [name for name, value in candidate.items()
              if name not in known and name.isupper() and isinstance(value, Mapping)]
    return known + others


def decimals(result: Mapping[str, Any]) -> int:
    """Decimals that show the smallest standard error (of a value or a difference from the
    baseline) to two significant digits, between 2 and 6: one precision for the whole result,
    so that figures line up and compare."""
    errors = [Interval.read(result.get("baseline")).std_error]
    for candidate in mapping(result.get("candidates")).values():
        fields = mapping(candidate)
        paired = mapping(fields.get("vs_baseline"))
        for name in estimators(fields):
            errors += [Interval.read(fields.get(name)).std_error,
                       Interval.read(paired.get(name)).std_error]
    positive = [error for error in errors if error is not None and error > 0.0]
    if not positive:
        return 3
    return min(6, max(2, 1 - math.floor(math.log10(min(positive)))))


def number(value: float | None, places: int, *, signed: bool = False) -> str:
    """A fixed-point number, "—" when missing; ``signed`` writes "+" before positives."""
    if value is None:
        return MISSING
    text = f"{value:+.{places}f}" if signed else f"{value:.{places}f}"
    return text.replace("-", "−")


def interval(lower: float | None, upper: float | None, places: int, *,
             signed: bool = False) -> str:
    """``[lower, upper]``, or "—" when either end is missing (an unbounded interval)."""
    if lower is None or upper is None:
        return MISSING
    return f"[{number(lower, places, signed=signed)}, {number(upper, places, signed=signed)}]"


def count(value: int | float | None) -> str:
    """A count with thousands separators; ESS-like fractional counts to one decimal below 100."""
    if value is None:
        return MISSING
    if isinstance(value, int) or value >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def probability(value: float | None) -> str:
    """A probability with three significant digits (small ones are the interesting ones)."""
    return MISSING if value is None else f"{value:.3g}"


def utc(timestamp: float) -> str:
    """Unix seconds as ``2024-05-01 12:00:00`` (UTC)."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def time_range(result: Mapping[str, Any]) -> tuple[float, float] | None:
    """First and last timestamps of the kept events (from the series), if known."""
    times = [t for t in (finite(value) for value in sequence(
        mapping(mapping(result.get("series")).get("cumulative")).get("timestamp")))
        if t is not None]
    return (min(times), max(times)) if times else None


def exclusions(result: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(reason, count) for every exclusion that removed events, known reasons first."""
    excluded = mapping(mapping(result.get("audit")).get("excluded"))
    keys = [key for key in EXCLUSION_REASONS if key in excluded]
    keys += [key for key in excluded if key not in EXCLUSION_REASONS]
    rows = [(EXCLUSION_REASONS.get(key, key.replace("_", " ")), whole(excluded[key]) or 0)
            for key in keys]
    return [(reason, n) for reason, n in rows if n > 0]


def warnings(result: Mapping[str, Any]) -> list[str]:
    """The audit's warnings, plus one per flagged candidate that none of them names.

    A candidate is flagged when its estimate is biased (it puts probability where the
    logging policy gave none) or its effective sample size is low; the evaluation usually
    says so in ``audit.warnings`` already, and then that wording is kept.
    """
    given = [str(text) for text in sequence(mapping(result.get("audit")).get("warnings"))]
    found = list(given)
    for name, candidate in mapping(result.get("candidates")).items():
        fields = mapping(candidate)
        named = [text for text in given if f"'{name}'" in text or f'"{name}"' in text]
        support = mapping(fields.get("support"))
        if support.get("biased") is True and not any("bias" in text for text in named):
            mass = finite(support.get("unsupported_mass"))
            share = f" ({mass:.1%} of its probability mass)" if mass is not None else ""
            found.append(f"candidate '{name}' puts probability where the logging policy "
                         f"gave none{share}: its estimates are biased")
        if fields.get("low_ess") is True and not any(_LOW_ESS.search(text) for text in named):
            found.append(f"candidate '{name}' has a low effective sample size: its "
                         f"estimates rest on few events")
    return found


def candidate_flags(candidate: Mapping[str, Any]) -> list[str]:
    """Short flags for a candidate's row: "biased", "low ESS"."""
    flags = []
    if mapping(candidate.get("support")).get("biased") is True:
        flags.append("biased")
    if candidate.get("low_ess") is True:
        flags.append("low ESS")
    return flags


def version_label(row: Mapping[str, Any]) -> str:
    """A check row's policy version; the row over all versions has none: "all"."""
    version = row.get("policy_version")
    return "all" if version is None else str(version)
