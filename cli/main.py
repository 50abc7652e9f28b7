"""The ``bandit-router`` command: a typer app, and ``main``, its entry point.

``main`` runs the app outside click's standalone mode so that every bad option
ends in one line on stderr (``bandit-router: error: ...``) and exit status 2,
instead of the usage block typer prints.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from .offline_demo import Demo, available_policies, scenarios
from .offline_demo_view import play, summary_table

if TYPE_CHECKING:
    from .live_demo import LiveOptions

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="A multi-armed bandit in front of SageMaker multi-variant endpoints.")


@app.callback()
def _root() -> None:
    """A multi-armed bandit in front of SageMaker multi-variant endpoints."""


def _names(value: str, known: tuple[str, ...], option: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise typer.BadParameter(f"unknown {', '.join(unknown) or '(none given)'}; "
                                 f"choose from {', '.join(known)}", param_hint=f"'{option}'")
    return names


_OFFLINE_ONLY = ("--steps", "--policies", "--problems", "--batch", "--delay")
_LIVE_ONLY = ("--requests", "--duration", "--concurrency", "--rate", "--push-interval",
              "--archive", "--keep-serving")


def _misplaced(given: dict[str, object], offline: bool) -> None:
    """Refuse options of the other mode (one line, exit 2) instead of ignoring them."""
    wrong = _LIVE_ONLY if offline else _OFFLINE_ONLY
    for option in wrong:
        if given.get(option) is not None:
            where = "without --offline" if offline else "with --offline"
            raise typer.BadParameter(f"only applies {where}", param_hint=f"'{option}'")


@app.command()
def demo(
    offline: Annotated[bool, typer.Option(
        "--offline",
        help="Run the in-process simulation of policies side by side instead of the "
             "live service loop.")] = False,
    requests: Annotated[int | None, typer.Option(
        min=50, max=1_000_000, help="Live: requests sent through the router (4000).")] = None,
    duration: Annotated[float | None, typer.Option(
        min=5, max=3600, help="Live: seconds of traffic at most (60).")] = None,
    concurrency: Annotated[int | None, typer.Option(
        min=1, max=64, help="Live: requests in flight (8).")] = None,
    rate: Annotated[float | None, typer.Option(
        min=0, max=100_000, help="Live: requests started per second, 0: no limit (100).")]
    = None,
    push_interval: Annotated[float | None, typer.Option(
        min=1, max=600, help="Live: seconds between weight pushes to the endpoint (5).")]
    = None,
    steps: Annotated[int | None, typer.Option(
        min=100, max=10_000_000, help="Offline: decisions per policy and problem (30000).")]
    = None,
    seed: Annotated[int, typer.Option(
        min=0, help="Seed of problems, models, policies and draws.")] = 0,
    policies: Annotated[str | None, typer.Option(
        help="Offline: comma-separated policies to compare (all available).")] = None,
    problems: Annotated[str | None, typer.Option(
        help="Offline: comma-separated problems: bernoulli, contextual (both).")] = None,
    batch: Annotated[int | None, typer.Option(
        min=1, max=100_000, help="Offline: rewards the learner applies per update (10).")]
    = None,
    delay: Annotated[int | None, typer.Option(
        min=0, max=1_000_000, help="Offline: decisions made before a reward arrives (0).")]
    = None,
    window: Annotated[int | None, typer.Option(
        min=1, max=10_000_000,
        help="Recent steps or requests the shares cover (offline 1000, live 500).")] = None,
    live: Annotated[bool | None, typer.Option(
        "--live/--no-live",
        help="Redraw a live view (default: when stdout is a terminal).")] = None,
    keep_serving: Annotated[bool | None, typer.Option(
        "--keep-serving",
        help="Live: after the traffic, keep the router, simulator and moto up until Ctrl-C.")]
    = None,
    archive: Annotated[Path | None, typer.Option(
        file_okay=False,
        help="Live: directory of the run's DSJSON archive, replayed at the end "
             "(demo-archive/<UTC time>).")] = None,
) -> None:
    """The live loop: moto as SageMaker, the simulator, the router learning from rewards.

    Everything on 127.0.0.1, started and stopped by the demo; a summary at the end.
    --offline runs the in-process simulation of the policies side by side instead.
    """
    _misplaced({"--steps": steps, "--policies": policies, "--problems": problems,
                "--batch": batch, "--delay": delay, "--requests": requests,
                "--duration": duration, "--concurrency": concurrency, "--rate": rate,
                "--push-interval": push_interval, "--archive": archive,
                "--keep-serving": keep_serving}, offline)
    console = Console()
    show = console.is_terminal if live is None else live
    if offline:
        _offline_demo(console, show, steps=30_000 if steps is None else steps, seed=seed,
                      policies=policies, problems=problems or "bernoulli,contextual",
                      batch=10 if batch is None else batch, delay=delay or 0,
                      window=window or 1000)
        return
    _require_simulator()
    from .live_demo import LiveOptions

    if window is not None and window > 100_000:
        raise typer.BadParameter("must be at most 100000 in the live demo",
                                 param_hint="'--window'")
    options = LiveOptions(requests=4000 if requests is None else requests,
                          duration_s=60.0 if duration is None else duration, seed=seed,
                          concurrency=8 if concurrency is None else concurrency,
                          rate=100.0 if rate is None else rate,
                          push_interval_s=5.0 if push_interval is None else push_interval,
                          window=window or 500,
                          archive_dir=str(archive or _demo_archive_dir()),
                          keep_serving=bool(keep_serving))
    _live_demo(console, show, options)


def _demo_archive_dir() -> Path:
    """``demo-archive/<UTC time>``: a fresh directory per run, so a replay reads one run."""
    from datetime import UTC, datetime

    return Path("demo-archive") / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _require_simulator() -> None:
    """Stop with one line, exit 2, when the ``simulator`` extra is not installed.

    The service image leaves scikit-learn (the simulator's models) and httpx (the live
    demo's client) out, so ``simulate`` and the live demo may run where they are
    missing. Importing them here, not at the top, keeps them out of ``serve`` and
    ``ingest``.
    """
    try:
        import httpx  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as exc:
        print(f"bandit-router: error: this command needs {exc.name or 'scikit-learn'}: "
              "install bandit-router[simulator]", file=sys.stderr)
        raise typer.Exit(2) from None


def _live_demo(console: Console, show: bool, options: LiveOptions) -> None:
    from .live_demo import LiveDemo
    from .live_demo_view import play_live, summary_lines, summary_table
    from .local_servers import LocalServerError

    demo = LiveDemo(options)
    # SIGTERM and SIGHUP unwind like Ctrl-C, so that the demo stops moto's server and
    # its own servers before it exits instead of leaving them behind.
    previous = {signum: signal.signal(signum, _interrupt)
                for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        state = play_live(demo, console, live=show)
    except KeyboardInterrupt:
        console.print()
        console.print(summary_table(demo.state))
        console.print(f"interrupted after {demo.state.done:,} requests; all servers stopped")
        raise typer.Exit(130) from None
    except LocalServerError as exc:  # the demo's own errors (DemoError) included
        print(f"bandit-router: error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    console.print()
    console.print(summary_table(state))
    for line in summary_lines(state):
        console.print(line, highlight=False)
    if options.archive_dir is not None:
        from .demo_replay import replay_lines

        for line in replay_lines(options.archive_dir, list(state.variants)):
            console.print(line, highlight=False, soft_wrap=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _offline_demo(console: Console, show: bool, *, steps: int, seed: int,
                  policies: str | None, problems: str, batch: int, delay: int,
                  window: int) -> None:
    chosen_policies = None
    if policies is not None:
        chosen_policies = _names(policies, available_policies(), "--policies")
    chosen_problems = _names(problems, tuple(scenarios(seed)), "--problems")
    simulation = Demo(steps=steps, seed=seed, batch=batch, delay=delay, window=window,
                      policies=chosen_policies, problems=chosen_problems)
    try:
        elapsed = play(simulation, console, live=show)
    except KeyboardInterrupt:
        console.print()
        console.print(summary_table(simulation))
        console.print(f"interrupted after {simulation.done:,} of {steps:,} steps")
        raise typer.Exit(130) from None
    console.print()
    console.print(summary_table(simulation))
    lanes = len(simulation.lanes)
    console.print(f"{lanes} lane{'s' if lanes != 1 else ''} × {steps:,} steps in {elapsed:.1f} s "
                  f"(seed {seed}, batch {batch}, delay {delay})")


ConfigFile = Annotated[Path, typer.Option("--config", help="The YAML configuration file.",
                                          exists=True, dir_okay=False, readable=True)]


@app.command()
def serve(
    config: ConfigFile,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the router: SageMaker-compatible invocations routed by the bandit."""
    from .serve import serve as run  # the service stack loads only for this command

    run(config, host, port, log_level)


@app.command()
def ingest(
    config: ConfigFile,
    host: Annotated[str, typer.Option(help="Address the reward webhook listens on.")]
    = "127.0.0.1",
    webhook_port: Annotated[int, typer.Option(min=1, max=65535,
                                              help="Port of POST /v1/rewards.")] = 8081,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the reward webhook, joiner, learners, weight pushers and archiver (Redis store)."""
    from .ingest import ingest as run

    run(config, host, webhook_port, log_level)


@app.command()
def simulate(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8090,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    variants: Annotated[str | None, typer.Option(
        help="Variants as NAME=MODEL[:option=value...], comma-separated, e.g. "
             "'Variant1=logistic,Variant2=tree:latency=5:error=0.1'. Models: logistic, tree, "
             "naive_bayes, forest, stump; options: weight, latency, jitter (ms), error, kind "
             "(model, throttle, unavailable, internal, not_ready).")] = None,
    endpoint: Annotated[str, typer.Option(help="The endpoint name it answers to.")]
    = "bandit-sim",
    seed: Annotated[int, typer.Option(min=0, help="Seed of data, models and routing.")] = 0,
) -> None:
    """Serve a SageMaker-Runtime-compatible endpoint with real scikit-learn models."""
    _require_simulator()
    from simulator import parse_variants
    from simulator import serve as run

    try:
        spec = parse_variants(variants, endpoint=endpoint, seed=seed) if variants else \
            parse_variants(endpoint=endpoint, seed=seed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--variants'") from None
    names = ", ".join(variant.name for variant in spec.variants)
    typer.echo(f"simulator: endpoint {endpoint!r} with {names} on http://{host}:{port}",
               err=True)
    run(host, port, spec)


@app.command("check-config")
def check_config(
    file: Annotated[Path, typer.Argument(help="The YAML configuration file.")],
) -> None:
    """Validate a config, naming the path of every bad key; exit 2 on error."""
    from common.check_config import check_config as check

    code = check(file)
    if code:
        raise typer.Exit(code)


@app.command()
def replay(
    paths: Annotated[list[str], typer.Argument(
        help="Archive files, directories, globs or s3://bucket/prefix (gzip too).",
        show_default=False)],
    policy: Annotated[list[str], typer.Option(
        "--policy", help="A candidate: a type name, inline JSON or @file.yaml, optionally "
                         "NAME=SPEC; repeat for several.", show_default=False)],
    experiment: Annotated[str | None, typer.Option(
        help="The experiment to evaluate (needed when the archive holds several).")] = None,
    since: Annotated[str | None, typer.Option(
        help="Only decisions at or after this time (Unix seconds or ISO 8601, UTC).")] = None,
    until: Annotated[str | None, typer.Option(
        help="Only decisions before this time (Unix seconds or ISO 8601, UTC).")] = None,
    estimators: Annotated[str, typer.Option(
        help="Comma-separated estimators: ips, snips, dm, dr.")] = "ips,snips,dm,dr",
    clip: Annotated[float | None, typer.Option(
        help="Cap importance weights at W > 0 (less variance, biased estimates).")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print one JSON object instead of the tables.")] = False,
    report: Annotated[Path | None, typer.Option(
        help="Also write a self-contained HTML report to this file.", dir_okay=False)]
    = None,
    on_bad_line: Annotated[str, typer.Option(
        help="skip (count and go on) or fail (stop with exit 2) at a bad line.")] = "skip",
    drop_default_rewards: Annotated[bool, typer.Option(
        "--drop-default-rewards",
        help="Leave out decisions whose reward was the configured default.")] = False,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit 1 when the log fails its calibration or sample-ratio "
                         "check.")] = False,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the candidates.")] = 0,
) -> None:
    """What candidate policies would have earned on the logged decisions, with intervals.

    Prints the trust audit of the log first, then per candidate IPS, SNIPS, DM and DR
    with 95% intervals and the difference from the logging policy's own mean reward.
    """
    from bandit.ope import EvaluationError

    from .replay import (
        EXIT_UNTRUSTED,
        ReplayOptions,
        ReplayUsageError,
        parse_candidates,
        parse_estimators,
        parse_time,
        run,
        untrusted,
    )

    if on_bad_line not in ("skip", "fail"):
        raise typer.BadParameter("must be skip or fail", param_hint="'--on-bad-line'")
    if clip is not None and not clip > 0:  # also refuses NaN
        raise typer.BadParameter(f"must be a positive weight, got {clip}", param_hint="'--clip'")
    console = Console(stderr=as_json)
    try:
        options = ReplayOptions(
            paths=tuple(paths), candidates=tuple(parse_candidates(policy)),
            experiment=experiment,
            since=None if since is None else parse_time(since, "--since"),
            until=None if until is None else parse_time(until, "--until"),
            estimators=parse_estimators(estimators), clip=clip,
            drop_default_rewards=drop_default_rewards, on_bad_line=on_bad_line, seed=seed)
        from .replay_view import progress, render

        document = run(options, progress=progress)
    except (ReplayUsageError, EvaluationError) as exc:
        print(f"bandit-router: error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    if as_json:
        import json

        print(json.dumps(document, allow_nan=False))
        if console.is_terminal:  # the tables for the person watching, the JSON for the pipe
            render(document, console)
    else:
        render(document, Console())
    if report is not None:
        from .replay_report import ReportError, write_report

        try:
            write_report(document, report)
        except ReportError as exc:
            print(f"bandit-router: error: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None
        if not as_json:
            Console().print(f"report: {report}")
    if strict and untrusted(document):
        raise typer.Exit(EXIT_UNTRUSTED)


@app.command("archive-index")
def archive_index(
    paths: Annotated[list[str], typer.Argument(
        help="Archive files, directories or globs (local; gzip too).", show_default=False)],
    force: Annotated[bool, typer.Option(
        "--force", help="Rewrite every index, valid or not.")] = False,
    check: Annotated[bool, typer.Option(
        "--check", help="Write nothing: list the files without a valid index; exit 1 if "
                        "there are any.")] = False,
) -> None:
    """Write the index beside each archive file that lacks a valid one, so replay reads
    it without parsing (the archiver indexes the files it writes)."""
    from bandit.ope import EvaluationError

    from .archive_index import ArchiveIndexUsageError, run

    if force and check:
        raise typer.BadParameter("cannot be combined with --force", param_hint="'--check'")
    try:
        code = run(paths, force=force, check=check)
    except (ArchiveIndexUsageError, EvaluationError) as exc:
        print(f"bandit-router: error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    if code:
        raise typer.Exit(code)


def main() -> None:
    """Entry point of the ``bandit-router`` console script."""
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:  # usage errors: bad options, unknown commands
        # Without arguments typer prints the help, then raises with an empty message.
        message = exc.format_message() or "missing command"
        print(f"bandit-router: error: {message}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
