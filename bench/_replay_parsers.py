"""How to parse archive lines: per-line JSON parsers against read_archive's block regex.

    .venv/bin/python bench/_replay_parsers.py FILE [--rounds 3]

Lines per second over one archive file (already in memory, so no I/O), median of
``--rounds``, the candidates alternating within each round:

- ``json.loads`` / ``orjson.loads`` / ``msgspec`` (untyped, and typed into a Struct
  of the fields the reader uses, ``c`` left raw): the parse alone, one call a line,
  no arrays built; orjson and msgspec are measured only if installed;
- ``regex findall``: ``read_archive``'s fast path alone (fields as bytes, no arrays);
- ``read_archive``: the whole reader (file read, regex, arrays, checks, chunks).

A per-line parser costs more than the whole reader before any array is built: that
is why the reader splits blocks with one regular expression and keeps JSON for the
lines off the layout.
"""

# No ``from __future__ import annotations``: msgspec reads the Struct's annotations,
# which name a module imported inside a function.
import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import _common

from bandit.ope import read_archive
from bandit.ope._archive import _LINE


def candidates(path: str, data: bytes) -> dict[str, Callable[[], Any]]:
    lines = data.splitlines()
    found: dict[str, Callable[[], Any]] = {
        "json.loads": lambda: [json.loads(line) for line in lines]}
    try:
        import orjson

        found["orjson.loads"] = lambda: [orjson.loads(line) for line in lines]
    except ImportError:
        pass
    try:
        import msgspec

        class Line(msgspec.Struct):
            cost: float = msgspec.field(name="_label_cost")
            probability: float = msgspec.field(name="_label_probability")
            action: int = msgspec.field(name="_label_Action")
            Timestamp: str
            a: list[int]
            c: msgspec.Raw
            p: list[float]
            experiment: str | None = None
            policy_version: str | None = None
            variants: list[str] | None = None
            targeted: bool = False
            default_reward: bool = False

        untyped = msgspec.json.Decoder()
        typed = msgspec.json.Decoder(Line)
        found["msgspec (untyped)"] = lambda: [untyped.decode(line) for line in lines]
        found["msgspec (typed Struct)"] = lambda: [typed.decode(line) for line in lines]
    except ImportError:
        pass
    found["regex findall (fast path only)"] = lambda: _LINE.findall(data)
    found["read_archive (whole reader)"] = lambda: [len(c) for c in read_archive(path)]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("file")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with open(args.file, "rb") as file:
        data = file.read()
    count = data.count(b"\n")
    runs = candidates(args.file, data)
    speeds: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.rounds):
        print(f"round {round_ + 1}/{args.rounds}", file=sys.stderr)
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            speeds[name].append(count / (time.perf_counter() - started))
    reader = statistics.median(speeds["read_archive (whole reader)"])
    rows = [[name, f"{statistics.median(s):,.0f}", f"{statistics.median(s) / reader:.2f}"]
            for name, s in speeds.items()]
    print(_common.run_header("Parsing archive lines",
                             ["bench/_replay_parsers.py", *(argv or sys.argv[1:])]))
    print(f"\n{count:,} lines, {len(data) / count:.0f} bytes each\n")
    print(_common.markdown_table(["parser", "lines/s", "× read_archive"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
