"""What both benchmarks share: VW's own text examples, and the tables they print.

VW is the reference for our VW policies, so it is run with the arguments our
policy gives VW and fed examples formatted here, independently of ``bandit``:
a ``shared`` line with the context's features in namespace ``s`` and one line
per action with its name in namespace ``a`` (the namespaces our policies'
default ``--interactions sa`` crosses). The chosen action's line carries VW's
cb label ``0:cost:probability`` with cost = −reward (VW minimises cost;
DSJSON's ``_label_cost`` is −reward too).

Tables are Markdown, so a run's output pastes into ``bench/README.md`` as is.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any


def vw_command(policy: Any) -> str:
    """The VW arguments our VW ``policy`` runs with, for a workspace of our own.

    The fixed part is written out here (``bandit._vw.FIXED_ARGS`` plus the seed);
    the exploration and learning part is the policy's own ``args`` (its
    normalised flags, interactions included), so the reference cannot drift
    from what the policy runs.
    """
    seed = policy.seed % (1 << 64)
    return " ".join(["--cb_explore_adf", "--quiet", "--save_resume", "--random_seed",
                     str(seed), *policy.args])


def shared_line(context: Mapping[str, Any]) -> str:
    """The ``shared`` line of a cb_explore_adf example: every feature in namespace ``s``.

    Numbers are ``name:value``, strings one-hot ``name=value``, true ``name:1``,
    false nothing (the benchmarks' names and values need no escaping).
    """
    tokens = ["shared |s"]
    for name, value in context.items():
        if isinstance(value, bool):
            if value:
                tokens.append(f"{name}:1")
        elif isinstance(value, str):
            tokens.append(f"{name}={value}")
        else:
            tokens.append(f"{name}:{value:.9g}")
    return " ".join(tokens)


def action_lines(arms: Sequence[str]) -> list[str]:
    """One line per action, its name as the one feature of namespace ``a``."""
    return [f"|a arm={arm}" for arm in arms]


def adf_example(context: Mapping[str, Any], actions: Sequence[str]) -> list[str]:
    """An unlabelled multi-line example: shared line, then the action lines."""
    return [shared_line(context), *actions]


def labelled_example(
    context: Mapping[str, Any], actions: Sequence[str], chosen: int, reward: float,
    probability: float,
) -> list[str]:
    """The example with the chosen action labelled ``0:−reward:probability``."""
    lines = adf_example(context, actions)
    lines[1 + chosen] = f"0:{-reward:.9g}:{probability:.9g} {lines[1 + chosen]}"
    return lines


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table, columns padded so it also reads well in a terminal."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows,
                                                                        strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths,
                                                                 strict=True)) + " |"

    rule = "| " + " | ".join("-" * w for w in widths) + " |"
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def run_header(title: str, argv: Sequence[str]) -> str:
    """Who ran what, where and when: the lines the README quotes with each table."""
    versions = ", ".join(f"{name} {version(name)}"
                         for name in ("numpy", "mabwiser", "vowpalwabbit"))
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"# {title}\n\n"
        f"command: `.venv/bin/python {' '.join(argv)}`  \n"
        f"date: {when}  \n"
        f"machine: {platform.machine()}, {os.cpu_count() or 1} CPUs, Python "
        f"{sys.version.split()[0]}, {versions}"
    )

