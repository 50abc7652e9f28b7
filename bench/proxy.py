"""What the router adds to a request, against a direct call, nginx and a FastAPI pass-through.

    .venv/bin/python bench/proxy.py               # 3 rounds × 5 s, 70 s sustained, py-spy
    .venv/bin/python bench/proxy.py --quick       # smoke run: 1 round × 1 s, no profile
    .venv/bin/python bench/proxy.py --duration 10 --rounds 5 --profile-out /tmp/prof

Needs ``wrk``, ``nginx`` and ``redis-server`` (``apt-get install -y wrk nginx
redis-server``) and, for the profile, py-spy (``.venv/bin/pip install py-spy``).

Five targets, each server in its own process (uvicorn: uvloop + httptools, one
worker), all up for the whole run, all on loopback:

- (a) ``direct``: the variant itself, a raw ASGI app answering a small
  SageMaker-shaped JSON body (``bench/_proxy_apps.py``);
- (b) ``nginx``: nginx 1 worker, ``split_clients`` over three upstreams with
  keep-alive (all served by the variant process): the floor of what a proxy adds;
- (c) ``passthrough``: a FastAPI route forwarding the body with a pooled aiohttp
  session: what any FastAPI router starts from;
- (d) ``router-memory``: ``bandit-router serve``, SageMaker backend (SigV4-signed
  requests to the variant as SageMaker Runtime), Thompson, context from the
  ``X-Bandit-Context`` header, guardrails on, decision log ``memory://``;
- (e) ``router-redis``: the same with the decision log on our own redis-server
  (group commit + dedupe script, spool in the temp dir).

Each round runs every target in turn (the order reversed every other round):
a 1 s warm-up at 32 connections, then ``wrk -t1 -c32`` and ``wrk -t1 -c1`` for
``--duration`` s each, POSTing the same body and headers. Figures are medians
over rounds; added latency is a target's p50 at 1 connection minus direct's.
Server CPU per request is the target's process CPU (nginx: master + worker)
over the 32-connection run divided by its requests.

The product's budgets (one worker process): the router with Redis logging reaches
≥ 0.7× the pass-through's requests/s at 32 connections, and adds ≤ 1.5× the
latency the pass-through adds. Then router-redis gets ``--steady`` × 10 s of
load back to back (its guardrails' 60 s window fills up), and py-spy samples it
under 32 connections: the tables say where its time goes.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from types import FrameType

import _common
import _proxy_profile as profiling
import _proxy_servers as servers
from _proxy_wrk import WrkResult, parse_output, run_wrk, write_script
from _servers import BIN, BenchError, Server, find_tool, require_tools, start_redis

from common.storage.keys import DECISIONS_STREAM

TARGETS = ("direct", "nginx", "passthrough", "router-memory", "router-redis")
LABELS = {"direct": "(a) direct: the variant", "nginx": "(b) nginx split_clients",
          "passthrough": "(c) FastAPI + aiohttp pass-through",
          "router-memory": "(d) router, memory://", "router-redis": "(e) router, Redis log"}
THROUGHPUT_BUDGET = 0.7
LATENCY_BUDGET = 1.5
WARMUP_S = 1
STEADY_SLICE_S = 10


@dataclass
class Sample:
    """One target in one round: both wrk runs and the server CPU over the 32-connection run."""

    at32: WrkResult
    at1: WrkResult
    cpu_s: float  # over the 32-connection run
    cpu1_s: float  # over the 1-connection run
    extra_cpu_s: float = 0.0  # redis-server's over the 32-connection run (router-redis)
    others_cores: float = 0.0  # CPU of processes not ours over the 32-connection run


@dataclass
class Results:
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def median(self, target: str, value: Callable[[Sample], float]) -> float:
        return statistics.median(value(s) for s in self.samples[target])


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _cpu(pids: Sequence[int]) -> float:
    return sum(servers.cpu_seconds(pid) for pid in pids)


def measure(wrk: str, url: str, script: Path, duration: int, pids: Sequence[int],
            extra_pids: Sequence[int], fleet_pids: Sequence[int]) -> Sample:
    """Warm up, then 32 connections (CPU accounted) and 1 connection."""
    run_wrk(wrk, url, script, connections=32, duration_s=WARMUP_S)
    before, extra_before = _cpu(pids), _cpu(extra_pids)
    ours_before, machine_before = _cpu(fleet_pids) + _children_cpu(), servers.machine_busy()
    at32 = run_wrk(wrk, url, script, connections=32, duration_s=duration)
    cpu, extra = _cpu(pids) - before, _cpu(extra_pids) - extra_before
    busy, wall = (a - b for a, b in zip(servers.machine_busy(), machine_before, strict=True))
    others = max(0.0, busy - (_cpu(fleet_pids) + _children_cpu() - ours_before)) / wall
    before = _cpu(pids)
    at1 = run_wrk(wrk, url, script, connections=1, duration_s=duration)
    return Sample(at32, at1, cpu, _cpu(pids) - before, extra, others)


def _children_cpu() -> float:
    """CPU of our finished children (the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_header(argv: Sequence[str], tools: dict[str, str]) -> str:
    packages = ", ".join(f"{name} {version(name)}" for name in (
        "uvicorn", "uvloop", "httptools", "fastapi", "starlette", "aiohttp", "redis",
        "botocore"))
    binaries = ", ".join([
        servers.tool_version([tools["wrk"], "-v"]).split(" [")[0],
        servers.tool_version([tools["nginx"], "-v"]).replace("nginx version: ", ""),
        "redis-server " + servers.tool_version([tools["redis-server"], "--version"])
        .split(" v=")[-1].split()[0]])
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpu = _cpu_model()
    return (f"### bench/proxy.py\n\n"
            f"command: `.venv/bin/python {shlex.join(argv)}`  \n"
            f"date: {when}  \n"
            f"machine: {platform.machine()}, {os.cpu_count() or 1} CPUs{cpu}, Python "
            f"{sys.version.split()[0]}, {packages}; {binaries}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f" ({line.split(':', 1)[1].strip()})"
    except OSError:
        pass
    return ""


def _fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def results_table(results: Results) -> str:
    direct_p50 = results.median("direct", lambda s: s.at1.p50_us)
    rows = []
    for target in results.samples:
        at32_rps = results.median(target, lambda s: s.at32.rps)
        p50_1 = results.median(target, lambda s: s.at1.p50_us)
        cpu_us = results.median(target, lambda s: s.cpu_s / max(s.at32.requests, 1) * 1e6)
        cpu_pct = results.median(target, lambda s: 100.0 * s.cpu_s / s.at32.seconds)
        cpu1_us = results.median(target, lambda s: s.cpu1_s / max(s.at1.requests, 1) * 1e6)
        added = "-" if target == "direct" else _fmt(p50_1 - direct_p50)
        rows.append([LABELS[target], _fmt(at32_rps),
                     _fmt(results.median(target, lambda s: s.at32.p50_us)),
                     _fmt(results.median(target, lambda s: s.at32.p99_us)),
                     _fmt(results.median(target, lambda s: s.at1.rps)),
                     _fmt(p50_1), _fmt(results.median(target, lambda s: s.at1.p99_us)),
                     added, _fmt(cpu_us), _fmt(cpu_pct), _fmt(cpu1_us)])
    return _common.markdown_table(
        ["target", "req/s @32", "p50 @32 (µs)", "p99 @32 (µs)", "req/s @1", "p50 @1 (µs)",
         "p99 @1 (µs)", "added p50 @1 (µs)", "server CPU µs/req @32", "server CPU % @32",
         "server CPU µs/req @1"], rows)


def rounds_table(results: Results) -> str:
    rounds = len(next(iter(results.samples.values())))
    rows = []
    for target, samples in results.samples.items():
        rows.append([LABELS[target],
                     " / ".join(_fmt(s.at32.rps) for s in samples),
                     " / ".join(_fmt(s.at1.p50_us) for s in samples),
                     " / ".join(_fmt(s.others_cores, 2) for s in samples)])
    return _common.markdown_table(
        ["target", f"req/s @32, rounds 1-{rounds}", f"p50 @1 (µs), rounds 1-{rounds}",
         "other processes' CPU @32 (cores)"], rows)


def budget_table(results: Results) -> str:
    direct = results.median("direct", lambda s: s.at1.p50_us)
    rps = {t: results.median(t, lambda s: s.at32.rps) for t in results.samples}
    added = {t: results.median(t, lambda s: s.at1.p50_us) - direct for t in results.samples}
    rows = []
    for target, budgeted in (("router-redis", True), ("router-memory", False)):
        if target not in rps or "passthrough" not in rps:
            continue
        throughput = rps[target] / rps["passthrough"]
        latency = added[target] / added["passthrough"] if added["passthrough"] > 0 \
            else float("inf")
        ok_t = throughput >= THROUGHPUT_BUDGET
        ok_l = latency <= LATENCY_BUDGET
        suffix = "" if budgeted else " (for information)"
        rows.append([f"{LABELS[target]}: req/s @32 ÷ (c)'s{suffix}", f"≥ {THROUGHPUT_BUDGET}×",
                     f"{_fmt(rps[target])} ÷ {_fmt(rps['passthrough'])} = {throughput:.2f}×",
                     ("PASS" if ok_t else "FAIL") if budgeted else "-"])
        rows.append([f"{LABELS[target]}: added p50 @1 ÷ (c)'s{suffix}", f"≤ {LATENCY_BUDGET}×",
                     f"{_fmt(added[target])} ÷ {_fmt(added['passthrough'])} µs = "
                     f"{latency:.2f}×", ("PASS" if ok_l else "FAIL") if budgeted else "-"])
        if budgeted:
            # Both are CPU-bound at 32 connections, so the inverse ratio of their CPU per
            # request estimates the throughput ratio without the other processes' noise.
            ours, theirs = (results.median(t, lambda s: s.cpu_s / max(s.at32.requests, 1) * 1e6)
                            for t in (target, "passthrough"))
            rows.append([f"{LABELS[target]}: (c)'s server CPU µs/req @32 ÷ its own "
                         "(for information)", f"≥ {THROUGHPUT_BUDGET}×",
                         f"{_fmt(theirs)} ÷ {_fmt(ours)} = {theirs / ours:.2f}×", "-"])
    return _common.markdown_table(["what", "budget", "measured", "verdict"], rows)


def profile_target(wrk: str, py_spy: str, server: Server, script: Path,
                   seconds: int, output: Path, connections: int) -> str:
    """py-spy on ``server`` under wrk at ``connections``; the summary as Markdown."""
    url = servers.invocations_url(server.url)
    run_wrk(wrk, url, script, connections=32, duration_s=WARMUP_S)
    load_s = seconds + 4
    argv = [wrk, "-t1", f"-c{connections}", f"-d{load_s}s", "--latency", "-s", str(script),
            url]
    before = servers.cpu_seconds(server.pid)
    started = time.monotonic()
    load = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        profiling.record(py_spy, server.pid, seconds, output)
        out, _ = load.communicate(timeout=load_s + 30)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    cpu = servers.cpu_seconds(server.pid) - before
    elapsed = time.monotonic() - started
    requests = parse_output(out).requests
    us_per_request = cpu / requests * 1e6 if requests else None
    profile = profiling.parse(output.read_text())
    lines = [f"py-spy {servers.tool_version([py_spy, '--version']).split()[-1]} on "
             f"{server.name} (pid {server.pid}) for {seconds} s at 200 Hz under wrk -t1 "
             f"-c{connections}: "
             f"{profile.total:,} samples of the event loop's thread (and "
             f"{profile.other_threads:,} of idle executor threads, left out); during the "
             f"load {requests / elapsed:,.0f} req/s (slowed by the sampling), server CPU "
             f"{_fmt(us_per_request or 0, 1)} µs per request. "
             "µs per request = share of samples × that CPU."]
    for title, headers, rows in profiling.tables(profile, us_per_request):
        lines += ["", f"##### {title}", "", _common.markdown_table(headers, rows)]
    return "\n".join(lines)


def steady_state(wrk: str, server: Server, script: Path, slices: int,
                 passthrough_rps: float | None) -> str:
    """``slices`` back-to-back 10 s runs at 32 connections on ``server``: throughput as
    the guardrails' 60 s window fills up (Markdown)."""
    url = servers.invocations_url(server.url)
    rows = []
    for index in range(slices):
        before = servers.cpu_seconds(server.pid)
        result = run_wrk(wrk, url, script, connections=32, duration_s=STEADY_SLICE_S)
        cpu_us = (servers.cpu_seconds(server.pid) - before) / max(result.requests, 1) * 1e6
        log(f"    steady {(index + 1) * STEADY_SLICE_S} s: {result.rps:,.0f} req/s, "
            f"{cpu_us:,.0f} µs CPU/req")
        ratio = f"{result.rps / passthrough_rps:.2f}×" if passthrough_rps else "-"
        rows.append([f"{index * STEADY_SLICE_S}-{(index + 1) * STEADY_SLICE_S} s",
                     _fmt(result.rps), ratio, _fmt(result.p50_us), _fmt(result.p99_us),
                     _fmt(cpu_us), str(result.errors)])
    return _common.markdown_table(["load so far", "req/s @32", "÷ (c)'s req/s @32",
                                   "p50 (µs)", "p99 (µs)", "server CPU µs/req", "errors"],
                                  rows)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5,
                        help="seconds per wrk run (whole seconds; default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 round, 1 s per run, no profile")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS),
                        help="targets to run (direct is always run: the others' reference)")
    parser.add_argument("--steady", type=int, default=7, metavar="N",
                        help="after the rounds, N back-to-back 10 s runs at 32 connections "
                        "on router-redis, to see it settle (default 7; 0: none)")
    parser.add_argument("--profile", nargs="+", choices=TARGETS, default=["router-redis"],
                        metavar="TARGET", help="targets py-spy samples after the rounds "
                        "(default: router-redis)")
    parser.add_argument("--profile-seconds", type=int, default=10,
                        help="py-spy sampling time per profiled target (default 10)")
    parser.add_argument("--profile-connections", type=int, default=32, metavar="C",
                        help="wrk connections while py-spy samples (default 32)")
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy")
    parser.add_argument("--router-command", default=str(BIN / "bandit-router"),
                        help="the router's command, run as `CMD serve --config FILE --port P "
                        "--log-level warning` (default: .venv/bin/bandit-router; to compare "
                        "a patched router with the same references)")
    parser.add_argument("--profile-out", type=Path, default=None,
                        help="keep py-spy's raw samples in this directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.no_profile, args.steady = 1, 1, True, 0
    if min(args.duration, args.rounds, args.profile_seconds, args.profile_connections) < 1 \
            or args.steady < 0:
        parser.error("--duration, --rounds, --profile-seconds and --profile-connections must "
                     "be ≥ 1, --steady ≥ 0")
    if "direct" not in args.targets:
        args.targets.insert(0, "direct")
    return args


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    args = parse_args(argv[1:])
    targets = [t for t in TARGETS if t in args.targets]
    profiled = [] if args.no_profile else [t for t in args.profile if t in targets]
    profiling_on = bool(profiled)
    try:
        tools = require_tools(["wrk", "nginx", "redis-server"])
    except BenchError as exc:
        log(f"bench/proxy.py: {exc}")
        return 2
    py_spy = find_tool("py-spy") or str(BIN / "py-spy")
    if profiling_on and not Path(py_spy).exists():
        log("bench/proxy.py: py-spy is missing: `.venv/bin/pip install py-spy`, "
            "or pass --no-profile")
        return 2
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
        fleet = servers.Fleet(Path(tmp))
        try:
            return _run(args, argv, targets, tools, py_spy if profiling_on else None, fleet,
                        profiled)
        except (BenchError, RuntimeError) as exc:  # RuntimeError: wrk or py-spy failed
            log(f"bench/proxy.py: {exc}")
            return 1
        finally:
            fleet.stop_all()


def _run(args: argparse.Namespace, argv: list[str], targets: list[str],
         tools: dict[str, str], py_spy: str | None, fleet: servers.Fleet,
         profiled: list[str]) -> int:
    log(f"starting servers in {fleet.directory}")
    variant = servers.start_variant(fleet)
    started: dict[str, Server] = {"direct": variant}
    extra: dict[str, list[int]] = {}
    redis: Server | None = None
    if "nginx" in targets:
        started["nginx"] = servers.start_nginx(fleet, tools["nginx"], variant)
    if "passthrough" in targets:
        started["passthrough"] = servers.start_passthrough(fleet, variant)
    if "router-memory" in targets:
        started["router-memory"] = servers.start_router(fleet, "router-memory", "memory://",
                                                        variant, args.router_command)
    if "router-redis" in targets:
        redis = start_redis(fleet, tools["redis-server"])
        started["router-redis"] = servers.start_router(fleet, "router-redis", redis.url,
                                                       variant, args.router_command)
        extra["router-redis"] = [redis.pid]
    for target in targets:
        log(f"  {target}: pid {started[target].pid}, {started[target].url}, answers "
            f"{servers.check_invocation(started[target])}")
    script = write_script(fleet.directory / "post.lua", servers.REQUEST_BODY,
                          servers.REQUEST_HEADERS)
    results = Results({target: [] for target in targets})
    for round_index in range(args.rounds):
        order = targets if round_index % 2 == 0 else list(reversed(targets))
        for target in order:
            server = started[target]
            log(f"round {round_index + 1}/{args.rounds}: {target} ({args.duration} s @32, "
                f"{args.duration} s @1)")
            sample = measure(tools["wrk"], servers.invocations_url(server.url), script,
                             args.duration, [server.pid], extra.get(target, []),
                             [each.pid for each in fleet.servers])
            results.samples[target].append(sample)
            log(f"    {sample.at32.rps:,.0f} req/s @32, p50 @1 {sample.at1.p50_us:,.0f} µs, "
                f"errors {sample.at32.errors + sample.at1.errors}")
    errors = {t: sum(s.at32.errors + s.at1.errors for s in samples)
              for t, samples in results.samples.items()}
    notes = []
    if any(errors.values()):
        notes.append("**wrk counted errors or non-2xx answers**: " + ", ".join(
            f"{t} {n}" for t, n in errors.items() if n))
    if redis is not None:
        router = started["router-redis"]
        ready = servers.readyz(router)
        store = ready.get("store")
        logged = servers.redis_stream_length(redis.port, DECISIONS_STREAM)
        sent = sum(s.at32.requests + s.at1.requests for s in results.samples["router-redis"])
        notes.append(f"router-redis: {logged:,} decision events on the Redis stream after "
                     f"{sent:,} measured requests (+ warm-ups); store status {store}")
        redis_us = results.median("router-redis",
                                  lambda s: s.extra_cpu_s / max(s.at32.requests, 1) * 1e6)
        notes.append(f"router-redis: redis-server CPU {redis_us:,.1f} µs per request @32 "
                     "(not in the router's CPU column)")

    print(run_header(argv, tools))
    print()
    print(f"wrk -t1, POST {len(servers.REQUEST_BODY)} B JSON with Content-Type, Accept and "
          f"X-Bandit-Context; {args.rounds} round(s) × {args.duration} s per run "
          f"(+ {WARMUP_S} s warm-up at 32 connections), order reversed every other round; "
          "medians over rounds. @32 / @1: 32 connections / 1 connection.")
    print()
    print(results_table(results))
    print()
    print(rounds_table(results))
    if "passthrough" in targets and ("router-redis" in targets or "router-memory" in targets):
        print()
        print("#### Budgets")
        print()
        print(budget_table(results))
    for note in notes:
        print()
        print(note)
    if args.steady and "router-redis" in targets:
        log(f"steady state: router-redis, {args.steady} × {STEADY_SLICE_S} s at 32 connections")
        passthrough_rps = results.median("passthrough", lambda s: s.at32.rps) \
            if "passthrough" in targets else None
        table = steady_state(tools["wrk"], started["router-redis"], script, args.steady,
                             passthrough_rps)
        print()
        print(f"#### Sustained load: {LABELS['router-redis']}, {args.steady} × "
              f"{STEADY_SLICE_S} s back to back at 32 connections")
        print()
        print(table)
    if py_spy is not None:
        out_dir = args.profile_out or fleet.directory
        out_dir.mkdir(parents=True, exist_ok=True)
        # Routers first: right after the sustained load, in the state it left them.
        for target in sorted(profiled, key=lambda t: not t.startswith("router")):
            log(f"profiling {target} for {args.profile_seconds} s under "
                f"{args.profile_connections} connection(s)")
            output = out_dir / f"{target}-c{args.profile_connections}.pyspy.txt"
            summary = profile_target(tools["wrk"], py_spy, started[target], script,
                                     args.profile_seconds, output, args.profile_connections)
            print()
            print(f"#### Where the time goes: {LABELS[target]}, "
                  f"{args.profile_connections} connection(s)")
            print()
            print(summary)
            if args.profile_out is not None:
                log(f"raw samples kept in {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
