"""Client CPU per SageMaker call with aiobotocore, against a raw aiohttp POST.

    python3 -m venv /tmp/aiobotocore-venv
    /tmp/aiobotocore-venv/bin/pip install aiobotocore
    /tmp/aiobotocore-venv/bin/python bench/_aiobotocore_cost.py \\
        --project-python .venv/bin/python [N]

Its own venv: aiobotocore pins botocore to the releases it was built against, older
than the botocore the project's boto3 needs, so it cannot share the project's venv.
Hence this script imports nothing from the project (stdlib, aiobotocore and the
aiohttp it brings); the project's python only serves the simulator, in a child
process (zero latency), so ``time.process_time()`` here is the client's CPU alone.

Each way makes N calls (after a warm-up) in three interleaved rounds, one at a time
and 32 in flight from an asyncio loop; the tables show median µs of CPU and of wall
time per call, calls/s at 32, and the CPU ratio to the raw POST (c) made in this
same process: the reference ``bench/_backend_cost.py`` prints, so the two scripts'
ratios compare even where their absolute figures differ.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import IO, Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

ROOT = Path(__file__).resolve().parent.parent
ENDPOINT = "bench"
BODY = json.dumps({"instances": [[0.5, -1.2, 0.3, 0.9, -0.4, 0.1]]}).encode()
HEADERS = {"Content-Type": "application/json", "X-Amzn-SageMaker-Target-Variant": "Variant1"}
KEYS = ("AKIDBENCH", "bench-secret")
ROUNDS = 3
WARMUP = 100
CONCURRENCY = 32
REFERENCE = "(c) raw aiohttp POST"
AIOBOTOCORE = "(e) aiobotocore invoke_endpoint"

Call = Callable[[], Awaitable[object]]  # one InvokeEndpoint call
Setup = Callable[[str], AbstractAsyncContextManager[Call]]  # url -> a ready client's call
Samples = dict[str, list[tuple[float, float]]]  # way -> (CPU s, wall s) per round


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM as SystemExit, so the ``finally`` that stops the simulator runs."""
    raise SystemExit(128 + signum)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the child by its PID: SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _start_simulator(project_python: str, log: IO[bytes],
                     ) -> tuple[subprocess.Popen[bytes], str]:
    """The project's simulator (the ``bandit-router simulate`` CLI), as
    ``_backend_cost.py`` serves it: endpoint ``bench``, Variant1 a logistic model."""
    port = _free_port()
    command = [project_python, "-m", "bandit_router", "simulate", "--port", str(port),
               "--variants", "Variant1=logistic", "--endpoint", ENDPOINT]
    # cwd: the project root, so -m finds bandit_router even without an install.
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
    except BaseException:  # Ctrl-C while waiting too: never leave the child behind
        _stop(process)
        log.seek(0)
        sys.stderr.write(log.read().decode(errors="replace"))
        raise
    return process, url


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    """Return once ``url``/ping answers; raise if the child exits or 30 s pass."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1):  # noqa: S310 (loopback)
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the simulator did not start")


async def _in_flight(call: Call, n: int, concurrency: int) -> None:
    """``n`` calls, ``concurrency`` at a time: workers draw from one shared count."""
    remaining = iter(range(n))  # one loop, one thread: sharing the iterator is safe

    async def worker() -> None:
        for _ in remaining:
            await call()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _measure(setup: Setup, url: str, n: int, concurrency: int) -> tuple[float, float]:
    """(CPU s, wall s) of ``n`` calls of ``setup``'s client, ``concurrency`` in flight."""
    async with setup(url) as call:
        # Warm up at the same concurrency, so the pool has its connections open.
        await _in_flight(call, WARMUP, concurrency)
        cpu, wall = time.process_time(), time.perf_counter()
        await _in_flight(call, n, concurrency)
        return time.process_time() - cpu, time.perf_counter() - wall


@asynccontextmanager
async def _aiobotocore_call(url: str) -> AsyncIterator[Call]:
    """aiobotocore's client, configured as the project's boto3 client is (one attempt)."""
    config = AioConfig(retries={"total_max_attempts": 1, "mode": "standard"},
                       max_pool_connections=CONCURRENCY)
    async with get_session().create_client(
            "sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
            aws_access_key_id=KEYS[0], aws_secret_access_key=KEYS[1],
            config=config) as client:

        async def call() -> None:
            response: Any = await client.invoke_endpoint(
                EndpointName=ENDPOINT, Body=BODY, TargetVariant="Variant1",
                ContentType="application/json")
            async with response["Body"] as stream:
                await stream.read()

        yield call


