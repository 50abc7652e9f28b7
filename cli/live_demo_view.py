"""The live demo in a terminal: a rich ``Live`` view, or progress lines, then a summary.

``play_live`` runs a ``LiveDemo``. With ``live`` the view (per variant: traffic share
over the recent window, the probability the router serves now, rolling reward,
accuracy on the pool, the weight on the endpoint; a progress bar) is redrawn at each
of the demo's ticks (4 a second); without it (stdout not a terminal) it prints the
set-up lines, a progress line per quarter of the requests, and the summary.
"""

from __future__ import annotations

import time

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from .live_demo import ENDPOINT, LiveDemo, LiveState

FIRST_LAST = 500  # the summary compares the first and the last this many requests
_BAR = 10


def play_live(demo: LiveDemo, console: Console, *, live: bool) -> LiveState:
    """Run ``demo`` to the end while showing it; return its final state."""
    if live:
        view: Live | None = None

        def ready(state: LiveState) -> None:
            nonlocal view
            for line in setup_lines(state):
                console.print(line)
            view = Live(live_view(state), console=console, auto_refresh=False)
            view.start(refresh=True)

        def tick(state: LiveState) -> None:
            if view is not None:
                view.update(live_view(state), refresh=True)
            announce(state)

        try:
            return demo.run(tick, on_ready=ready)
        finally:
            if view is not None:
                view.stop()

    announced = False

    def announce(state: LiveState) -> None:
        nonlocal announced
        if state.serving and not announced:
            announced = True
            for line in serving_lines(state):
                console.print(line, highlight=False, soft_wrap=True)

    quarter = 0

    def print_ready(state: LiveState) -> None:
        for line in setup_lines(state):
            console.print(line)

    def print_progress(state: LiveState) -> None:
        nonlocal quarter
        total = state.options.requests
        while quarter < 4 and state.done >= total * (quarter + 1) / 4:
            quarter += 1
            console.print(progress_line(state, prefix=f"demo: {quarter * 25:3d}%"))
        if state.finished and quarter < 4:  # stopped by the time limit
            quarter = 4
            console.print(progress_line(state, prefix=f"demo: {state.stop_reason}:"))
        announce(state)

    return demo.run(print_progress, on_ready=print_ready)


def setup_lines(state: LiveState) -> list[Text]:
    """What runs where: the control plane (moto, not AWS), the router, the dashboard."""
    variants = ", ".join(state.variants)
    lines = [Text("bandit-router demo: the live loop on this machine (127.0.0.1 only)",
                  style="bold")]
    if state.moto_url is not None:
        lines.append(Text(f"SageMaker control plane: moto at {state.moto_url} (local, not AWS); "
                          f"endpoint {ENDPOINT!r} with production variants {variants} created "
                          f"through boto3 ({state.endpoint_status}); weights pushed every "
                          f"{state.options.push_interval_s:g} s"))
    else:
        lines.append(Text(f"SageMaker control plane: none: {state.moto_missing}",
                          style="yellow"))
    models = ", ".join(f"{v.name}={v.model}" for v in state.variants.values())
    lines.append(Text(f"router: {state.router_url} (memory://: router, /v1/rewards and the "
                      f"learning loop in one process; Thompson sampling) in front of the "
                      f"simulator's real scikit-learn models: {models}"))
    lines.append(Text(f"dashboard: {state.dashboard_url}"))
    return lines


def serving_lines(state: LiveState) -> list[str]:
    """Where everything is while ``--keep-serving`` holds it up."""
    lines = [f"serving until Ctrl-C: dashboard {state.dashboard_url}",
             f"router {state.router_url} (admin token {state.admin_token}), "
             f"simulator {state.simulator_url}"]
    if state.moto_url is not None:
        lines.append(f"moto (SageMaker control plane) {state.moto_url}")
    return lines


def progress_line(state: LiveState, *, prefix: str = "") -> str:
    rolling = state.rolling_reward()
    reward = "—" if rolling is None else f"{rolling:.3f}"
    return (f"{prefix}{' ' if prefix else ''}{state.done:,}/{state.options.requests:,} requests, "
            f"{state.elapsed_s:.1f} s; reward (last {state.options.window:,}) {reward}; "
            f"learned {state.learned:,}; weight pushes {state.pushes}")


