"""Client CPU per SageMaker call: boto3 (direct and in a thread pool), our
SageMakerBackend, and a raw aiohttp POST; one call at a time and 32 in flight.

    .venv/bin/python bench/_backend_cost.py [N]

The simulator runs in a child process (zero latency), so ``time.process_time()`` in
this process is the client's CPU alone (every thread of it, the pool's included).
Each way makes N calls (after a warm-up) in three interleaved rounds; the first
table shows the median µs of CPU and of wall time per call made one at a time, the
second the median calls/s and µs of CPU per call with 32 calls in flight from an
asyncio loop (32 tasks; for boto3, 32 ``asyncio.to_thread`` calls on a pool of 32
threads and a client with ``max_pool_connections=32``). Both show the CPU ratio to
the raw POST. botocore's SigV4 signing alone (no I/O) is shown for scale.
aiobotocore needs an older botocore than this venv's boto3: it is measured by
``bench/_aiobotocore_cost.py`` from its own venv, against the same reference.
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
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from importlib.metadata import version
from pathlib import Path
from types import FrameType

import _common
import botocore.session

# The project root, so this runs before an editable install knows router/ and simulator/.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from router.backends import InvokeRequest, SageMakerBackend  # noqa: E402
from router.backends.base import pooled_session  # noqa: E402
from simulator import make_client  # noqa: E402

ENDPOINT = "bench"
BODY = json.dumps({"instances": [[0.5, -1.2, 0.3, 0.9, -0.4, 0.1]]}).encode()
HEADERS = {"Content-Type": "application/json", "X-Amzn-SageMaker-Target-Variant": "Variant1"}
KEYS = ("AKIDBENCH", "bench-secret")
ROUNDS = 3
WARMUP = 100
CONCURRENCY = 32
REFERENCE = "(c) raw aiohttp POST"
SERVER = ("import sys; from simulator import parse_variants, serve; "
          "serve('127.0.0.1', int(sys.argv[1]), parse_variants('Variant1=logistic', "
          "endpoint='bench'))")

Way = Callable[[str, int], tuple[float, float]]  # (url, n) -> (CPU s, wall s)
Call = Callable[[], Awaitable[object]]  # one InvokeEndpoint call
Setup = Callable[[str], AbstractAsyncContextManager[Call]]  # url -> a ready client's call


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the child by its PID: SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM as SystemExit, so the ``finally`` that stops the simulator runs."""
    raise SystemExit(128 + signum)


def _start_simulator() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
    except BaseException:  # Ctrl-C while waiting too: never leave the child behind
        _stop(process)
        raise
    return process, url


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    """Return once ``url``/ping answers; raise if the child exits or 20 s pass."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1):  # noqa: S310 (loopback)
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the simulator did not start")


def _timed(run: Callable[[], None]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return time.process_time() - cpu, time.perf_counter() - wall


def _boto3(url: str, n: int) -> tuple[float, float]:
    client = make_client(url, credentials=KEYS)

    def calls(count: int) -> None:
        for _ in range(count):
            client.invoke_endpoint(EndpointName=ENDPOINT, Body=BODY, TargetVariant="Variant1",
                                   ContentType="application/json")["Body"].read()

    calls(WARMUP)
    result = _timed(lambda: calls(n))
    client.close()
    return result


async def _in_flight(call: Call, n: int, concurrency: int) -> None:
    """``n`` calls, ``concurrency`` at a time: workers draw from one shared count."""
    remaining = iter(range(n))  # one loop, one thread: sharing the iterator is safe

    async def worker() -> None:
        for _ in remaining:
            await call()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def _async_way(setup: Setup, concurrency: int) -> Way:
    """A way that times ``n`` calls of ``setup``'s client, ``concurrency`` in flight."""
    async def main(url: str, n: int) -> tuple[float, float]:
        async with setup(url) as call:
            # Warm up at the same concurrency, so the pool has its connections open.
            await _in_flight(call, WARMUP, concurrency)
            cpu, wall = time.process_time(), time.perf_counter()
            await _in_flight(call, n, concurrency)
            return time.process_time() - cpu, time.perf_counter() - wall

    return lambda url, n: asyncio.run(main(url, n))


@asynccontextmanager
async def _backend_call(url: str) -> AsyncIterator[Call]:
    session = botocore.session.Session()
    session.set_credentials(*KEYS)
    backend = SageMakerBackend(endpoint_url=url, region="us-east-1", session=session,
                               max_connections=CONCURRENCY)
    await backend.start()
    request = InvokeRequest(ENDPOINT, "Variant1", BODY, "application/json", None, None, None)
    try:
        yield partial(backend.invoke, request)
    finally:
        await backend.close()


@asynccontextmanager
async def _raw_call(url: str) -> AsyncIterator[Call]:
    http = pooled_session(max_connections=CONCURRENCY, connect_timeout_s=5, read_timeout_s=60)
    target = f"{url}/endpoints/{ENDPOINT}/invocations"

    async def call() -> None:
        async with http.post(target, data=BODY, headers=HEADERS) as response:
            await response.read()

    try:
        yield call
    finally:
        await http.close()


