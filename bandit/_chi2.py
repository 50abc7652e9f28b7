"""The chi-square distribution's survival function, in closed form (no scipy at run time)."""

from __future__ import annotations

import math


def chi2_survival(x: float, dof: int) -> float:
    """P(χ²_dof > x) for an integer dof ≥ 0, in closed form (Abramowitz & Stegun 26.4.4–5).

    Even dof: e^{−x/2} Σ_{j<dof/2} (x/2)^j / j!. Odd dof: erfc(√(x/2)) +
    √(2x/π) e^{−x/2} Σ_{j=0}^{(dof−3)/2} x^j / (2j + 1)!!. Terms are summed in
    logs, so a large x or dof neither overflows nor underflows early.
    """
    if dof == 0 or x <= 0.0:
        return 1.0
    if dof % 2 == 0:
        logs = [j * math.log(x / 2.0) - math.lgamma(j + 1.0) - x / 2.0 for j in range(dof // 2)]
        return min(1.0, sum(math.exp(term) for term in logs))
    head = math.erfc(math.sqrt(x / 2.0))
    base = 0.5 * math.log(2.0 * x / math.pi) - x / 2.0
    # (2j + 1)!! = (2j + 1)! / (2^j j!)
    logs = [base + j * math.log(x) - (math.lgamma(2.0 * j + 2.0) - j * math.log(2.0)
                                      - math.lgamma(j + 1.0))
            for j in range((dof - 1) // 2)]
    return min(1.0, head + sum(math.exp(term) for term in logs))
