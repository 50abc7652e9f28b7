"""The replay result in a terminal: the trust audit first, then the baseline and the estimates.

``render`` prints the replay command's result object (see ``cli.replay_format`` for
how it is read). The audit comes first because an estimate is only as good as the
log behind it: a failed calibration or sample-ratio check means the logged
probabilities are wrong, and every weighted estimate below inherits the error.

Nothing is said by colour alone: failures read "FAILED", differences "better" or
"worse", so the text is complete when piped (rich drops the styles when the console
is not a terminal). Every string from the data is a ``Text``, never markup, so a
variant named ``[bold]`` prints as written.

``progress`` is the reading progress bar: on a terminal, for large inputs only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.padding import Padding
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from .replay_format import (
    MISSING,
    Interval,
    candidate_flags,
    count,
    decimals,
    estimators,
    exclusions,
    finite,
    interval,
    mapping,
    number,
    probability,
    sequence,
    time_range,
    utc,
    version_label,
    warnings,
    whole,
)

# Below this the read takes a second or two: a bar would only flicker.
LARGE_INPUT_BYTES = 64 * 1024 * 1024

# Failing rows shown per check; the rest are counted (hundreds of versions can fail).
MAX_FAILING_ROWS = 10

# Wide enough to measure a table's natural width.
_UNBOUNDED = 10_000

_VERDICT_STYLES = {"better": "bold green", "worse": "bold red"}


def render(result: Mapping[str, Any], console: Console) -> None:
    """Print ``result``: title, trust audit, baseline, then candidate × estimator."""
    places = decimals(result)
    for part in (_title(result), _audit(result), _baseline(result, places),
                 _candidates(result, places, console)):
        console.print(part)


@contextmanager
def progress(total_bytes: int, console: Console | None = None, *,
             threshold: int = LARGE_INPUT_BYTES) -> Iterator[Callable[[int], None]]:
    """A context giving ``advance(bytes)``; a progress bar only on a terminal, for large inputs.

    The bar goes to ``console`` (by default stderr, so ``--json`` output on stdout
    stays clean) and disappears when the context exits.
    """
    console = console or Console(stderr=True)
    if not console.is_terminal or total_bytes < threshold:
        yield _ignore
        return
    columns = (TextColumn("reading the archive"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("read", total=total_bytes)
        yield lambda done: bar.advance(task, done)


def _ignore(done: int) -> None:
    """``advance`` when no bar is shown."""


def _title(result: Mapping[str, Any]) -> RenderableType:
    archive = mapping(result.get("archive"))
    experiment = result.get("experiment")
    title = Text("Replay", style="bold")
    title.append(" of experiment " if experiment else " of every experiment")
    if experiment:
        title.append(str(experiment), style="bold")
    facts = [f"{count(whole(archive.get(key)))} {key}" for key in ("files", "lines", "events")]
    files, indexed = whole(archive.get("files")), whole(archive.get("indexed_files"))
    if files and indexed is not None and indexed < files:  # the rest were parsed: slower
        facts[0] += f" ({count(indexed)} indexed)"
    span = time_range(result)
    if span is not None:
        facts.append(f"{utc(span[0])} → {utc(span[1])} UTC")
    lines = [title, Text(" · ".join(facts))]
    paths = [str(path) for path in sequence(archive.get("paths"))]
    if paths:
        lines.append(Text("from " + ", ".join(paths), style="dim"))
    return Group(*lines)


def _audit(result: Mapping[str, Any]) -> RenderableType:
    audit = mapping(result.get("audit"))
    calibration = mapping(audit.get("calibration"))
    sample_ratio = mapping(audit.get("sample_ratio"))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("excluded", _excluded(result))
    grid.add_row("bad lines", _bad_lines(mapping(audit.get("bad_lines"))))
    grid.add_row("default rewards", _default_rewards(mapping(audit.get("default_rewards"))))
    grid.add_row("smallest μ", _smallest(audit.get("smallest_probabilities")))
    grid.add_row("calibration", _check(
        calibration, "experiment × version × variant",
        "the mean of 1{chosen}/μ per variant is 1 when the logged μ are right"))
    grid.add_row("sample ratio", _check(
        sample_ratio, "experiment × version",
        "the choices per variant match Σμ (chi-square)"))
    found = warnings(result)
    if found:
        grid.add_row(Text("warnings", style="bold yellow"),
                     Group(*(Text(f"! {text}", style="yellow") for text in found)))
    # The failing rows go below, full width: nested in the grid they would not fit 80 columns.
    return Padding(Group(Text("Trust audit", style="bold underline"), grid,
                         *_calibration_failures(calibration),
                         *_sample_ratio_failures(sample_ratio)), (1, 0, 0, 0))


def _excluded(result: Mapping[str, Any]) -> RenderableType:
    rows = exclusions(result)
    if not rows:
        return Text("none", style="dim")
    total = sum(n for _, n in rows)
    return Text(f"{total:,} events: " + "; ".join(f"{n:,} {reason}" for reason, n in rows))


def _bad_lines(bad: Mapping[str, Any]) -> RenderableType:
    total = whole(bad.get("count")) or 0
    if total == 0:
        return Text("none", style="dim")
    lines = [Text(f"{total:,} skipped (not valid decision lines)", style="yellow")]
    for example in sequence(bad.get("examples")):
        fields = mapping(example)
        where = f"{fields.get('path', '?')}:{fields.get('line', '?')}"
        line = Text(f"  {where}", style="bold")
        line.append(f"  {fields.get('message', '')}")
        lines.append(line)
    return Group(*lines)


def _default_rewards(defaults: Mapping[str, Any]) -> RenderableType:
    total = whole(defaults.get("count")) or 0
    if total == 0:
        return Text("none: every kept event has an observed reward", style="dim")
    if defaults.get("kept") is False:
        return Text(f"{total:,} events without a reward were dropped")
    return Text(f"{total:,} events got the default reward (no reward came); kept, they "
                f"count as observed")


def _smallest(values: object) -> RenderableType:
    smallest = [finite(value) for value in sequence(values)]
    if not smallest:
        return Text(MISSING, style="dim")
    text = Text("  ".join(probability(value) for value in smallest))
    least = min((value for value in smallest if value is not None), default=None)
    if least is not None and least > 0.0:
        text.append(f"  (largest weight 1/μ = {1.0 / least:,.0f})", style="dim")
    return text


def _failing(check: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    rows = [mapping(row) for row in sequence(check.get("rows"))]
    return rows, [row for row in rows if row.get("ok") is False]


def _check(check: Mapping[str, Any], unit: str, meaning: str) -> Text:
    """One check's verdict line: ok, FAILED with the count of failing rows, or not checked."""
    rows, failing = _failing(check)
    ok = check.get("ok")
    if ok is True:
        text = Text(f"ok: {len(rows):,} rows ({unit})", style="green")
    elif ok is False:
        text = Text(f"FAILED: {len(failing):,} of {len(rows):,} rows ({unit})", style="bold red")
    else:
        return Text("not checked", style="dim")
    text.append(f"; {meaning}", style="dim")
    return text


