"""µs per event of a VW candidate's replay beside VW's own ``--dsjson`` driver, reading left out.

    .venv/bin/python bench/_vw_replay_loop.py ARCHIVE_DIR [--flags "--squarecb"] [--rounds 3]

``ARCHIVE_DIR`` is one of ``_replay_data.py``'s archives (``--contextual``). The
archive is read once (``read_archive(lines=True)``, timed and reported apart); the
kept lines are written to one file, so every pass below sees the same events:

- ``driver``: VW's own driver, ``Workspace("<candidate args> --dsjson -d FILE")
  .run_parser()``, the replay budget's reference (``bench/replay.py``);
- ``driver -p``: the same, writing its predictions with ``-p``;
- ``candidate``: ``Candidate.probabilities`` over the chunks already in memory;
- ``predict+learn`` and ``learn``: the bare per-line loops over the workspace
  (``_parse``, [``predict_multi``], ``learn_multi``, ``get_action_scores``,
  finish), what the candidate pays for VW through its Python binding.

Passes alternate round by round on a shared machine; each row shows the fastest
round and every round.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _common
import vowpalwabbit

from bandit import make_policy
from bandit.ope import LogChunk, read_archive
from bandit.ope._candidates import Candidate

SEED = 0


def driver(args: list[str], path: Path, predictions: Path | None) -> None:
    extra = [] if predictions is None else ["-p", str(predictions)]
    workspace = vowpalwabbit.Workspace(arg_list=[*args, "-d", str(path), *extra])
    workspace.run_parser()
    workspace.finish()


def bare_loop(args: list[str], lines: list[str], predict_first: bool) -> None:
    workspace = vowpalwabbit.Workspace(arg_list=args)
    parse, predict = workspace._parse, workspace.predict_multi
    learn, finish = workspace.learn_multi, workspace._finish_example_multi_ex
    scores: list[float] = []
    for line in lines:
        examples = parse(line)
        if predict_first:
            predict(examples)
        learn(examples)
        scores.extend(examples[0].get_action_scores())
        finish(examples)
    workspace.finish()


def candidate(spec: dict[str, str], chunks: list[LogChunk]) -> None:
    replayed = Candidate("vw", spec, seed=SEED)
    for chunk in chunks:
        replayed.probabilities(chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("archive")
    parser.add_argument("--flags", default="--squarecb", help="the vw candidate's flags")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    spec = {"type": "vw", "flags": options.flags}

    started = time.perf_counter()
    chunks = list(read_archive(options.archive, lines=True))
    read_seconds = time.perf_counter() - started
    lines = [line.rstrip("\r\n") for chunk in chunks for line in chunk.lines or ()]
    events = len(lines)
    policy = make_policy(spec, chunks[0].arms, SEED)
    args = [*_common.vw_command(policy).split(), "--dsjson"]
    print(f"{events:,} events kept; read_archive(lines=True): "
          f"{read_seconds / events * 1e6:.2f} µs/event; VW args: {' '.join(args)}")

    with tempfile.TemporaryDirectory(prefix="vw-replay-loop-") as directory:
        path, predictions = Path(directory, "kept.json"), Path(directory, "predictions")
        path.write_text("\n".join(lines) + "\n")
        passes: dict[str, Callable[[], None]] = {
            "driver": lambda: driver(args, path, None),
            "driver -p": lambda: driver(args, path, predictions),
            "candidate": lambda: candidate(spec, chunks),
            "predict+learn": lambda: bare_loop(args, lines, True),
            "learn": lambda: bare_loop(args, lines, False),
        }
        timings: dict[str, list[float]] = {name: [] for name in passes}
        for _ in range(options.rounds):
            for name, run in passes.items():
                started = time.perf_counter()
                run()
                timings[name].append((time.perf_counter() - started) / events * 1e6)
    best_driver = min(timings["driver"])
    print("| pass | µs/event (best) | × driver | rounds |")
    print("|---|---|---|---|")
    for name, times in timings.items():
        print(f"| {name} | {min(times):.2f} | {min(times) / best_driver:.2f} | "
              f"{', '.join(f'{t:.2f}' for t in times)} |")


if __name__ == "__main__":
    main()
