"""Replaying the decision archive: candidates scored per second against VW, and flat memory.

    .venv/bin/python bench/replay.py                        # 1,000,000 events (+ 10,000,000)
    .venv/bin/python bench/replay.py --quick                # a smoke run (≈ 20 s)
    .venv/bin/python bench/replay.py --data-dir /tmp/replay-data   # keep (and reuse) archives

The archive comes from ``_replay_data --contextual`` (a Thompson logger's DSJSON with
three numeric features and a plan per decision, ~64 MB files, seed 1, each file with
the index the archiver writes beside it), so the VW candidate has something to learn.
One archive of ``--events`` events serves every row; a second one, ten times larger,
serves the memory check alone. Archives are kept under ``--data-dir`` between runs,
and read once before any timing so every pass reads from the page cache.

Rows (each pass in a subprocess of its own: its wall time, and its peak RSS from
``os.wait4``, which is that child's alone; this process imports neither numpy nor
bandit, because a child's ``ru_maxrss`` starts at its parent's high-water mark):

- reference: VW's own ``--dsjson`` driver, ``--cb_explore_adf --dsjson -d FILE
  --quiet``, one workspace per file (``Workspace(...).run_parser()``): parse, predict
  and learn every line in C++;
- ``static``, ``thompson`` and VW ``--squarecb`` candidates, each
  ``read_archive`` → ``replay`` through the public API (VW reads the lines:
  ``read_archive(lines=True)``); VW's own driver with the candidate's own arguments
  (``_common.vw_command`` plus ``--dsjson -d FILE``) is the VW row's reference;
- ``read_archive`` alone on both archives, and the ``static`` candidate on the large one;
- for transparency, the ``static`` candidate once more with the indexes ignored
  (``read_archive(use_index=False)``: every line parsed), once.

Throughput is archive lines per second (VW counts every line as an example; the
reader reads and checks every line and keeps the events that are not targeted).
The fast rows run ``--rounds`` times, ours and its reference alternating, and show
the median; ``thompson`` runs once. Budgets (the replay command's): ``static`` ≥ 5×
and ``thompson`` ≥ 1× the reference's lines/s; the VW candidate ≤ 1.5× the time of
VW's own pass with the same arguments; peak RSS on the large archive ≤ 1.2× on the
small one. Then, unless ``--no-profile``, each candidate's pass over the first
``--profile-events`` events under cProfile (``_replay_profile``): where its time
goes per event.

Tables are Markdown on stdout (pastes into ``bench/README.md``); progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common

REFERENCE_ARGS = "--cb_explore_adf --dsjson --quiet"
CANDIDATES: dict[str, dict[str, Any]] = {
    "static": {"type": "static"},
    "thompson": {"type": "thompson"},
    "vw --squarecb": {"type": "vw", "flags": "--squarecb"},
}
STATIC_BUDGET = 5.0      # × the reference's lines/s
THOMPSON_BUDGET = 1.0    # × the reference's lines/s
VW_BUDGET = 1.5          # × the time of VW's own pass with the candidate's arguments
RSS_BUDGET = 1.2         # peak RSS on the large archive ÷ on the small one
READ_BLOCK = 64 << 20


@dataclass(frozen=True, slots=True)
class Plan:
    events: int
    large_events: int
    rounds: int
    profile_events: int


FULL = Plan(events=1_000_000, large_events=10_000_000, rounds=3, profile_events=65_536)
QUICK = Plan(events=20_000, large_events=200_000, rounds=1, profile_events=5_000)


# -- the passes, each in its own child process -------------------------------------------


def vw_pass(directory: str, args: str) -> dict[str, Any]:
    """VW's own DSJSON driver with ``args`` over every file of ``directory``."""
    import vowpalwabbit

    started = time.perf_counter()
    examples = 0.0
    for path in sorted(Path(directory).glob("*.json")):
        workspace = vowpalwabbit.Workspace(f"{args} -d {path}")
        workspace.run_parser()
        examples += workspace.get_weighted_examples()
        workspace.finish()
    return {"seconds": time.perf_counter() - started, "lines": examples, "events": examples,
            "args": args}


def candidate_args(name: str) -> str:
    """VW's arguments for the VW candidate ``name`` (as the policy runs VW), plus ``--dsjson``."""
    from bandit import make_policy

    policy = make_policy(CANDIDATES[name], ["Variant1", "Variant2"], 0)  # replay's seed
    return f"{_common.vw_command(policy)} --dsjson"


def read_pass(directory: str) -> dict[str, Any]:
    """One ``read_archive`` pass over ``directory``, nothing else."""
    from bandit.ope import read_archive

    started = time.perf_counter()
    archive = read_archive(directory)
    events = sum(len(chunk) for chunk in archive)
    return {"seconds": time.perf_counter() - started, "lines": archive.stats.lines,
            "events": events}


