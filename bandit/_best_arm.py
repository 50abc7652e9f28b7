"""P(arm k has the highest mean) under independent posteriors, by quadrature.

With independent posteriors of densities f_j and CDFs F_j,

    P(k is best) = ∫ f_k(x) · Π_{j≠k} F_j(x) dx

(the probability that Thompson sampling plays k; Chapelle & Li 2011). Only the
densities are needed in closed form: each F_j is the running integral of f_j on
the same nodes.

The nodes are the union of one set per arm, placed in the arm's own units around
its mode: steps of half a scale over ±5 scales, then geometric steps (ratio 1.25,
which also follows a t tail's power law) out to where the widest arm is negligible,
so every arm is resolved wherever the integrand lives, from n = 0 to n = 10⁷.
Each panel is integrated with the Hermite-corrected trapezoid rule
h/2·(g_a + g_b) + h²/12·(g'_a − g'_b), exact for cubics, error h⁵g⁗/720 (Davis &
Rabinowitz 1984, §2.9). Since each mode is a node, every panel lies on one
monotone side of each density, so a CDF increment is kept within [0, h·(g_a +
g_b)]: a long panel through another arm's far tail cannot add mass. The mass
beyond the outermost nodes comes from the tails' closed forms; each density is
normalised by its own computed total, so no normalising constant (no log-gamma)
is evaluated.

Two families, matching ``thompson``'s posteriors:

- ``beta_best_probabilities``: Beta(α_j, β_j), integrated in y = logit(x), where
  the density x^α (1 − x)^β / B(α, β) is smooth and log-concave for every α, β > 0
  (no pole at 0 or 1 when α or β < 1); the largest x is the largest y.
- ``student_t_best_probabilities``: location-scale Student-t with ν_j degrees of
  freedom (ν may be fractional, e.g. discounted counts), integrated in x.

Both return non-negative weights summing to 1 up to the quadrature error (about
10⁻⁴ at worst in the cases the tests cover; each P is within 2·10⁻⁴ of scipy).
"""

from __future__ import annotations

import bisect

import numpy as np
import numpy.typing as npt

from ._policy import FloatArray

BoolArray = npt.NDArray[np.bool_]

_BULK_STEP = 0.5
_BULK_EDGE = 5.0
_TAIL_RATIO = 1.25
_TAIL_EDGE = 1e8
_bulk = np.arange(_BULK_STEP, _BULK_EDGE + _BULK_STEP / 2, _BULK_STEP)
_tail = _BULK_EDGE * _TAIL_RATIO ** np.arange(
    1, int(np.ceil(np.log(_TAIL_EDGE / _BULK_EDGE) / np.log(_TAIL_RATIO))) + 1)
_half = np.concatenate([_bulk, _tail])
# Node offsets in an arm's own units, ascending, 0 (the mode) included.
_OFFSETS = np.concatenate([-_half[::-1], [0.0], _half])
_NEGATIVE = np.minimum(_OFFSETS, 0.0)
_POSITIVE = np.maximum(_OFFSETS, 0.0)
_OFFSET_LIST = _OFFSETS.tolist()
# A density below e^-30 of its peak is negligible: that sets how far an arm
# "reaches". Every arm's nodes go one offset past the longest reach (for a t tail
# with ν ≤ 1, as far as the offsets go).
_NEGLIGIBLE = 30.0
_TINY = 1e-300


def beta_best_probabilities(alpha: FloatArray, beta: FloatArray) -> FloatArray:
    """P(arm k has the largest draw) for independent Beta(α_k, β_k); α, β > 0."""
    shape = np.array([alpha, beta], dtype=np.float64)[:, :, None]  # (side, arm, 1)
    a, b = shape
    total = a + b
    mode = np.log(a / b)  # of the density of logit(x), at x = α / (α + β)
    scale = np.sqrt(total / (a * b))  # its Laplace scale, √(1/α + 1/β)
    # The log density in y falls like α·y on the left and −β·y on the right: a
    # small α or β is a long exponential tail, so that side's units widen to it.
    units = np.maximum(scale, 0.5 / shape)
    reach = np.maximum(_NEGLIGIBLE / (shape * units), np.sqrt(2 * _NEGLIGIBLE) * scale / units)
    kept, y = _nodes(mode, units, reach)
    if kept is not None:
        a, b, total, mode = a[kept], b[kept], total[kept], mode[kept]

    log_x = -np.logaddexp(0.0, -y)  # y = logit(x)
    # log x^α (1 − x)^β = (α + β)·log x − β·y, taken relative to its value at the mode.
    at_mode = total * -np.logaddexp(0.0, -mode) - b * mode
    density = np.exp(total * log_x - b * y - at_mode)
    slope = a - total * np.exp(log_x)
    # Tails in closed form: I_x(α, β) = x^α (1 − x)^β / (α B(α, β)) · (1 + O(x))
    # (DLMF 8.17.8), so the mass below the first node is density/α there, to first
    # order; the correction only counts where the density is negligible anyway.
    below = density[:, :1] / a
    above = density[:, -1:] / b
    return _spread(kept, _integrate(y, density, slope, below, above))


