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
import sys
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from importlib.metadata import version

import _client_cost
import _common
import botocore.session
from _client_cost import BODY, CONCURRENCY, ENDPOINT, HEADERS, KEYS, REFERENCE, WARMUP, Call, Way

# The project root, so this runs before an editable install knows router/ and simulator/.
sys.path.insert(0, str(_client_cost.ROOT))

from router.backends import InvokeRequest, SageMakerBackend
from simulator import make_client

SERVER = ("import sys; from simulator import parse_variants, serve; "
          "serve('127.0.0.1', int(sys.argv[1]), parse_variants('Variant1=logistic', "
          "endpoint='bench'))")


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
    "(b) SageMakerBackend.invoke": _client_cost.async_way(_backend_call, 1),
    REFERENCE: _client_cost.async_way(_client_cost.raw_call, 1),
    "(d) boto3 via asyncio.to_thread": _client_cost.async_way(_boto3_thread_call, 1),
    "botocore SigV4 signing alone (no I/O)": _signing,
}
CONCURRENT: dict[str, Way] = {
    "(b) SageMakerBackend.invoke": _client_cost.async_way(_backend_call, CONCURRENCY),
    REFERENCE: _client_cost.async_way(_client_cost.raw_call, CONCURRENCY),
    "(d) boto3 via asyncio.to_thread": _client_cost.async_way(_boto3_thread_call, CONCURRENCY),
}


def backend_cost(n: int = 2000) -> _client_cost.Tables:
    """Rows of both tables: one call at a time (way, µs CPU, µs wall, CPU ratio to the
    raw POST) and 32 in flight (way, calls/s, µs CPU, CPU ratio to the raw POST)."""
    with _client_cost.simulator(lambda port: [sys.executable, "-c", SERVER, str(port)]) as url:
        one, many = _client_cost.sample(url, SEQUENTIAL, CONCURRENT, n)
    return _client_cost.table_rows(one, many, n)


def main(argv: list[str]) -> None:
    _client_cost.exit_on_sigterm()
    n = int(argv[1]) if len(argv) > 1 else 2000
    rows = backend_cost(n)
    print(_common.run_header(f"Client CPU per SageMaker call, N={n} sequential", argv))
    print(", ".join(f"{name} {version(name)}" for name in ("boto3", "botocore", "aiohttp")))
    print()
    print(_client_cost.tables(rows, n))


if __name__ == "__main__":
    main(sys.argv)
