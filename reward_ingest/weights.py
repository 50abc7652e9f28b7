"""Traffic shares → endpoint variant weights and instance counts (pure, no I/O).

SageMaker variant weights are relative: a variant gets ``weight / sum(weights)`` of the
traffic. Everything here works in normalised weights (summing to 1), so a weight *is*
the traffic share it buys, and ``max_step`` and ``min_weight`` are in share units.

``plan_weights`` moves the endpoint from its current split toward the policy's split
along the straight line between them, as far as ``max_step`` lets the coordinate that
has the farthest to go. So, for every variant:

- the result sums to 1 and every weight is at least ``min_weight`` (the floor);
- it moves at most ``max_step`` from the current weight (when the current split already
  respects the floor — a current weight below the floor is lifted to it first, because
  the floor is the safety guarantee and wins over the step limit);
- it lies between its current and target weight, so repeated pushes converge to the
  target in ``ceil(max |target - current| / max_step)`` steps, the fewest possible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

# Float slack for "sums to 1" and "at least the floor" after the arithmetic.
TOLERANCE = 1e-9


def plan_weights(shares: Mapping[str, float], current: Mapping[str, float], *,
                 min_weight: float, max_step: float) -> dict[str, float]:
    """The next weights to push: ``current`` moved toward the floored ``shares``.

    ``shares`` (the policy's traffic split) and ``current`` (the endpoint's weights) are
    relative, must name the same variants, and are normalised here; all-zero means
    uniform. The result is keyed in ``shares``' order. When ``min_weight × n ≥ 1`` the
    floor can only be met by the uniform split, which is then the target.
    """
    _check_bounds(min_weight, max_step)
    names = list(shares)
    if set(names) != set(current):
        raise ValueError(f"shares name {sorted(names)} but current weights name "
                         f"{sorted(current)}; they must name the same variants")
    if not names:
        raise ValueError("no variants to weigh")
    target = apply_floor(normalise([shares[n] for n in names]), min_weight)
    start = apply_floor(normalise([current[n] for n in names]), min_weight)
    floor = min(min_weight, 1.0 / len(names))  # n·min_weight ≥ 1: uniform is the floor
    farthest = max(abs(t - s) for t, s in zip(target, start, strict=True))
    fraction = 1.0 if farthest <= max_step else max_step / farthest
    moved = [s + fraction * (t - s) for t, s in zip(target, start, strict=True)]
    # A convex combination of two floored splits is floored; max() only absorbs rounding.
    return dict(zip(names, (max(w, floor) for w in moved), strict=True))


def normalise(weights: list[float]) -> list[float]:
    """Non-negative finite weights → shares summing to 1; uniform when all are 0."""
    for w in weights:
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"weights must be finite and non-negative, got {w!r}")
    total = math.fsum(weights)
    if total <= 0:
        return [1.0 / len(weights)] * len(weights)
    return [w / total for w in weights]


def apply_floor(shares: list[float], floor: float) -> list[float]:
    """Lift shares below ``floor`` to it, scaling the others down to keep the sum at 1.

    Ratios among the shares that stay above the floor are kept. Lifting can push
    another share under the floor, so it repeats until none is (at most n rounds).
    """
    n = len(shares)
    if floor <= 0:
        return list(shares)
    if floor * n >= 1:
        return [1.0 / n] * n
    pinned: set[int] = set()
    while True:
        free = [i for i in range(n) if i not in pinned]
        mass = 1.0 - floor * len(pinned)
        free_total = math.fsum(shares[i] for i in free)
        out = [floor] * n
        for i in free:
            # free is never empty: if every share left free were below the floor, the
            # free shares (summing to 1 - floor·|pinned|) would give n·floor > 1.
            out[i] = (shares[i] * mass / free_total if free_total > 0
                      else mass / len(free))
        low = {i for i in free if out[i] < floor}
        if not low:
            return out
        pinned |= low


def plan_instance_counts(weights: Mapping[str, float], total_instances: int, *,
                         min_per_variant: int = 1,
                         max_per_variant: int | None = None) -> dict[str, int]:
    """Split ``total_instances`` across variants in proportion to ``weights``, bounded.

    Every variant gets at least ``min_per_variant`` and at most ``max_per_variant``
    (default: no upper bound beyond the total); the counts sum to ``total_instances``.
    Each remaining instance goes to the variant furthest below its proportional quota
    (ties to the heavier, then the earlier variant), so a heavier variant never gets
    fewer instances than a lighter one unless bounds force it.
    """
    names = list(weights)
    n = len(names)
    cap = total_instances if max_per_variant is None else max_per_variant
    if n == 0:
        raise ValueError("no variants to size")
    if min_per_variant < 0 or cap < min_per_variant:
        raise ValueError(f"need 0 ≤ min_per_variant ({min_per_variant}) ≤ "
                         f"max_per_variant ({cap})")
    if not n * min_per_variant <= total_instances <= n * cap:
        raise ValueError(f"{total_instances} instances cannot be split over {n} variants "
                         f"with {min_per_variant}..{cap} each")
    shares = normalise([weights[name] for name in names])
    quota = [s * total_instances for s in shares]
    counts = [min_per_variant] * n
    for _ in range(total_instances - n * min_per_variant):
        open_ = [i for i in range(n) if counts[i] < cap]
        # Equal deficits (also equal after rounding) go to the heavier, then earlier, one.
        best = max(open_, key=lambda i: (quota[i] - counts[i], quota[i], -i))
        counts[best] += 1
    return dict(zip(names, counts, strict=True))


def largest_change(before: Mapping[str, float], after: Mapping[str, float]) -> float:
    """The largest absolute difference between two weightings of the same variants."""
    return max((abs(after[name] - before.get(name, 0.0)) for name in after), default=0.0)


def _check_bounds(min_weight: float, max_step: float) -> None:
    if not 0.0 <= min_weight < 1.0:
        raise ValueError(f"min_weight must be in [0, 1), got {min_weight!r}")
    if not 0.0 < max_step <= 1.0:
        raise ValueError(f"max_step must be in (0, 1], got {max_step!r}")
