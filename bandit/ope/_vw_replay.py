"""A Vowpal Wabbit workspace walked over DSJSON lines: progressive validation, per line.

For each line: parse it, ``learn`` it, read the distribution the example carries.
VW's ``learn`` predicts before it updates (``VW::workspace::learn`` runs the learner's
``predict`` first unless its ``learn`` returns the prediction itself), and that one
call per line is the step VW's own ``--dsjson`` driver takes before it writes ``-p``.
So the distribution read after ``learn`` is the one VW served before learning the
line, as the driver prints it, in float32 rather than ``-p``'s six digits.

Why this and not the driver itself: one workspace lives as long as the candidate, so
the model is that of one uninterrupted pass. Running the driver per chunk instead
needs the model saved and reloaded between chunks, and ``--save_resume`` does not
restore every explorer's state (``--cover``, ``--bag`` and ``--rnd`` predict
differently after a reload); the driver's ``-p`` output also costs more than this
loop on its own (``bench/_vw_replay_loop.py`` times both).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._vw import _workspace
from ._chunks import BoolArray, FloatArray

__all__ = ["LineRefusedError", "VWLineReplay"]

# Lines VW cannot read raise instead of becoming empty examples; no effect on the model.
_PARSE_ARGS = ("--strict_parse",)


class LineRefusedError(ValueError):
    """Vowpal Wabbit could not read or learn line ``line`` of the chunk, or its actions are
    not the chunk's offered set."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line} of the chunk {problem}")
        self.line = line


class VWLineReplay:
    """A ``--dsjson`` workspace built from ``args`` (and ``model``, a saved model's bytes)
    that scores and learns DSJSON lines in log order, one chunk at a time.

    Raises ``ValueError`` when VW refuses the arguments or the model.
    """

    def __init__(self, args: Sequence[str], model: bytes | None = None) -> None:
        workspace = _workspace([*args, *_PARSE_ARGS], model)
        self._workspace = workspace  # kept alive: the bound methods below point into it
        self._parse = workspace._parse
        self._learn = workspace.learn_multi
        self._finish = workspace._finish_example_multi_ex

    def scores(self, lines: Sequence[str], offered: BoolArray) -> FloatArray:
        """VW's distribution for each line before it learned the line (n × K, rows in
        ``lines``' order), then learned. A line's action j is its j-th offered column
        (``offered[i]``, the chunk's column order, which a line's ``_multi`` follows);
        0 where not offered. Raises ``LineRefusedError``."""
        flat: list[float] = []
        counts: list[int] = []
        # Bound once: this loop runs once per event. Scores go into one flat list of
        # floats, not a list per line: no container per event for the collector to scan.
        parse, learn, finish = self._parse, self._learn, self._finish
        extend, count = flat.extend, counts.append
        try:
            for line in lines:
                examples = parse(line)
                try:
                    learn(examples)  # predicts, then updates: the example keeps the prediction
                    action_scores = examples[0].get_action_scores()
                finally:
                    finish(examples)
                extend(action_scores)
                count(len(action_scores))
        except RuntimeError as exc:  # the line after the last one counted
            raise LineRefusedError(len(counts), f"is refused: {exc}") from None
        expected = offered.sum(axis=1)
        actions = np.array(counts, dtype=np.intp)
        wrong = np.flatnonzero(actions != expected)
        if wrong.size:
            i = int(wrong[0])
            raise LineRefusedError(i, f"offers {actions[i]} actions, the chunk {expected[i]}")
        pmf = np.zeros(offered.shape)
        pmf[offered] = flat  # a mask takes the cells row by row, columns ascending
        return pmf
