"""Logged decisions as arrays: the unit the archive reader yields and the estimators read.

A ``LogChunk`` holds consecutive decisions of one experiment made over one variant
list (the columns). The reader starts a new chunk when the experiment's variant
list changes (a variant added or removed mid-flight) or when a chunk is full, so
a consumer never holds more than one chunk's worth of Python objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._types import Arm, Context

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class LogChunk:
    """Consecutive logged decisions of one experiment, one row per decision.

    ``arms`` are the columns: the experiment's variants when these decisions were
    made. ``logged[i]`` is the logging policy's whole distribution μ(·|x_i) over
    them (0 where not offered), ``offered[i]`` the eligible set, ``action[i]`` the
    column taken and ``propensity[i]`` = μ(action|x_i) as logged. ``version[i]``
    indexes ``versions`` (the logging policy's version). ``contexts`` and ``lines``
    (the raw DSJSON lines) are present only when the reader was asked for them:
    contextual candidates need contexts, VW candidates learn from the lines.
    """

    experiment: str | None
    arms: tuple[Arm, ...]
    action: IntArray
    propensity: FloatArray
    logged: FloatArray
    offered: BoolArray
    reward: FloatArray
    timestamp: FloatArray
    default_reward: BoolArray
    version: IntArray
    versions: tuple[str | None, ...]
    contexts: Sequence[Context | None] | None = None
    lines: Sequence[str] | None = None

    def __len__(self) -> int:
        return int(self.action.size)
