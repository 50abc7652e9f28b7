"""Results as JSON-ready dicts: NaN and infinities become null (JSON has neither)."""

from __future__ import annotations

import math
from typing import Any

from ._estimate import Estimate

__all__ = ["finite_or_none", "interval_json"]


def finite_or_none(value: float) -> float | None:
    """``value``, or None when it is NaN or infinite."""
    return value if math.isfinite(value) else None


def interval_json(item: Estimate) -> dict[str, Any]:
    """``{"value", "lower", "upper", "std_error", "ess", "n"}`` of one estimate."""
    return {"value": finite_or_none(item.value), "lower": finite_or_none(item.lower),
            "upper": finite_or_none(item.upper), "std_error": finite_or_none(item.std_error),
            "ess": finite_or_none(item.ess), "n": item.n}