def student_t_best_probabilities(
    location: FloatArray, scale: FloatArray, dof: FloatArray
) -> FloatArray:
    """P(arm k has the largest draw) for independent location + scale · t(dof); scale, dof > 0."""
    m, s, nu = np.array([location, scale, dof], dtype=np.float64)[:, :, None]
    # Density ∝ (1 + z²/ν)^(−(ν+1)/2) is e^(−c) times its peak at z² = ν(e^(2c/(ν+1)) − 1).
    reach = np.sqrt(nu * np.expm1(np.minimum(2 * _NEGLIGIBLE / (nu + 1.0), 700.0)))
    kept, x = _nodes(m, np.array([s, s]), np.array([reach, reach]))
    if kept is not None:
        m, s, nu = m[kept], s[kept], nu[kept]

    exponent = (nu + 1.0) / 2.0
    z = (x - m) / s
    ratio = z * z / nu
    density = np.exp(-exponent * np.log1p(ratio))
    slope = -2.0 * exponent / (s * nu) * z / (1.0 + ratio)  # d/dx log density
    # Tails (DLMF 8.17.8 again, F(t) = I_w(ν/2, 1/2)/2 for t < 0 with w = ν/(ν + t²)):
    # density·|z|/ν · (1 + O(w)), in x units.
    ends = z[:, [0, -1]]
    tails = density[:, [0, -1]] * s * np.abs(ends) / nu
    return _spread(kept, _integrate(x, density, slope, tails[:, :1], tails[:, 1:]))


def _spread(kept: BoolArray | None, best: FloatArray) -> FloatArray:
    """The kept arms' probabilities in place, 0 for the arms that cannot be best."""
    if kept is None:
        return best
    out = np.zeros(kept.size)
    out[kept] = best
    return out


def _nodes(
    centre: FloatArray, units: FloatArray, reach: FloatArray
) -> tuple[BoolArray | None, FloatArray]:
    """Which arms can be best (None: all of them), and the sorted union of their nodes.

    ``centre`` (arms × 1) is each arm's mode; ``units`` and ``reach`` (side × arms ×
    1) its units left and right of the mode and how many of them it takes to be
    negligible. An arm whose right reach falls short of another's left reach is
    never the best (P < e^-30); it is dropped, and counts as F = 1 for the others.
    Every arm gets the same offsets, out to one node past the longest reach.
    """
    ends = reach * units
    low = centre - ends[0]
    contenders: BoolArray = (centre + ends[1] >= low.max())[:, 0]
    kept = None if contenders.all() else contenders
    if kept is not None:
        centre, units, reach = centre[kept], units[:, kept], reach[:, kept]
    first = max(bisect.bisect_right(_OFFSET_LIST, -float(reach[0].max())) - 1, 0)
    last = bisect.bisect_left(_OFFSET_LIST, float(reach[1].max())) + 1
    points = (centre + units[0] * _NEGATIVE[first:last] + units[1] * _POSITIVE[first:last])
    points = points.ravel()
    points.sort()
    return kept, points


def _integrate(
    x: FloatArray, density: FloatArray, slope: FloatArray, below: FloatArray, above: FloatArray
) -> FloatArray:
    """∫ f_k Π_{j≠k} F_j on nodes ``x`` from unnormalised densities (arms × nodes).

    ``slope`` is d/dx log f; ``below``/``above`` (arms × 1) the mass outside the nodes.
    Every density is normalised by its own computed total.
    """
    step = x[1:] - x[:-1]
    half = 0.5 * step
    twelfth = step * step / 12.0
    derivative = density * slope
    trapezoid = half * (density[:, :-1] + density[:, 1:])
    pieces = trapezoid + twelfth * (derivative[:, :-1] - derivative[:, 1:])
    # Each density is monotone on every panel (its mode is a node), so a panel holds
    # at most its width times the larger end value: this bounds what a long panel
    # through another arm's far tail can add.
    np.maximum(pieces, 0.0, out=pieces)
    np.minimum(pieces, 2.0 * trapezoid, out=pieces)
    cdf = np.concatenate([below, pieces], axis=1).cumsum(axis=1)
    total = cdf[:, -1:] + above
    cdf /= total

    # Π_{j≠k} F_j = Π_j F_j / F_k, and its derivative Π_{j≠k} F_j · Σ_{j≠k} f_j / F_j.
    # Flooring F_k only matters where f_k is negligible too, and a product that
    # underflows is one that would not count.
    floored = np.maximum(cdf, _TINY)
    others = cdf.prod(axis=0) / floored
    hazard = density / (floored * total)
    integrand = density * others
    integrand_slope = derivative * others + integrand * (hazard.sum(axis=0) - hazard)

    # Hermite-corrected trapezoid over every panel; beyond the last
    # node, k wins when it is there: its tail times the others' CDFs.
    best = ((integrand[:, :-1] + integrand[:, 1:]) @ half
            + (integrand_slope[:, :-1] - integrand_slope[:, 1:]) @ twelfth
            + above[:, 0] * others[:, -1]) / total[:, 0]
    positive: FloatArray = np.maximum(best, 0.0)
    return positive
