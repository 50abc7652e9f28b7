"""The log over time, for the replay report: cumulative reward and probability histograms.

``LogSeries`` reads the kept chunks once, in any order, and keeps a fixed amount of
state whatever the number of events or their time span, which is not known in
advance (an archive can hold ten million events over a day or over a year):

- **time buckets**: at most ``points`` of them, each a power-of-two number of
  seconds wide and aligned on multiples of that width. They start at ~1 ms; when
  the events seen so far span more buckets than that, the width doubles and each
  pair of neighbours merges into one. Because buckets are aligned, a merge is exact
  (``⌊t/2w⌋ = ⌊⌊t/w⌋/2⌋``): the result does not depend on how the log was chunked,
  and between ``points``/2 and ``points`` buckets span the log at the end.
  Each bucket keeps its event count, reward sum and latest timestamp, so a point
  of the cumulative curve sits at the last event it counts;
- **histograms**: per variant, the counts of the logging policy's probability of
  that variant, μ(variant|x), over the events that offered it, in equal bins on [0, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .._types import Arm
from ._chunks import FloatArray, LogChunk

__all__ = ["LogSeries"]

CountArray = npt.NDArray[np.int64]

# The finest bucket, 2⁻¹⁰ s (~1 ms): below the archive's timestamp resolution in
# practice, and a power of two so that t / width and the merges are exact.
_FINEST_WIDTH_LOG2 = -10

# A probability on a bin edge (0.3 with 20 bins) belongs to the bin above, as [a, b)
# intends, also when it was computed a hair below it (0.7 − 0.4 = 0.29999999999999993).
_EDGE_TOLERANCE = 1e-9


class LogSeries:
    """Cumulative events and reward over time, and per-variant probability histograms.

    ``add`` every chunk the evaluation kept; ``result`` gives the report's ``series``
    object: ``{"cumulative": {"timestamp", "events", "reward"}, "histograms":
    {variant: {"edges", "counts"}}}``, the timestamps in Unix seconds and ascending,
    ``events``/``reward`` running totals (the mean reward so far is their ratio).
    """

    def __init__(self, *, points: int = 200, bins: int = 20) -> None:
        if points < 2:
            raise ValueError(f"points must be at least 2, got {points}")
        if bins < 1:
            raise ValueError(f"bins must be at least 1, got {bins}")
        self._points = points
        self._bins = bins
        self._width_log2 = _FINEST_WIDTH_LOG2
        self._first: int | None = None  # absolute index (at the current width) of slot 0
        self._last_index = 0  # absolute index of the latest occupied bucket
        self._events: CountArray = np.zeros(points, dtype=np.int64)
        self._reward: FloatArray = np.zeros(points)
        self._latest: FloatArray = np.full(points, -np.inf)
        self._histograms: dict[Arm, CountArray] = {}

    def add(self, chunk: LogChunk) -> None:
        """Count ``chunk``'s events in their time buckets, its probabilities in the histograms."""
        if len(chunk) == 0:
            return
        self._add_histograms(chunk)
        timestamps = np.asarray(chunk.timestamp, dtype=np.float64)
        index = np.floor(np.ldexp(timestamps, -self._width_log2)).astype(np.int64)
        low, high = int(index.min()), int(index.max())
        if self._first is not None:
            low, high = min(low, self._first), max(high, self._last_index)
        while high - low + 1 > self._points:
            self._coarsen()
            index //= 2
            low //= 2
            high //= 2
        if self._first is not None and low < self._first:
            self._shift(self._first - low)
        self._first, self._last_index = low, high
        slot = index - low
        self._events += np.bincount(slot, minlength=self._points)
        np.add.at(self._reward, slot, np.asarray(chunk.reward, dtype=np.float64))
        np.maximum.at(self._latest, slot, timestamps)

    def result(self) -> dict[str, Any]:
        """The ``series`` object of the replay result (plain lists, JSON-ready)."""
        occupied = self._events > 0
        events = np.cumsum(self._events)[occupied]
        reward = np.cumsum(self._reward)[occupied]
        edges = [round(float(edge), 12) for edge in np.linspace(0.0, 1.0, self._bins + 1)]
        return {
            "cumulative": {
                "timestamp": self._latest[occupied].tolist(),
                "events": events.tolist(),
                "reward": reward.tolist(),
            },
            "histograms": {
                arm: {"edges": list(edges), "counts": counts.tolist()}
                for arm, counts in self._histograms.items()
            },
        }

    def _add_histograms(self, chunk: LogChunk) -> None:
        for column, arm in enumerate(chunk.arms):
            offered = chunk.offered[:, column]
            probabilities = chunk.logged[offered, column]
            bins = np.floor(probabilities * self._bins + _EDGE_TOLERANCE).astype(np.intp)
            counts = np.bincount(np.clip(bins, 0, self._bins - 1), minlength=self._bins)
            if arm in self._histograms:
                self._histograms[arm] += counts
            else:
                self._histograms[arm] = counts.astype(np.int64)

    def _coarsen(self) -> None:
        """Double the bucket width: each aligned pair of buckets becomes one."""
        self._width_log2 += 1
        if self._first is None:
            return
        absolute = self._first + np.arange(self._points, dtype=np.int64)
        first = self._first // 2
        slot = absolute // 2 - first
        events: CountArray = np.zeros(self._points, dtype=np.int64)
        np.add.at(events, slot, self._events)
        self._events = events
        reward: FloatArray = np.zeros(self._points)
        np.add.at(reward, slot, self._reward)
        self._reward = reward
        latest: FloatArray = np.full(self._points, -np.inf)
        np.maximum.at(latest, slot, self._latest)
        self._latest = latest
        self._first = first
        self._last_index //= 2

    def _shift(self, by: int) -> None:
        """Move the buckets ``by`` slots later, to make room for earlier events."""
        self._events = np.concatenate([np.zeros(by, dtype=np.int64), self._events[:-by]])
        self._reward = np.concatenate([np.zeros(by), self._reward[:-by]])
        self._latest = np.concatenate([np.full(by, -np.inf), self._latest[:-by]])
