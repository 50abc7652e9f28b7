"""The ``bandit-router`` command: a typer app, and ``main``, its entry point.

``main`` runs the app outside click's standalone mode so that every bad option
ends in one line on stderr (``bandit-router: error: ...``) and exit status 2,
instead of the usage block typer prints.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from .demo import Demo, available_policies, scenarios
from .demo_view import play, summary_table

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


@app.command()
def demo(
    steps: Annotated[int, typer.Option(min=100, max=10_000_000,
                                       help="Decisions per policy and problem.")] = 30_000,
    seed: Annotated[int, typer.Option(min=0, help="Seed of problems, policies and draws.")] = 0,
    policies: Annotated[str | None, typer.Option(
        help="Comma-separated policies to compare (default: all available).")] = None,
    problems: Annotated[str, typer.Option(
        help="Comma-separated problems: bernoulli, contextual.")] = "bernoulli,contextual",
    batch: Annotated[int, typer.Option(min=1, max=100_000,
                                       help="Rewards the learner applies per update.")] = 10,
    delay: Annotated[int, typer.Option(min=0, max=1_000_000,
                                       help="Decisions made before a reward arrives.")] = 0,
    window: Annotated[int, typer.Option(min=1, max=10_000_000,
                                        help="Recent steps the shares cover.")] = 1000,
    live: Annotated[bool | None, typer.Option(
        "--live/--no-live",
        help="Redraw a live table (default: when stdout is a terminal).")] = None,
) -> None:
    """Simulate policies learning side by side; print live shares, reward and regret."""
    chosen_policies = None
    if policies is not None:
        chosen_policies = _names(policies, available_policies(), "--policies")
    chosen_problems = _names(problems, tuple(scenarios(seed)), "--problems")
    console = Console()
    simulation = Demo(steps=steps, seed=seed, batch=batch, delay=delay, window=window,
                      policies=chosen_policies, problems=chosen_problems)
    try:
        elapsed = play(simulation, console, live=console.is_terminal if live is None else live)
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
