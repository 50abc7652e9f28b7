"""The learner's statistics as the store keeps them: reward totals, timeline, weight pushes.

``reward_ingest`` writes them (the learner in the same atomic step as its checkpoint,
so a crash and replay never counts an event twice; the weight pusher after each
push); ``router`` reads them for ``/stats``, ``/timeline`` and the dashboard. The format
lives here because neither package imports the other; the key names are in
``common.storage.keys`` (``stats_key``, ``timeline_key``, ``pushes_key``).

On Redis, per experiment ``E``:

| key | type | holds |
| --- | --- | --- |
| ``bandit:stats:E`` | hash | per variant ``V``: ``V:n`` (rewards learned), ``V:sum``, |
| | | ``V:sumsq`` (of those rewards), ``V:defaults`` (how many were the default reward), |
| | | ``V:errors`` (of those decisions, how many invocations failed), ``V:served`` (the |
| | | sum of ``V``'s logged probability over every learned decision, whichever variant |
| | | it chose), ``V:lat:I`` (how many of its decisions' invocations took at most |
| | | ``LATENCY_EDGES_MS[I]`` ms and more than the edge before; ``I`` = the number of edges |
| | | for slower ones); ``HINCRBYFLOAT`` in the learner's checkpoint script |
| ``bandit:timeline:E`` | list | JSON points, oldest first, at most ``TIMELINE_MAXLEN`` |
| | | (``RPUSH`` + ``LTRIM`` in the same script) |
| ``bandit:pushes:E`` | list | the weight pusher's records (JSON), oldest first, at most |
| | | ``PUSHES_MAXLEN`` |

A timeline point: ``{"t": unix seconds, "policy_version": int, "events": int,
"variants": {V: {"n", "sum", "defaults", "served", "probability"?}}}`` where ``n``,
``sum`` and ``defaults`` cover the rewards learned since the previous point,
``served`` is the mean probability the router logged for ``V`` over those events, and
``probability`` the policy's own probability of ``V`` now (context-free policies only).

``MemoryLearnerStats`` is the in-process twin (``memory://``): the learner writes it
in the same synchronous step as its checkpoint, the router reads it. Its ``join_counts``
is the in-process joiner's ``counts`` (set by whoever runs the joiner), the twin of
``bandit:join:counts:E``.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

TIMELINE_MAXLEN = 2000
PUSHES_MAXLEN = 100
TOTAL_FIELDS = ("n", "sum", "sumsq", "defaults", "errors", "served")
LATENCY_EDGES_MS = (1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
                    5000.0, 10000.0)
"""Upper edges of the latency histogram in the totals (``V:lat:I``), milliseconds."""


def latency_bucket(latency_ms: float) -> int:
    """The histogram bucket of ``latency_ms``: the first edge at or above it, else the
    overflow bucket ``len(LATENCY_EDGES_MS)``."""
    return bisect.bisect_left(LATENCY_EDGES_MS, latency_ms)


def total_field(variant: str, name: str) -> str:
    """The hash field of one variant's total: ``{variant}:{name}``."""
    return f"{variant}:{name}"


@dataclass(slots=True)
class MemoryLearnerStats:
    """The three keys per experiment, in this process (writes are synchronous)."""

    totals: dict[str, dict[str, float]] = field(default_factory=dict)
    timelines: dict[str, deque[str]] = field(default_factory=dict)
    pushes: dict[str, deque[str]] = field(default_factory=dict)
    join_counts: Callable[[list[str]], Awaitable[dict[str, dict[str, int]]]] | None = None
    """The joiner's counters (``Joiner.counts``), when a joiner runs in this process."""

    def add_totals(self, experiment: str, deltas: Iterable[tuple[str, float]]) -> None:
        """``HINCRBYFLOAT`` each (field, delta) of ``bandit:stats:{experiment}``."""
        totals = self.totals.setdefault(experiment, {})
        for name, delta in deltas:
            totals[name] = totals.get(name, 0.0) + delta

    def append_point(self, experiment: str, point: str) -> None:
        """Append a timeline point (JSON), dropping the oldest beyond the bound."""
        self.timelines.setdefault(experiment, deque(maxlen=TIMELINE_MAXLEN)).append(point)

    def append_push(self, experiment: str, record: str) -> None:
        """Append a push record (JSON), dropping the oldest beyond the bound."""
        self.pushes.setdefault(experiment, deque(maxlen=PUSHES_MAXLEN)).append(record)

    # The router's ``StatsSource`` reads (async, like the Redis reader).

    async def read_totals(self, experiment: str) -> dict[str, float]:
        """The raw totals hash (field -> value)."""
        return dict(self.totals.get(experiment, {}))

    async def read_timeline(self, experiment: str) -> list[str]:
        """Every stored point (JSON), oldest first."""
        return list(self.timelines.get(experiment, ()))

    async def read_pushes(self, experiment: str) -> list[str]:
        """Every stored push record (JSON), oldest first."""
        return list(self.pushes.get(experiment, ()))

    async def read_join_counts(self, experiment: str) -> dict[str, int]:
        """The joiner's counters of ``experiment`` (empty when no joiner runs here)."""
        if self.join_counts is None:
            return {}
        return dict((await self.join_counts([experiment])).get(experiment, {}))
