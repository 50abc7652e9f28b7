"""The demo in a terminal: a live table per scenario, a progress bar, then a summary.

``play`` drives a ``Demo`` to the end. With ``live`` it redraws a rich ``Live``
view ``refresh_per_second`` times a second between chunks of steps (one
thread: the lanes advance level and the view never reads a lane mid-step);
without it (stdout not a terminal) it prints a progress line per quarter and
the final tables once.
"""

from __future__ import annotations

import time

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.padding import Padding
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .offline_demo import Demo, Lane, Scenario

# Steps per lane between looks at the clock: a round of 10 lanes took ~50 ms
# (48 µs per lane-step on the default demo), short beside a 250 ms frame.
CHUNK_STEPS = 100


def play(demo: Demo, console: Console, *, live: bool, refresh_per_second: float = 4.0) -> float:
    """Run ``demo`` to the end while showing it; return the elapsed seconds."""
    start = time.perf_counter()
    if live:
        with Live(_live_view(demo, 0.0), console=console, auto_refresh=False) as view:
            next_frame = start
            while not demo.finished:
                demo.advance(CHUNK_STEPS)
                now = time.perf_counter()
                if now >= next_frame or demo.finished:
                    view.update(_live_view(demo, now - start), refresh=True)
                    next_frame = now + 1.0 / refresh_per_second
        return time.perf_counter() - start
    quarter = 0
    while not demo.finished:
        demo.advance(CHUNK_STEPS)
        while quarter < 4 and demo.done >= demo.steps * (quarter + 1) / 4:
            quarter += 1
            console.print(f"demo: {quarter * 25:3d}%  {demo.done:,}/{demo.steps:,} steps "
                          f"per lane, {time.perf_counter() - start:.1f} s")
    elapsed = time.perf_counter() - start
    console.print(*_views(demo))
    return elapsed


def summary_table(demo: Demo) -> Table:
    """Per lane: share of the best arm (recent window), mean reward, total regret."""
    table = Table(title=f"Summary after {demo.done:,} steps", title_justify="left")
    table.add_column("problem")
    table.add_column("policy")
    table.add_column(f"best arm, last {demo.window:,}", justify="right")
    table.add_column("mean reward", justify="right")
    table.add_column("regret", justify="right")
    rows = demo.summary()
    least_regret: dict[str, float] = {}
    for row in rows:
        least_regret[row.scenario] = min(row.regret, least_regret.get(row.scenario, row.regret))
    for i, row in enumerate(rows):
        if i and row.scenario != rows[i - 1].scenario:
            table.add_section()
        style = "bold green" if row.regret == least_regret[row.scenario] else ""
        table.add_row(row.scenario, row.policy, f"{row.best_share:.1%}",
                      f"{row.mean_reward:.3f}", f"{row.regret:,.1f}", style=style)
    return table


def _live_view(demo: Demo, elapsed: float) -> RenderableType:
    bar = ProgressBar(total=demo.steps, completed=demo.done, width=40)
    status = Text(f" {demo.done:,}/{demo.steps:,} steps per lane · {elapsed:.1f} s")
    line = Table.grid()
    line.add_row(bar, status)
    return Group(*_views(demo), line)


def _views(demo: Demo) -> list[RenderableType]:
    return [*(_scenario_view(demo, scenario) for scenario in demo.scenarios), _legend(demo)]


def _scenario_view(demo: Demo, scenario: Scenario) -> RenderableType:
    lanes = [lane for lane in demo.lanes if lane.scenario is scenario]
    arms = scenario.problem.arms
    # No padding: the box's blank separator is the only gap, so 4 arms and 4
    # figures fit an 80-column terminal.
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=0)
    table.add_column("policy")
    for arm in arms:
        table.add_column(arm, justify="right")
    for name in ("best", "recent", "mean", "regret"):
        table.add_column(name, justify="right")
    for lane in lanes:
        if lane.simulation.done == 0:
            table.add_row(lane.policy, *["—"] * (len(arms) + 4))
            continue
        progress = lane.simulation.progress()
        shares = [Text(f"{s:.0%}", style="bold" if s >= 0.5 else "dim" if s < 0.05 else "")
                  for s in progress.shares.tolist()]
        table.add_row(lane.policy, *shares, f"{progress.best_share:.0%}",
                      f"{progress.recent_reward:.3f}", f"{progress.mean_reward:.3f}",
                      f"{progress.regret:,.0f}")
    heading = Text(scenario.title, style="bold")
    return Padding(Group(heading, Text(_references(lanes[0]), style="dim"), table), (1, 0, 0, 0))


def _legend(demo: Demo) -> Text:
    return Text(f"arm columns: traffic share; best: share on the step's best arm; recent: "
                f"mean reward (all three over the last {demo.window:,} steps); mean: mean "
                f"reward; regret: expected, summed", style="dim")


def _references(lane: Lane) -> str:
    # Every lane of a scenario sees the same contexts, so any lane's means serve.
    if lane.simulation.done == 0:
        return "…"
    result = lane.simulation.result()
    fixed = result.arm_rewards
    best = int(fixed.argmax())
    line = f"best fixed arm {result.arms[best]}: {fixed[best]:.3f}"
    if result.oracle_reward > fixed[best] + 1e-9:
        line += f" · per-context oracle: {result.oracle_reward:.3f}"
    return line