def replay_pass(directory: str, name: str, use_index: bool = True) -> dict[str, Any]:
    """``read_archive`` → ``replay`` of candidate ``name``, reading what it needs."""
    from bandit.ope import Candidate, read_archive, replay

    started = time.perf_counter()
    candidate = Candidate(name, CANDIDATES[name])
    archive = read_archive(directory, lines=candidate.needs_lines,
                           contexts=candidate.needs_contexts, use_index=use_index)
    result = replay(archive, {name: candidate})
    seconds = time.perf_counter() - started
    found = result.candidates[name]
    return {"seconds": seconds, "lines": archive.stats.lines, "events": result.events,
            "indexed_files": archive.stats.indexed_files,
            "estimates": {key: [e.value, e.lower, e.upper]
                          for key, e in [("baseline", result.baseline),
                                         ("ips", found.estimates["ips"]),
                                         ("dr", found.estimates["dr"]),
                                         ("dr_vs_baseline", found.vs_baseline["dr"])]}}


def child(kind: str, directory: str, name: str, events: int) -> dict[str, Any]:
    """The pass ``kind`` (run by ``measure`` in a child process)."""
    if kind == "vw":
        return vw_pass(directory, REFERENCE_ARGS)
    if kind == "vw-same":
        return vw_pass(directory, candidate_args(name))
    if kind == "read":
        return read_pass(directory)
    if kind == "replay":
        return replay_pass(directory, name)
    if kind == "replay-json":
        return replay_pass(directory, name, use_index=False)
    if kind == "profile":
        import _replay_profile

        return _replay_profile.profile(directory, name, CANDIDATES[name], events)
    raise SystemExit(f"unknown pass {kind!r}")


def measure(kind: str, directory: Path, name: str = "", events: int = 0) -> dict[str, Any]:
    """Run one pass in a child process; its result and its own peak RSS (MB)."""
    command = [sys.executable, __file__, "--child", kind, str(directory), name, str(events)]
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(command, stdout=output)
        # wait4, not RUSAGE_CHILDREN: that is the maximum over every child so far.
        _, status, usage = os.wait4(process.pid, 0)
        returncode = os.waitstatus_to_exitcode(status)
        if returncode:
            raise SystemExit(f"{kind} {name} pass over {directory} failed ({returncode})")
        output.seek(0)
        result: dict[str, Any] = json.loads(output.read())
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return result


# -- the archives ---------------------------------------------------------------------------


