"""Shared by the index policies: give the greedy mass to the arms with the top score."""

from __future__ import annotations

import numpy as np

from ._policy import FloatArray


def top_share(scores: FloatArray) -> FloatArray:
    """1 split evenly among the arms with the highest score (ties share), 0 elsewhere.

    NaN scores count as untried: ``+inf``, so a new arm is tried before the rest.
    """
    filled = np.where(np.isnan(scores), np.inf, scores)
    best = filled == filled.max()
    shares: FloatArray = best / best.sum()
    return shares
