"""Choosing an arm from probabilities: inverse CDF, and sticky draws per unit.

The router draws ``u`` (from its own RNG, or from ``unit_uniform`` for sticky
units) and calls ``sample``; the chosen arm's logged probability is exactly
``probabilities[arm]``, the one it was sampled with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from ._types import Arm

_TWO_POW_53 = float(1 << 53)


def sample(probabilities: Mapping[Arm, float], u: float) -> Arm:
    """The arm whose CDF interval holds ``u`` ∈ [0, 1), walking the mapping's order.

    Arms with probability 0 are never chosen, even at rounding edges: when float
    error leaves ``u`` past the last cumulative sum, the last positive arm wins.
    """
    if not 0.0 <= u < 1.0:
        raise ValueError(f"u must be in [0, 1), got {u!r}")
    cumulative = 0.0
    last_positive: Arm | None = None
    for arm, p in probabilities.items():
        if p <= 0.0:
            continue
        last_positive = arm
        cumulative += p
        if u < cumulative:
            return arm
    if last_positive is None:
        raise ValueError("no arm has a positive probability")
    return last_positive


def unit_uniform(experiment: str, unit_id: str) -> float:
    """A uniform number in [0, 1) fixed by (experiment, unit id).

    BLAKE2b over the length-prefixed experiment name and the unit id, so units
    are independent across experiments and no two (experiment, unit) pairs share
    an input; the top 53 bits give a double with every value equally likely.
    Same unit, same ``u``: with the same shares, the same arm.
    """
    message = f"{len(experiment)}:{experiment}:{unit_id}".encode()
    digest = hashlib.blake2b(message, digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / _TWO_POW_53