def archive(data_dir: Path, events: int) -> Path:
    """The generated archive of ``events`` events, made unless a finished one is there."""
    directory = data_dir / f"contextual-{events}"
    mark = directory / ".generated"  # hidden: the reader skips it
    # Archives from before the indexes (their mark says only the count) are made again.
    done = f"{events} indexed"
    if not (mark.exists() and mark.read_text() == done):
        print(f"generating {events:,} events in {directory} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        if directory.exists():
            for path in directory.iterdir():
                path.unlink()
        # In a child: this process stays small (see the module docstring).
        command = [sys.executable, str(Path(__file__).with_name("_replay_data.py")),
                   str(directory), "--events", str(events), "--seed", "1", "--contextual"]
        subprocess.run(command, check=True)
        mark.write_text(done)
        print(f"  {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return directory


def warm(directory: Path) -> None:
    """Read every file and index once, so every timed pass reads from the page cache."""
    for path in sorted([*directory.glob("*.json"), *directory.glob("*.json.index")]):
        with path.open("rb") as stream:
            while stream.read(READ_BLOCK):
                pass


# -- the tables -----------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def rate(result: dict[str, Any]) -> float:
    return float(result["lines"]) / float(result["seconds"])


def median_result(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median time (the upper one of two), with the largest peak RSS."""
    ordered = sorted(results, key=lambda r: float(r["seconds"]))
    chosen = dict(ordered[len(ordered) // 2])
    chosen["peak_rss_mb"] = max(float(r["peak_rss_mb"]) for r in results)
    chosen["rounds"] = [float(r["seconds"]) for r in results]
    return chosen


def alternate(first: Callable[[], dict[str, Any]], second: Callable[[], dict[str, Any]],
              rounds: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both passes ``rounds`` times, their order reversed every other round; median rounds."""
    a: list[dict[str, Any]] = []
    b: list[dict[str, Any]] = []
    for r in range(rounds):
        if r % 2:
            b.append(second())
            a.append(first())
        else:
            a.append(first())
            b.append(second())
    return median_result(a), median_result(b)


def row(label: str, result: dict[str, Any], speed_vs: float | None = None,
        time_vs: float | None = None) -> list[str]:
    rounds = " / ".join(f"{s:.1f}" for s in result.get("rounds", [result["seconds"]]))
    return [label, f"{result['lines']:,.0f}", f"{result['events']:,.0f}", rounds,
            f"{rate(result):,.0f}",
            "-" if speed_vs is None else f"{rate(result) / speed_vs:.2f}",
            "-" if time_vs is None else f"{result['seconds'] / time_vs:.2f}",
            f"{result['peak_rss_mb']:.0f}"]


def interval(values: Sequence[float]) -> str:
    value, lower, upper = values
    return f"{value:.4f} [{lower:.4f}, {upper:.4f}]"


def profile_tables(name: str, result: dict[str, Any], seconds_per_event: float) -> str:
    """A candidate's profile: replay's steps, then its heaviest functions, in µs per event."""
    events, total = int(result["events"]), float(result["total"])
    scale = 1e6 / events
    steps = [[label, f"{seconds * scale:.1f}", f"{seconds / total:.0%}"]
             for label, seconds in result["steps"]]
    rest = total - sum(seconds for _, seconds in result["steps"])
    steps.append(["the rest of `replay`", f"{rest * scale:.1f}", f"{rest / total:.0%}"])
    steps.append([f"total under cProfile (without: {seconds_per_event * 1e6:.1f})",
                  f"{total * scale:.1f}", "100%"])
    functions = [[label, f"{seconds * scale:.1f}", f"{seconds / total:.0%}"]
                 for label, seconds in result["functions"]]
    return "\n\n".join([
        f"### {name}: where the time goes ({events:,} events under cProfile)",
        _common.markdown_table(["step (inclusive)", "µs / event", "share"], steps),
        _common.markdown_table(["heaviest functions (own time)", "µs / event", "share"],
                               functions)])


# -- the run --------------------------------------------------------------------------------


def run(plan: Plan, data_dir: Path, profile: bool, quick: bool, argv: Sequence[str]) -> None:
    def progress(text: str) -> None:
        print(f"{text} ...", file=sys.stderr, flush=True)

    small = archive(data_dir, plan.events)
    large = archive(data_dir, plan.large_events)
    print(_common.run_header("bench/replay.py", ["bench/replay.py", *argv]))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average at start: {load}; archive: `_replay_data --contextual --seed 1`, "
          f"{plan.events:,} events; rounds: {plan.rounds} (thompson: 1), median shown, "
          "ours and reference alternating; each pass in a child process of its own.")
    if quick:
        print("\n**Quick run**: a smoke test, not the benchmark; an archive smaller than one "
              "64 MB file never fills the reader's blocks and chunks, so its peak RSS is not "
              "the large archive's baseline.")
    warm(small)

    progress(f"VW --dsjson and static over {plan.events:,} events, {plan.rounds} rounds")
    reference, static = alternate(lambda: measure("vw", small),
                                  lambda: measure("replay", small, "static"), plan.rounds)
    vw_name = "vw --squarecb"
    progress(f"VW --dsjson with the candidate's flags and the {vw_name} candidate")
    same, vw = alternate(lambda: measure("vw-same", small, vw_name),
                         lambda: measure("replay", small, vw_name), plan.rounds)
    progress(f"thompson over {plan.events:,} events (once)")
    thompson = measure("replay", small, "thompson")
    progress(f"static over {plan.events:,} events, the indexes ignored (once)")
    unindexed = measure("replay-json", small, "static")
    speed = rate(reference)
    rows = [
        row(f"reference: VW `{REFERENCE_ARGS}`", reference, speed),
        row("static: read_archive + replay", static, speed),
        row("static, JSON only (index ignored)", unindexed, speed),
        row("thompson: read_archive + replay", thompson, speed),
        row(f"reference: VW `{same['args']}`", same, speed,
            same["seconds"]),
        row(f"{vw_name}: read_archive(lines=True) + replay", vw, speed, same["seconds"]),
    ]
    print(f"\n## Replay over {plan.events:,} events\n")
    print(_common.markdown_table(
        ["pass", "lines", "events kept", "seconds (rounds)", "lines/s", "× VW's lines/s",
         "time ÷ its reference", "peak RSS (MB)"], rows), flush=True)
    print(f"\nFiles read through their index: static {static['indexed_files']}, "
          f"the same with the indexes ignored {unindexed['indexed_files']}.")
    print("\nWhat the candidates found (mean reward per decision, 95 % intervals; "
          f"the logging policy's own: {interval(static['estimates']['baseline'])}):\n")
    print(_common.markdown_table(
        ["candidate", "IPS", "DR", "DR − logging policy"],
        [[name, interval(r["estimates"]["ips"]), interval(r["estimates"]["dr"]),
          interval(r["estimates"]["dr_vs_baseline"])]
         for name, r in (("static", static), ("thompson", thompson), (vw_name, vw))]),
        flush=True)

    warm(large)
    memory: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for label, kind, name in (("read_archive alone", "read", ""),
                              ("static: read_archive + replay", "replay", "static")):
        progress(f"{label} over {plan.events:,} and {plan.large_events:,} events")
        memory.append((label, measure(kind, small, name), measure(kind, large, name)))
    print(f"\n## Peak memory: {plan.events:,} against {plan.large_events:,} events\n")
    print(_common.markdown_table(
        ["pass", "events", "seconds", "lines/s", "peak RSS (MB)", f"{plan.events:,} events",
         "ratio"],
        [[label, f"{big['events']:,.0f}", f"{big['seconds']:.1f}", f"{rate(big):,.0f}",
          f"{big['peak_rss_mb']:.0f}", f"{one['peak_rss_mb']:.0f}",
          f"{big['peak_rss_mb'] / one['peak_rss_mb']:.2f}"] for label, one, big in memory]),
        flush=True)

    budgets = [
        ["static: lines/s ÷ VW `--dsjson`'s", f"≥ {STATIC_BUDGET:g}×",
         f"{rate(static):,.0f} ÷ {speed:,.0f} = {rate(static) / speed:.2f}×",
         verdict(rate(static) >= STATIC_BUDGET * speed)],
        ["thompson: lines/s ÷ VW `--dsjson`'s", f"≥ {THOMPSON_BUDGET:g}×",
         f"{rate(thompson):,.0f} ÷ {speed:,.0f} = {rate(thompson) / speed:.3f}×",
         verdict(rate(thompson) >= THOMPSON_BUDGET * speed)],
        [f"{vw_name}: time ÷ VW's own pass with its flags", f"≤ {VW_BUDGET:g}×",
         f"{vw['seconds']:.1f} ÷ {same['seconds']:.1f} s = "
         f"{vw['seconds'] / same['seconds']:.2f}×",
         verdict(vw["seconds"] <= VW_BUDGET * same["seconds"])],
    ]
    for label, one, big in memory:
        ratio = big["peak_rss_mb"] / one["peak_rss_mb"]
        budgets.append([f"{label}: peak RSS, {plan.large_events:,} ÷ {plan.events:,} events",
                        f"≤ {RSS_BUDGET:g}×",
                        f"{big['peak_rss_mb']:.0f} ÷ {one['peak_rss_mb']:.0f} MB = {ratio:.2f}×",
                        verdict(ratio <= RSS_BUDGET)])
    print("\n## Budgets\n")
    print(_common.markdown_table(["what", "budget", "measured", "verdict"], budgets), flush=True)

    if profile:
        print("\n## Where the time goes\n")
        print(f"Each candidate's pass over the first {plan.profile_events:,} events under "
              "cProfile; µs per event (cProfile slows per-call Python most: compare shares).")
        for name, result in (("static", static), ("thompson", thompson), (vw_name, vw)):
            progress(f"profile: {name} over {plan.profile_events:,} events")
            found = measure("profile", small, name, plan.profile_events)
            print()
            print(profile_tables(name, found, float(result["seconds"]) / float(result["events"])),
                  flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, help="events in the archive every row reads "
                                                    "(default 1,000,000)")
    parser.add_argument("--large-events", type=int,
                        help="events in the memory check's archive (default 10 × --events)")
    parser.add_argument("--rounds", type=int, help="rounds of the fast rows (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run: {QUICK.events:,} and {QUICK.large_events:,} events")
    parser.add_argument("--no-profile", action="store_true",
                        help="skip the candidates' profiles")
    parser.add_argument("--profile-events", type=int,
                        help="events each profile covers (default 65,536)")
    parser.add_argument("--data-dir", help="where archives are kept between runs "
                                           "(default: a temporary directory, removed)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, directory, name, events = args.child
        print(json.dumps(child(kind, directory, name, int(events))))
        return 0
    base = QUICK if args.quick else FULL
    events = args.events or base.events
    plan = Plan(events=events,
                large_events=args.large_events or (base.large_events if args.events is None
                                                   else 10 * events),
                rounds=args.rounds or base.rounds,
                profile_events=args.profile_events or base.profile_events)
    for flag, value in (("--events", plan.events), ("--large-events", plan.large_events),
                        ("--rounds", plan.rounds), ("--profile-events", plan.profile_events)):
        if value < 1:
            parser.error(f"{flag} must be a positive integer, got {value}")
    if plan.large_events <= plan.events:
        parser.error(f"--large-events ({plan.large_events:,}) must be more than --events "
                     f"({plan.events:,})")
    with tempfile.TemporaryDirectory(prefix="replay-bench-") as scratch:
        data_dir = Path(args.data_dir or scratch)
        data_dir.mkdir(parents=True, exist_ok=True)
        run(plan, data_dir, not args.no_profile, args.quick,
            sys.argv[1:] if argv is None else argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
