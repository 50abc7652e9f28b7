"""The learning loop's speed: learner and joiner throughput, reward → router latency.

    .venv/bin/python bench/loop.py            # the full run (≈ 2.5 min here)
    .venv/bin/python bench/loop.py --quick    # a smoke run (≈ 10 s)

Everything runs on a ``redis-server`` of its own (loopback, free port, stopped by PID
at the end), never on 6379. Each throughput figure is the median over rounds; ours
and its reference alternate within each round (these 2-core machines are shared and
noisy, so compare ratios, not absolute figures, across runs).

1. **Learner** (joined events/s): ``bandit:joined`` pre-filled with N joined events
   (Thompson: 4 arms, no context; ``online_cover`` with cover 3: 20 shared features ×
   4 arms); a fresh ``RedisLearner`` (and a ``MemoryLearner`` over the same events in
   a ``JoinedLog``) restores and steps to the end of the stream, every batch of 1,000
   checkpointed and published. References: for Thompson, XRANGE of the same entries
   in the same batch size (the learner's I/O; so the ratio is its overhead over I/O),
   also shown with the entries parsed; for VW, ``Workspace.learn`` on the same events
   pre-formatted as text (``_common``), in a workspace with our policy's arguments.
   Budgets: ≥ 20,000 events/s (Thompson), ≥ 5,000/s (VW cover), checked on
   ``RedisLearner``.
2. **Joiner** (joined events/s): N decisions then N rewards pre-filled; ``RedisJoiner``
   steps until all N are joined (aggregate ``first``). Reference: the same entries read
   with XRANGE in the joiner's batch size and one joined entry XADDed per pair,
   pipelined per batch (the Redis I/O any joiner does). No budget.
3. **Reward → routers** (seconds): R routers and an ingester in their own processes;
   K rounds of a decision, its reward, and polling until every router serves the new
   snapshot (``_loop_latency``). Budget: p99 ≤ 1.5 s.

Tables are Markdown on stdout (pastes into ``bench/README.md``); progress on stderr.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import _common
import _loop_latency
import _loop_throughput as tp
from _loop_data import N_FEATURES, ONLINE_COVER, THOMPSON, events, vw_examples
from _servers import Fleet, start_redis

THOMPSON_BUDGET = 20_000.0
VW_BUDGET = 5_000.0
LATENCY_BUDGET_S = 1.5


@dataclass(frozen=True, slots=True)
class Plan:
    rounds: int
    thompson_events: int
    vw_events: int
    joiner_events: int
    latency_rounds: int
    routers: int


FULL = Plan(rounds=5, thompson_events=50_000, vw_events=20_000, joiner_events=20_000,
            latency_rounds=200, routers=2)
QUICK = Plan(rounds=1, thompson_events=3_000, vw_events=1_000, joiner_events=2_000,
             latency_rounds=10, routers=2)

Timer = Callable[[], float]


def medians(timers: Sequence[Timer], rounds: int) -> list[float]:
    """Median seconds of each timer; the timers alternate (order reversed every round)."""
    times: list[list[float]] = [[] for _ in timers]
    for r in range(rounds):
        order = list(range(len(timers)))
        if r % 2:
            order.reverse()
        for i in order:
            times[i].append(timers[i]())
    return [statistics.median(t) for t in times]


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}"


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default); inf stays inf."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = q * (len(ordered) - 1)
    lo, hi = math.floor(position), math.ceil(position)
    if lo == hi or ordered[lo] == ordered[hi]:
        return ordered[lo]
    if math.isinf(ordered[hi]):
        return math.inf
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (position - lo)


def ms(seconds: float) -> str:
    return "timeout" if math.isinf(seconds) else f"{seconds * 1000:.0f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def learner_section(url: str, plan: Plan, progress: Callable[[str], None]
                    ) -> tuple[list[list[str]], list[list[str]]]:
    rows, budgets = [], []

    progress(f"learner, thompson: {plan.thompson_events:,} events")
    n = plan.thompson_events
    items = events(n, contextual=False, timestamp=1.7e9)
    tp.run(tp.fill_joined(url, items))
    log = tp.memory_log(items)
    xr, xp, ours, mem = medians([
        lambda: tp.run(tp.xrange_read(url, n, parse=False)),
        lambda: tp.run(tp.xrange_read(url, n, parse=True)),
        lambda: tp.run(tp.redis_learner(url, THOMPSON, n)),
        lambda: tp.run(tp.memory_learner(log, THOMPSON, n)),
    ], plan.rounds)
    rows.append(["thompson", f"{n:,}", "XRANGE, batches of 1,000", rate(n, xr), rate(n, xp),
                 rate(n, ours), f"{ours / xr:.1f}", rate(n, mem)])
    budgets.append(["learner, thompson (RedisLearner)", f"≥ {THOMPSON_BUDGET:,.0f} events/s",
                    f"{n / ours:,.0f} events/s", verdict(n / ours >= THOMPSON_BUDGET)])

    progress(f"learner, online_cover: {plan.vw_events:,} events")
    n = plan.vw_events
    items = events(n, contextual=True, timestamp=1.7e9)
    tp.run(tp.fill_joined(url, items))
    log = tp.memory_log(items)
    examples = vw_examples(items)
    vw, xp, ours, mem = medians([
        lambda: tp.vw_learn(examples),
        lambda: tp.run(tp.xrange_read(url, n, parse=True)),
        lambda: tp.run(tp.redis_learner(url, ONLINE_COVER, n)),
        lambda: tp.run(tp.memory_learner(log, ONLINE_COVER, n)),
    ], plan.rounds)
    rows.append(["online_cover (cover 3)", f"{n:,}", "VW `learn` (text)", rate(n, vw),
                 rate(n, xp), rate(n, ours), f"{ours / vw:.2f}", rate(n, mem)])
    budgets.append(["learner, online_cover (RedisLearner)", f"≥ {VW_BUDGET:,.0f} events/s",
                    f"{n / ours:,.0f} events/s", verdict(n / ours >= VW_BUDGET)])
    return rows, budgets


def joiner_section(url: str, plan: Plan, progress: Callable[[str], None]) -> list[list[str]]:
    n = plan.joiner_events
    progress(f"joiner: {n:,} decisions + {n:,} rewards")
    items = events(n, contextual=False, timestamp=1.7e9)
    reference: list[float] = []
    ours: list[float] = []
    for r in range(plan.rounds):
        tp.run(tp.fill_inputs(url, items))
        if r % 2:
            ours.append(tp.run(tp.redis_joiner(url, n)))
            reference.append(tp.run(tp.raw_join_io(url, n)))
        else:
            reference.append(tp.run(tp.raw_join_io(url, n)))
            ours.append(tp.run(tp.redis_joiner(url, n)))
    ref, mine = statistics.median(reference), statistics.median(ours)
    return [[f"{n:,} + {n:,}", rate(n, ref), rate(n, mine), rate(2 * n, mine),
             f"{mine / ref:.1f}"]]


def latency_section(result: _loop_latency.LatencyResult
                    ) -> tuple[list[list[str]], list[str], float]:
    rounds = result.rounds
    stages = [
        ("reference: reward POST answered (202)", [r.answered for r in rounds]),
        ("reference: one `GET /readyz`", [s for r in rounds for s in r.readyz_s]),
        ("joined (entry in `bandit:joined`)", [r.joined for r in rounds]),
        ("published (`bandit:policy:bench` version)", [r.published for r in rounds]),
        ("first router serving it", [r.first_router for r in rounds]),
        (f"all {result.routers} routers serving it", [r.all_routers for r in rounds]),
    ]
    rows = [[label, ms(percentile(values, 0.5)), ms(percentile(values, 0.99)),
             ms(max(values))] for label, values in stages]
    p99 = percentile([r.all_routers for r in rounds], 0.99)
    budget = ["reward → all routers serving the new snapshot", f"p99 ≤ {LATENCY_BUDGET_S:g} s",
              f"p99 {ms(p99)} ms", verdict(p99 <= LATENCY_BUDGET_S)]
    return rows, budget, p99


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few, small rounds")
    parser.add_argument("--rounds", type=int, help="throughput rounds (median)")
    parser.add_argument("--latency-rounds", type=int, help="reward → router rounds")
    parser.add_argument("--routers", type=int, help="router processes (default 2)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = Plan(args.rounds or plan.rounds, plan.thompson_events, plan.vw_events,
                plan.joiner_events, args.latency_rounds or plan.latency_rounds,
                args.routers or plan.routers)

    def progress(text: str) -> None:
        print(f"{text} ...", file=sys.stderr, flush=True)

    print(_common.run_header("bench/loop.py", ["bench/loop.py", *sys.argv[1:]]))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average at start: {load}; redis-server of its own on loopback; "
          f"median over {plan.rounds} rounds, ours and reference alternating.")
    if args.quick:
        print("\n**Quick run**: small and few rounds; a smoke test, not the benchmark.")

    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        with Fleet(Path(tmp)) as fleet:
            url = start_redis(fleet).url
            learner_rows, budgets = learner_section(url, plan, progress)
            print(f"\n## Learner: joined events/s (4 arms; VW: {N_FEATURES} shared features)\n")
            print(_common.markdown_table(
                ["policy", "events", "reference", "reference (events/s)",
                 "XRANGE + parse (events/s)", "RedisLearner (events/s)",
                 "RedisLearner time ÷ reference", "MemoryLearner (events/s)"], learner_rows),
                flush=True)
            joiner_rows = joiner_section(url, plan, progress)
            print("\n## Joiner on Redis: joined events/s (aggregate `first`)\n")
            print(_common.markdown_table(
                ["decisions + rewards", "reference: XRANGE + pipelined XADD (joined/s)",
                 "RedisJoiner (joined/s)", "RedisJoiner (inputs/s)",
                 "RedisJoiner time ÷ reference"], joiner_rows), flush=True)
        # The latency run starts its own Redis, routers and ingester.
        progress(f"latency: {plan.routers} routers, {plan.latency_rounds} rounds")
        with Fleet(Path(tmp)) as fleet:
            latency = _loop_latency.measure(fleet, routers=plan.routers,
                                            rounds=plan.latency_rounds, progress=progress)
    latency_rows, latency_budget, _ = latency_section(latency)
    budgets.append(latency_budget)
    print(f"\n## Reward → routers serving the new snapshot ({plan.routers} routers, "
          f"{plan.latency_rounds} rounds, ms after the reward POST)\n")
    print(_common.markdown_table(["stage", "p50", "p99", "max"], latency_rows))
    print("\n## Budgets\n")
    print(_common.markdown_table(["what", "budget", "measured", "verdict"], budgets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