def live_view(state: LiveState) -> RenderableType:
    """The table of variants and the progress bar."""
    options = state.options
    shares = state.shares(state.recent)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("variant", no_wrap=True)
    table.add_column("model", no_wrap=True)
    table.add_column("accuracy", justify="right")
    table.add_column(f"share, last {options.window:,}", no_wrap=True)
    table.add_column("policy p", justify="right")
    table.add_column("reward", justify="right")
    table.add_column("weight", justify="right")
    best = state.best
    for view in state.variants.values():
        share = shares[view.name] if state.recent else 0.0
        filled = round(share * _BAR)
        bar = Text("█" * filled, style="green" if view.name == best else "cyan")
        bar.append("·" * (_BAR - filled), style="dim")
        bar.append(f" {share:4.0%}")
        rolling = view.rolling_reward
        table.add_row(
            Text(view.name, style="bold" if view.name == best else ""), view.model,
            f"{view.accuracy:.3f}", bar, _pct(view.probability),
            "—" if rolling is None else f"{rolling:.3f}", _pct(view.endpoint_weight))
    bar_line = Table.grid(padding=(0, 1))
    rolling = state.rolling_reward()
    bar_line.add_row(ProgressBar(total=options.requests, completed=state.done, width=30),
                     Text(f"{state.done:,}/{options.requests:,} requests · "
                          f"{state.elapsed_s:.1f} s · reward (last {options.window:,}) "
                          f"{'—' if rolling is None else f'{rolling:.3f}'}"))
    status = [f"rewards posted {state.rewards_posted:,}", f"learned {state.learned:,}",
              f"policy snapshot v{state.snapshot_version}"]
    if state.moto_url is not None:
        status.append(_push_status(state))
    if state.stop_reason:
        status.append(f"stopping: {state.stop_reason}")
    notes = Text(" · ".join(status), style="dim")
    legend = Text("policy p: what the router serves now · reward: the variant's last 200 · "
                  "weight: the endpoint's, read back with DescribeEndpoint", style="dim")
    return Group(table, legend, notes, bar_line)


def _push_status(state: LiveState) -> str:
    if state.pushes == 0:
        return f"weight pushes: none yet (every {state.options.push_interval_s:g} s)"
    ago = "" if state.last_push_at is None else \
        f", last {time.monotonic() - state.last_push_at:.0f} s ago"
    errors = f", {state.push_errors} failed" if state.push_errors else ""
    return f"weight pushes: {state.pushes}{ago}{errors}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def summary_table(state: LiveState) -> Table:
    """Per variant: shares of the first and last requests, mean reward, endpoint weight."""
    first = state.history[:FIRST_LAST]
    last = state.history[-FIRST_LAST:]
    table = Table(title=f"Summary after {state.done:,} requests in {state.elapsed_s:.1f} s: "
                        f"accuracy on the pool, traffic share of the first and last "
                        f"requests, requests served, mean reward, the endpoint's weight "
                        f"(DescribeEndpoint)", title_justify="left")
    table.add_column("variant", no_wrap=True)
    table.add_column("model", no_wrap=True)
    table.add_column("acc.", justify="right")
    table.add_column(f"first\n{len(first):,}", justify="right")
    table.add_column(f"last\n{len(last):,}", justify="right")
    table.add_column("n", justify="right")
    table.add_column("reward", justify="right")
    table.add_column("weight", justify="right")
    first_shares, last_shares = state.shares(first), state.shares(last)
    best = state.best
    for view in state.variants.values():
        mean = view.mean_reward
        table.add_row(view.name, view.model, f"{view.accuracy:.3f}",
                      f"{first_shares[view.name]:.1%}", f"{last_shares[view.name]:.1%}",
                      f"{view.served:,}", "—" if mean is None else f"{mean:.3f}",
                      _pct(view.endpoint_weight),
                      style="bold green" if view.name == best else "")
    return table


def summary_lines(state: LiveState) -> list[str]:
    """The run in a few lines, under the summary table."""
    mean = state.mean_reward()
    first = state.history[:FIRST_LAST]
    last = state.history[-FIRST_LAST:]
    lines = [
        f"stopped: {state.stop_reason}; {state.done:,} answered, {state.errors} failed, "
        f"{state.rewards_posted:,} rewards posted (signed), {state.learned:,} learned",
        f"mean reward {'—' if mean is None else f'{mean:.3f}'}; first {len(first):,}: "
        f"{_mean(first)}, last {len(last):,}: {_mean(last)} (best variant alone: "
        f"{state.variants[state.best].accuracy:.3f})",
    ]
    if state.moto_url is not None:
        weights = ", ".join(f"{v.name} {_pct(v.endpoint_weight)}"
                            for v in state.variants.values())
        lines.append(f"weights pushed to endpoint {ENDPOINT!r} on moto ({state.moto_url}): "
                     f"{state.pushes} push{'es' if state.pushes != 1 else ''}"
                     f"{f', {state.push_errors} failed' if state.push_errors else ''}; "
                     f"now {weights}")
    else:
        lines.append(f"weights pushed: none ({state.moto_missing})")
    lines.append("all servers stopped")
    return lines


def _mean(records: list[tuple[str, float]]) -> str:
    return f"{sum(r for _, r in records) / len(records):.3f}" if records else "—"