def _failures_table(title: str) -> Table:
    return Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", title_style="bold red",
                 padding=(0, 1), show_edge=False, border_style="red")


def _calibration_failures(check: Mapping[str, Any]) -> list[RenderableType]:
    _, failing = _failing(check)
    if not failing:
        return []
    table = _failures_table("Calibration: failing rows")
    for name in ("experiment", "version", "variant"):
        table.add_column(name, overflow="fold")
    for name in ("n", "mean 1{chosen}/μ", "95% interval"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in failing[:MAX_FAILING_ROWS]:
        table.add_row(Text(str(row.get("experiment", MISSING))), Text(version_label(row)),
                      Text(str(row.get("variant", MISSING))),
                      count(whole(row.get("n"))), number(finite(row.get("mean")), 3),
                      interval(finite(row.get("lower")), finite(row.get("upper")), 3),
                      style="red")
    return [Text(""), table, *_more(len(failing))]


def _sample_ratio_failures(check: Mapping[str, Any]) -> list[RenderableType]:
    _, failing = _failing(check)
    if not failing:
        return []
    table = _failures_table("Sample ratio: failing rows")
    for name in ("experiment", "version", "variant"):
        table.add_column(name, overflow="fold")
    for name in ("observed", "expected", "χ²", "dof", "p-value"):
        table.add_column(name, justify="right", no_wrap=True)
    for position, row in enumerate(failing[:MAX_FAILING_ROWS]):
        if position:
            table.add_section()
        observed, expected = mapping(row.get("observed")), mapping(row.get("expected"))
        p_value = finite(row.get("p_value"))
        test = [number(finite(row.get("chi2")), 2), count(whole(row.get("dof"))),
                MISSING if p_value is None else f"{p_value:.2g}"]
        for line, variant in enumerate(dict.fromkeys([*observed, *expected])):
            first = line == 0
            table.add_row(Text(str(row.get("experiment", MISSING))) if first else "",
                          Text(version_label(row)) if first else "",
                          Text(str(variant)), count(finite(observed.get(variant))),
                          _expected(finite(expected.get(variant))),
                          *(test if first else ["", "", ""]), style="red")
    return [Text(""), table, *_more(len(failing))]


def _more(failing: int) -> list[Text]:
    hidden = failing - MAX_FAILING_ROWS
    return [Text(f"… and {hidden:,} more failing rows", style="red")] if hidden > 0 else []


def _baseline(result: Mapping[str, Any], places: int) -> RenderableType:
    fields = mapping(result.get("baseline"))
    baseline = Interval.read(fields)
    line = Text("Baseline", style="bold underline")
    line.append(f"  {fields.get('name', 'logging policy')}, its own mean reward on the log: ")
    line.append(number(baseline.value, places), style="bold")
    line.append(f"  95% {interval(baseline.lower, baseline.upper, places)}"
                f"  se {number(baseline.std_error, places)}  n {count(baseline.n)}")
    return Padding(line, (1, 0, 0, 0))


def _candidates(result: Mapping[str, Any], places: int, console: Console) -> RenderableType:
    """One table, candidate × estimator; two (estimates, then differences) on a narrow console."""
    candidates = {str(name): mapping(fields)
                  for name, fields in mapping(result.get("candidates")).items()}
    if not candidates:
        return Padding(Text("No candidates were evaluated.", style="dim"), (1, 0, 0, 0))
    legend = Text("Δ: the candidate's value minus the logging policy's mean, paired per "
                  "event; better/worse when its 95% interval excludes 0.", style="dim")
    # Long names fold within their column rather than push the table into two.
    both = _table(candidates, places, estimates=True, differences=True, name_width=20)
    unbounded = console.options.update_width(_UNBOUNDED)
    if Measurement.get(console, unbounded, both).maximum <= console.width:
        return Padding(Group(both, legend), (1, 0, 0, 0))
    return Padding(Group(_table(candidates, places, estimates=True, differences=False),
                         Text(""),
                         _table(candidates, places, estimates=False, differences=True),
                         legend), (1, 0, 0, 0))


def _table(candidates: Mapping[str, Mapping[str, Any]], places: int, *, estimates: bool,
           differences: bool, name_width: int = 32) -> Table:
    title = "Candidates" if estimates else "Candidates vs the baseline"
    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left",
                  title_style="bold underline", padding=0, show_edge=False)
    table.add_column("candidate", overflow="fold", min_width=12,
                     max_width=name_width)
    table.add_column("est.", no_wrap=True)
    if estimates:
        for name in ("value", "95% interval", "se", "ESS", "n"):
            table.add_column(name, justify="right", no_wrap=True)
    if differences:
        table.add_column("Δ", justify="right", no_wrap=True)
        table.add_column("Δ 95% interval", justify="right", no_wrap=True)
        table.add_column("", no_wrap=True)
    width = len(table.columns)
    for position, (name, fields) in enumerate(candidates.items()):
        if position:
            table.add_section()
        labels = [Text(name, style="bold"),
                  *(Text(f"! {flag}", style="yellow") for flag in candidate_flags(fields))]
        names = estimators(fields)
        paired = mapping(fields.get("vs_baseline"))
        for row, estimator in enumerate(names):
            cells: list[RenderableType] = [labels[row] if row < len(labels) else "", estimator]
            if estimates:
                value = Interval.read(fields.get(estimator))
                cells += [number(value.value, places), interval(value.lower, value.upper, places),
                          number(value.std_error, places), count(value.ess), count(value.n)]
            if differences:
                difference = Interval.read(paired.get(estimator))
                verdict = difference.verdict
                style = _VERDICT_STYLES.get(verdict, "")
                cells += [Text(number(difference.value, places, signed=True), style=style),
                          Text(interval(difference.lower, difference.upper, places,
                                        signed=True), style=style),
                          Text(verdict if verdict in _VERDICT_STYLES else "", style=style)]
            table.add_row(*cells)
        if not names:
            table.add_row(labels[0], MISSING, *[""] * (width - 2))
            labels = labels[1:]
        for label in labels[len(names):]:
            table.add_row(label, *[""] * (width - 1))
    return table


def _expected(value: float | None) -> str:
    return MISSING if value is None else f"{value:,.1f}"
