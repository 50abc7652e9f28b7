"""What ``_backend_cost.py`` and ``_aiobotocore_cost.py`` share: the call they time, the
simulator child they time it against, the raw aiohttp POST both compare with, the
sampling over interleaved rounds and the tables they print.

Only the standard library and aiohttp: ``_aiobotocore_cost.py`` runs in a venv without
the project, so nothing here may import the project (nor ``_common``).
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from types import FrameType
from typing import IO

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
ENDPOINT = "bench"
BODY = json.dumps({"instances": [[0.5, -1.2, 0.3, 0.9, -0.4, 0.1]]}).encode()
HEADERS = {"Content-Type": "application/json", "X-Amzn-SageMaker-Target-Variant": "Variant1"}
KEYS = ("AKIDBENCH", "bench-secret")
ROUNDS = 3
WARMUP = 100
CONCURRENCY = 32
REFERENCE = "(c) raw aiohttp POST"

Call = Callable[[], Awaitable[object]]  # one InvokeEndpoint call
Setup = Callable[[str], AbstractAsyncContextManager[Call]]  # url -> a ready client's call
Way = Callable[[str, int], tuple[float, float]]  # (url, n) -> (CPU s, wall s)
Samples = dict[str, list[tuple[float, float]]]  # way -> (CPU s, wall s) per round
Rows = list[list[str]]
Tables = tuple[Rows, Rows]  # one call at a time, CONCURRENCY in flight


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """Make SIGTERM a SystemExit, so the ``finally`` that stops the simulator runs."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


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


@contextmanager
def simulator(command: Callable[[int], list[str]], log: IO[bytes] | None = None,
              ) -> Iterator[str]:
    """The simulator's url while ``command(port)`` serves it from a child process.

    The child runs from the project root and writes to ``log`` (if given, shown when it
    fails to start); it is stopped by its PID on the way out, whatever ends the block.
    """
    port = _free_port()
    # cwd: the project root, so the child finds the project even without an install.
    process = subprocess.Popen(command(port), cwd=ROOT, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
    except BaseException:  # Ctrl-C while waiting too: never leave the child behind
        _stop(process)
        if log is not None:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
        raise
    try:
        yield url
    finally:
        _stop(process)


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


def async_way(setup: Setup, concurrency: int) -> Way:
    """A way that times ``n`` calls of ``setup``'s client, ``concurrency`` in flight."""
    return lambda url, n: asyncio.run(_measure(setup, url, n, concurrency))


def _pooled_session(max_connections: int) -> aiohttp.ClientSession:
    """A session set up as the project's ``router.backends.base.SessionPool`` (copied:
    ``_aiobotocore_cost.py`` cannot import the project)."""
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=max_connections,
                                     ttl_dns_cache=60, keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=60)
    return aiohttp.ClientSession(connector=connector, timeout=timeout,
                                 cookie_jar=aiohttp.DummyCookieJar())


@asynccontextmanager
async def raw_call(url: str) -> AsyncIterator[Call]:
    """The reference (c): a bare POST of the request, no signing, no SDK."""
    http = _pooled_session(CONCURRENCY)
    target = f"{url}/endpoints/{ENDPOINT}/invocations"

    async def call() -> None:
        async with http.post(target, data=BODY, headers=HEADERS) as response:
            await response.read()

    try:
        yield call
    finally:
        await http.close()


def sample(url: str, sequential: dict[str, Way], concurrent: dict[str, Way], n: int,
           ) -> tuple[Samples, Samples]:
    """(CPU s, wall s) of every way, one at a time and concurrent, in interleaved rounds."""
    one: Samples = {way: [] for way in sequential}
    many: Samples = {way: [] for way in concurrent}
    for _ in range(ROUNDS):
        for way, run in sequential.items():
            one[way].append(run(url, n))
        for way, run in concurrent.items():
            many[way].append(run(url, n))
    return one, many


def _medians(samples: Samples, n: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median µs of CPU per call and median wall seconds for all ``n`` calls, per way."""
    cpu = {w: statistics.median(c for c, _ in s) / n * 1e6 for w, s in samples.items()}
    wall = {w: statistics.median(t for _, t in s) for w, s in samples.items()}
    return cpu, wall


def table_rows(one: Samples, many: Samples, n: int) -> Tables:
    """Rows of both tables: one call at a time (way, µs CPU, µs wall, CPU ratio to the
    raw POST) and 32 in flight (way, calls/s, µs CPU, CPU ratio to the raw POST)."""
    cpu, wall = _medians(one, n)
    first = [[way, f"{cpu[way]:.0f}", f"{wall[way] / n * 1e6:.0f}",
              f"{cpu[way] / cpu[REFERENCE]:.2f}×"] for way in one]
    cpu, wall = _medians(many, n)
    second = [[way, f"{n / wall[way]:.0f}", f"{cpu[way]:.0f}",
               f"{cpu[way] / cpu[REFERENCE]:.2f}×"] for way in many]
    return first, second


def _markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table, columns padded (as ``bench/_common.py`` prints them)."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "| " + " | ".join("-" * w for w in widths) + " |"
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def tables(rows: Tables, n: int) -> str:
    """Both tables, one call at a time and then ``CONCURRENCY`` in flight."""
    first, second = rows
    return "\n".join([
        _markdown_table(["way", "µs CPU / call", "µs wall / call", "CPU vs (c)"], first),
        f"\n# The same ways, N={n} with {CONCURRENCY} calls in flight\n",
        _markdown_table(["way", "calls/s", "µs CPU / call", "CPU vs (c)"], second),
    ])