@asynccontextmanager
async def _boto3_thread_call(url: str) -> AsyncIterator[Call]:
    """boto3 as an asyncio service uses it: ``asyncio.to_thread`` on a pool of 32."""
    client = make_client(url, credentials=KEYS, pool_size=CONCURRENCY)
    # to_thread runs on the loop's default executor; asyncio.run shuts it down.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="boto3"))

    def invoke() -> None:
        client.invoke_endpoint(EndpointName=ENDPOINT, Body=BODY, TargetVariant="Variant1",
                               ContentType="application/json")["Body"].read()

    try:
        yield partial(asyncio.to_thread, invoke)
    finally:
        client.close()


def _signing(url: str, n: int) -> tuple[float, float]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import ReadOnlyCredentials

    auth = SigV4Auth(ReadOnlyCredentials(*KEYS, None), "sagemaker", "us-east-1")
    target = f"{url}/endpoints/{ENDPOINT}/invocations"

    headers = dict(HEADERS, Host=url.removeprefix("http://"))  # as the backend signs

    def sign() -> None:
        for _ in range(n):
            auth.add_auth(AWSRequest(method="POST", url=target, data=BODY, headers=headers))

    return _timed(sign)


SEQUENTIAL: dict[str, Way] = {
    "(a) boto3 invoke_endpoint": _boto3,
    "(b) SageMakerBackend.invoke": _async_way(_backend_call, 1),
    REFERENCE: _async_way(_raw_call, 1),
    "(d) boto3 via asyncio.to_thread": _async_way(_boto3_thread_call, 1),
    "botocore SigV4 signing alone (no I/O)": _signing,
}
CONCURRENT: dict[str, Way] = {
    "(b) SageMakerBackend.invoke": _async_way(_backend_call, CONCURRENCY),
    REFERENCE: _async_way(_raw_call, CONCURRENCY),
    "(d) boto3 via asyncio.to_thread": _async_way(_boto3_thread_call, CONCURRENCY),
}


def _sample(n: int) -> tuple[dict[str, list[tuple[float, float]]],
                             dict[str, list[tuple[float, float]]]]:
    """(CPU s, wall s) of every way, sequential and concurrent, over interleaved rounds."""
    process, url = _start_simulator()
    sequential: dict[str, list[tuple[float, float]]] = {way: [] for way in SEQUENTIAL}
    concurrent: dict[str, list[tuple[float, float]]] = {way: [] for way in CONCURRENT}
    try:
        for _ in range(ROUNDS):
            for way, run in SEQUENTIAL.items():
                sequential[way].append(run(url, n))
            for way, run in CONCURRENT.items():
                concurrent[way].append(run(url, n))
    finally:
        _stop(process)
    return sequential, concurrent


def _medians(samples: dict[str, list[tuple[float, float]]], n: int,
             ) -> tuple[dict[str, float], dict[str, float]]:
    """Median µs of CPU per call and median wall seconds for all ``n`` calls, per way."""
    cpu = {w: statistics.median(c for c, _ in s) / n * 1e6 for w, s in samples.items()}
    wall = {w: statistics.median(t for _, t in s) for w, s in samples.items()}
    return cpu, wall


def backend_cost(n: int = 2000) -> tuple[list[list[str]], list[list[str]]]:
    """Rows of both tables: one call at a time (way, µs CPU, µs wall, CPU ratio to the
    raw POST) and 32 in flight (way, calls/s, µs CPU, CPU ratio to the raw POST)."""
    sequential, concurrent = _sample(n)
    cpu, wall = _medians(sequential, n)
    one = [[way, f"{cpu[way]:.0f}", f"{wall[way] / n * 1e6:.0f}",
            f"{cpu[way] / cpu[REFERENCE]:.2f}×"] for way in SEQUENTIAL]
    cpu, wall = _medians(concurrent, n)
    many = [[way, f"{n / wall[way]:.0f}", f"{cpu[way]:.0f}",
             f"{cpu[way] / cpu[REFERENCE]:.2f}×"] for way in CONCURRENT]
    return one, many


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    n = int(argv[1]) if len(argv) > 1 else 2000
    one, many = backend_cost(n)
    print(_common.run_header(f"Client CPU per SageMaker call, N={n} sequential", argv))
    print(", ".join(f"{name} {version(name)}" for name in ("boto3", "botocore", "aiohttp")))
    print()
    print(_common.markdown_table(["way", "µs CPU / call", "µs wall / call", "CPU vs (c)"], one))
    print(f"\n# The same ways, N={n} with {CONCURRENCY} calls in flight\n")
    print(_common.markdown_table(["way", "calls/s", "µs CPU / call", "CPU vs (c)"], many))


if __name__ == "__main__":
    main(sys.argv)
