"""``GET /v1/experiments/{name}/timeline``: the series the dashboard draws.

The learner appends a point to ``bandit:timeline:E`` with its checkpoint, at most one
a second (format: ``common.learner_stats``): the rewards it learned since the previous
point and the probabilities then. This module turns the stored points into what a
chart wants, per variant and point:

- ``traffic_share``: the variant's share of the decisions learned in the interval
  (joined decisions: it trails the live traffic by the reward window);
- ``probability``: the policy's probability of the variant (context-free policies),
  else ``served_probability``, the mean probability the router logged for it;
- ``mean_reward`` over the interval, and ``rolling_mean_reward`` over the variant's
  last ``window`` rewards (whole points: at least ``window`` when that many exist).

Each point carries ``interval_s``, the seconds since the stored point before it (null
for the first), so a chart can show decisions per second. ``markers`` are the events
the page draws on its time axis (``router.markers``): weight pushes, guardrail trips
and configuration changes, all of them whatever ``since`` says, oldest first.

``since`` (exclusive, Unix seconds) lets the page poll for new points only; ``limit``
keeps the newest ones. Rolling means are computed over every stored point first, so
they do not depend on ``since``.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from common.learner_stats import TIMELINE_MAXLEN

from .markers import Marker

DEFAULT_LIMIT = 500
MAX_LIMIT = TIMELINE_MAXLEN
DEFAULT_WINDOW = 100
MAX_WINDOW = 1_000_000


class VariantPoint(BaseModel):
    """One variant at one point."""

    n: int = Field(description="Rewards learned for the variant in the interval")
    defaults: int = Field(description="Of those, default rewards")
    traffic_share: float | None = Field(description="Its share of the decisions learned in "
                                                    "the interval (null: none learned)")
    probability: float | None = Field(description="The policy's probability of it after the "
                                                  "interval (null for contextual policies)")
    served_probability: float = Field(description="Mean probability the router logged for "
                                                  "it over the interval's decisions")
    mean_reward: float | None = Field(description="Mean reward over the interval")
    rolling_mean_reward: float | None = Field(description="Mean over its last `window` "
                                                          "rewards (whole points)")


class TimelinePoint(BaseModel):
    """What the learner recorded at one checkpoint."""

    t: float = Field(description="Unix seconds")
    interval_s: float | None = Field(description="Seconds since the stored point before "
                                                 "(null for the oldest)")
    policy_version: int
    events: int = Field(description="Decisions learned in the interval")
    variants: dict[str, VariantPoint]


class Timeline(BaseModel):
    """The answer of ``GET /v1/experiments/{name}/timeline``."""

    experiment: str
    variants: list[str] = Field(description="Every variant in the points, the policy's "
                                            "arms first")
    window: int = Field(description="Rewards per variant in the rolling mean")
    reward_stats: str = Field(description="learner, none (no learner records where this "
                                          "router reads) or unavailable")
    points: list[TimelinePoint] = Field(description="Oldest first")
    markers: list[Marker] = Field(default_factory=list, description="Weight pushes, "
                                  "guardrail trips and config changes, oldest first")


def build_timeline(experiment: str, arms: Sequence[str], raw: Sequence[str], *,
                   since: float | None = None, limit: int = DEFAULT_LIMIT,
                   window: int = DEFAULT_WINDOW, status: str = "learner",
                   markers: Sequence[Marker] = ()) -> Timeline:
    """The timeline of the stored points ``raw`` (JSON, oldest first), with ``markers``."""
    points: list[TimelinePoint] = []
    previous: float | None = None
    names: dict[str, None] = dict.fromkeys(arms)
    trailing: dict[str, deque[tuple[float, float]]] = {}
    sums: dict[str, list[float]] = {}  # variant -> [n, sum] over ``trailing``
    for text in raw:
        point = _parse(text)
        if point is None:
            continue
        events = int(point.get("events") or 0)
        variants: dict[str, VariantPoint] = {}
        for name, entry in point["variants"].items():
            names.setdefault(name)
            n, total = float(entry.get("n", 0.0)), float(entry.get("sum", 0.0))
            queue = trailing.setdefault(name, deque())
            acc = sums.setdefault(name, [0.0, 0.0])
            if n:
                queue.append((n, total))
                acc[0] += n
                acc[1] += total
                while queue and acc[0] - queue[0][0] >= window:
                    old_n, old_sum = queue.popleft()
                    acc[0] -= old_n
                    acc[1] -= old_sum
            probability = entry.get("probability")
            variants[name] = VariantPoint(
                n=round(n), defaults=round(float(entry.get("defaults", 0.0))),
                traffic_share=n / events if events else None,
                probability=None if probability is None else float(probability),
                served_probability=float(entry.get("served", 0.0)),
                mean_reward=total / n if n else None,
                rolling_mean_reward=acc[1] / acc[0] if acc[0] else None)
        t = float(point["t"])
        points.append(TimelinePoint(t=t, interval_s=None if previous is None else t - previous,
                                    policy_version=int(point.get("policy_version", 0)),
                                    events=events, variants=variants))
        previous = t
    if since is not None:
        points = [p for p in points if p.t > since]
    return Timeline(experiment=experiment, variants=list(names), window=window,
                    reward_stats=status, points=points[-limit:] if limit else [],
                    markers=sorted(markers, key=lambda m: m.t))


def _parse(text: str) -> dict[str, Any] | None:
    try:
        point = json.loads(text)
    except ValueError:
        return None
    if not (isinstance(point, dict) and isinstance(point.get("variants"), dict)
            and isinstance(point.get("t"), int | float)):
        return None
    return point