@asynccontextmanager
async def _raw_call(url: str) -> AsyncIterator[Call]:
    """A raw POST on a session set up as the project's ``pooled_session`` (copied: this
    script cannot import the project)."""
    connector = aiohttp.TCPConnector(limit=CONCURRENCY, limit_per_host=CONCURRENCY,
                                     ttl_dns_cache=60, keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60)
    http = aiohttp.ClientSession(connector=connector, timeout=timeout,
                                 cookie_jar=aiohttp.DummyCookieJar())
    target = f"{url}/endpoints/{ENDPOINT}/invocations"

    async def call() -> None:
        async with http.post(target, data=BODY, headers=HEADERS) as response:
            await response.read()

    try:
        yield call
    finally:
        await http.close()


WAYS: dict[str, Setup] = {AIOBOTOCORE: _aiobotocore_call, REFERENCE: _raw_call}


def _sample(project_python: str, n: int) -> tuple[Samples, Samples]:
    """(CPU s, wall s) of every way, one at a time and 32 in flight, interleaved rounds."""
    one: Samples = {way: [] for way in WAYS}
    many: Samples = {way: [] for way in WAYS}
    with tempfile.TemporaryFile() as log:
        process, url = _start_simulator(project_python, log)
        try:
            for _ in range(ROUNDS):
                for way, setup in WAYS.items():
                    one[way].append(asyncio.run(_measure(setup, url, n, 1)))
                for way, setup in WAYS.items():
                    many[way].append(asyncio.run(_measure(setup, url, n, CONCURRENCY)))
        finally:
            _stop(process)
    return one, many


def _medians(samples: Samples, n: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median µs of CPU per call and median wall seconds for all ``n`` calls, per way."""
    cpu = {w: statistics.median(c for c, _ in s) / n * 1e6 for w, s in samples.items()}
    wall = {w: statistics.median(t for _, t in s) for w, s in samples.items()}
    return cpu, wall


def aiobotocore_cost(project_python: str, n: int,
                     ) -> tuple[list[list[str]], list[list[str]]]:
    """Rows of both tables: one call at a time (way, µs CPU, µs wall, CPU ratio to the
    raw POST) and 32 in flight (way, calls/s, µs CPU, CPU ratio to the raw POST)."""
    one, many = _sample(project_python, n)
    cpu, wall = _medians(one, n)
    first = [[way, f"{cpu[way]:.0f}", f"{wall[way] / n * 1e6:.0f}",
              f"{cpu[way] / cpu[REFERENCE]:.2f}×"] for way in WAYS]
    cpu, wall = _medians(many, n)
    second = [[way, f"{n / wall[way]:.0f}", f"{cpu[way]:.0f}",
               f"{cpu[way] / cpu[REFERENCE]:.2f}×"] for way in WAYS]
    return first, second


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table, columns padded (as ``bench/_common.py`` prints them)."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "| " + " | ".join("-" * w for w in widths) + " |"
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def run_header(n: int, argv: Sequence[str], project_python: str) -> str:
    """Who ran what, where and when, with this venv's versions."""
    versions = ", ".join(f"{name} {version(name)}"
                         for name in ("aiobotocore", "botocore", "aiohttp"))
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"# Client CPU per SageMaker call with aiobotocore, N={n} sequential\n\n"
            f"command: `{sys.executable} {' '.join(argv)}`  \n"
            f"date: {when}  \n"
            f"machine: {platform.machine()}, {os.cpu_count() or 1} CPUs, Python "
            f"{sys.version.split()[0]}, {versions}  \n"
            f"simulator: `{project_python} -m bandit_router simulate`")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--project-python", default=str(ROOT / ".venv" / "bin" / "python"),
                        help="the project venv's python, which serves the simulator")
    parser.add_argument("n", nargs="?", type=int, default=2000, help="calls per way and round")
    args = parser.parse_args(argv[1:])
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    first, second = aiobotocore_cost(args.project_python, args.n)
    print(run_header(args.n, argv, args.project_python))
    print()
    print(markdown_table(["way", "µs CPU / call", "µs wall / call", "CPU vs (c)"], first))
    print(f"\n# The same ways, N={args.n} with {CONCURRENCY} calls in flight\n")
    print(markdown_table(["way", "calls/s", "µs CPU / call", "CPU vs (c)"], second))


if __name__ == "__main__":
    main(sys.argv)
