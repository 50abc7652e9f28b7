"""Reading the decision archive for replay: events/s and peak memory of ``read_archive``.

    .venv/bin/python bench/replay.py                      # 1,000,000 and 10,000,000 events
    .venv/bin/python bench/replay.py --events 200000      # a smoke run
    .venv/bin/python bench/replay.py --data-dir /tmp/replay-data   # keep (and reuse) archives

Archives come from ``_replay_data`` (a Thompson logger's DSJSON, ~64 MB files).
Every measurement runs in a subprocess of its own, so its peak RSS (``ru_maxrss``
from ``os.wait4`` for that child) is its own: the reader's must stay flat as the
archive grows tenfold. This process imports neither numpy nor bandit, because a
child's ``ru_maxrss`` starts at its parent's high-water mark.

The reference is VW's own ``--dsjson`` pass over the smallest archive, file by file
(``Workspace("--cb_explore_adf --dsjson -d FILE --quiet").run_parser()``), in the
same run: the replay command's budget is scoring a static candidate at ≥ 5× VW's
speed, and reading is most of it.

The table is Markdown on stdout (pastes into ``bench/README.md``); progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import _common


def read_pass(directory: str) -> dict[str, float]:
    """One read_archive pass over ``directory`` (in the child)."""
    from bandit.ope import read_archive

    started = time.perf_counter()
    archive = read_archive(directory)
    events = sum(len(chunk) for chunk in archive)
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "lines": archive.stats.lines, "events": events}


def vw_pass(directory: str) -> dict[str, float]:
    """VW's own DSJSON driver over every file of ``directory`` (in the child)."""
    import vowpalwabbit

    started = time.perf_counter()
    examples = 0.0
    for path in sorted(Path(directory).glob("*.json")):
        workspace = vowpalwabbit.Workspace(f"--cb_explore_adf --dsjson -d {path} --quiet")
        workspace.run_parser()
        examples += workspace.get_weighted_examples()
        workspace.finish()
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "lines": examples, "events": examples}


def measure(kind: str, directory: Path) -> dict[str, float]:
    """Run one pass in a child process; its result and its own peak RSS (MB)."""
    command = [sys.executable, __file__, "--child", kind, str(directory)]
    with tempfile.TemporaryFile() as output:
        child = subprocess.Popen(command, stdout=output)
        # wait4, not RUSAGE_CHILDREN: that is the maximum over every child so far.
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise SystemExit(f"{kind} pass over {directory} failed ({child.returncode})")
        output.seek(0)
        result: dict[str, float] = json.loads(output.read())
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return result


def archive(data_dir: Path, events: int, contextual: bool) -> Path:
    """The generated archive of ``events`` events, made unless a finished one is there."""
    directory = data_dir / f"{'contextual' if contextual else 'plain'}-{events}"
    mark = directory / ".generated"  # hidden: the reader skips it
    if mark.exists() and mark.read_text() == str(events):
        return directory
    print(f"generating {events:,} events in {directory} ...", file=sys.stderr)
    started = time.perf_counter()
    if directory.exists():
        shutil.rmtree(directory)
    # In a child: this process stays small, and a child's ru_maxrss starts from its
    # parent's high-water mark (Linux carries it across fork and exec).
    command = [sys.executable, str(Path(__file__).with_name("_replay_data.py")), str(directory),
               "--events", str(events), "--seed", "1", *(["--contextual"] if contextual else [])]
    subprocess.run(command, check=True)
    mark.write_text(str(events))
    print(f"  {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return directory


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", default="1000000,10000000",
                        help="comma-separated archive sizes (default 1000000,10000000)")
    parser.add_argument("--contextual", action="store_true",
                        help="archives with context features (longer lines)")
    parser.add_argument("--data-dir", help="where archives are kept between runs "
                                           "(default: a temporary directory, removed)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, directory = args.child
        print(json.dumps(read_pass(directory) if kind == "read" else vw_pass(directory)))
        return 0
    try:
        sizes = sorted(int(size) for size in args.events.split(","))
    except ValueError:
        parser.error(f"--events must be comma-separated integers, got {args.events!r}")
    with tempfile.TemporaryDirectory(prefix="replay-bench-") as scratch:
        data_dir = Path(args.data_dir or scratch)
        directories = {n: archive(data_dir, n, args.contextual) for n in sizes}
        print(f"VW --dsjson over {sizes[0]:,} events ...", file=sys.stderr)
        reference = measure("vw", directories[sizes[0]])
        rows = []
        vw_speed = reference["events"] / reference["seconds"]
        rows.append(["VW --dsjson (reference)", f"{reference['events']:,.0f}",
                     f"{reference['seconds']:.1f}", f"{vw_speed:,.0f}", "1.00",
                     f"{reference['peak_rss_mb']:.0f}"])
        for n in sizes:
            print(f"read_archive over {n:,} events ...", file=sys.stderr)
            result = measure("read", directories[n])
            speed = result["lines"] / result["seconds"]
            rows.append([f"read_archive ({result['events']:,.0f} kept)",
                         f"{result['lines']:,.0f}", f"{result['seconds']:.1f}",
                         f"{speed:,.0f}", f"{speed / vw_speed:.2f}",
                         f"{result['peak_rss_mb']:.0f}"])
    print(_common.run_header("Reading the archive", ["bench/replay.py", *(argv or sys.argv[1:])]))
    print()
    print(_common.markdown_table(
        ["pass", "lines", "seconds", "lines/s", "× VW", "peak RSS (MB)"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
