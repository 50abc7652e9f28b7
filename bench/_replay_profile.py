"""Where a replay's time goes: one candidate's pass under cProfile, per event.

Runs in ``replay.py``'s child process (it imports ``bandit``). The pass is
``read_archive`` → ``replay`` over the first ``events`` events of the archive
(whole chunks of the reader's default size, or one smaller chunk), and the
profile is cut along ``replay``'s own steps: reading, the log audit, the series,
the candidate's probabilities, the evaluation. Each step is the cumulative time
of the one public method that does it, found by its code object, so a rename
fails loudly instead of reading 0. cProfile's own overhead lands mostly on
per-event Python calls, so the steps' shares, not their absolute µs, are the
figures to read; the heaviest functions by their own time say what a step spends
its time on.
"""

from __future__ import annotations

import cProfile
import itertools
import math
import pstats
from collections.abc import Callable
from typing import Any

from bandit.ope import (
    Archive,
    Candidate,
    Evaluation,
    LogAudit,
    LogSeries,
    read_archive,
    replay,
)

CHUNK = 65_536  # read_archive's default chunk size
TOP_FUNCTIONS = 8
LABEL = 60  # characters of a built-in's name

# (step, the method whose cumulative time it is)
STEPS: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("read_archive: read, split, check, arrays", Archive.__iter__),
    ("log audit (`LogAudit.add`)", LogAudit.add),
    ("series (`LogSeries.add`)", LogSeries.add),
    ("candidate's probabilities (`Candidate.probabilities`)", Candidate.probabilities),
    ("evaluation: IPS, SNIPS, DM, DR (`Evaluation.add`)", Evaluation.add),
)

_Key = tuple[str, int, str]


def profile(directory: str, name: str, spec: dict[str, Any], events: int) -> dict[str, Any]:
    """Profile ``replay`` of candidate ``spec`` over the first ``events`` events.

    Returns the events profiled, the total seconds under the profiler, per step
    its cumulative seconds, and the heaviest functions by own time.
    """
    candidate = Candidate(name, spec)
    chunk_size = min(events, CHUNK)
    archive = read_archive(directory, lines=candidate.needs_lines,
                           contexts=candidate.needs_contexts, chunk_size=chunk_size)
    chunks = itertools.islice(archive, math.ceil(events / chunk_size))
    profiler = cProfile.Profile()
    profiler.enable()
    result = replay(chunks, {name: candidate})
    profiler.disable()
    # (calls, primitive calls, own seconds, cumulative seconds, callers) per function
    stats: dict[_Key, tuple[int, int, float, float, Any]] = (
        pstats.Stats(profiler).stats)  # type: ignore[attr-defined]
    total = stats[_key(replay)][3]
    steps = [[label, stats[_key(function)][3] if _key(function) in stats else 0.0]
             for label, function in STEPS]
    heaviest = sorted(stats.items(), key=lambda item: -item[1][2])[:TOP_FUNCTIONS]
    return {"events": result.events, "total": total, "steps": steps,
            "functions": [[_label(key), own] for key, (_, _, own, _, _) in heaviest]}


def _key(function: Callable[..., Any]) -> _Key:
    code = function.__code__
    return code.co_filename, code.co_firstlineno, code.co_name


def _label(key: _Key) -> str:
    filename, line, name = key
    if filename == "~":  # a built-in: cProfile names it in full, pybind11's at length
        return f"`{name if len(name) <= LABEL else name[:LABEL - 1] + '…'}`"
    module = filename.rsplit("/", 2)
    return f"`{'/'.join(module[-2:])}:{line}({name})`"
