"""Client CPU per SageMaker call: boto3, our SageMakerBackend, and a raw aiohttp POST.

    .venv/bin/python bench/_backend_cost.py [N]

The simulator runs in a child process (zero latency), so ``time.process_time()`` in
this process is the client's CPU alone. Each way makes N sequential calls (after a
warm-up) in three interleaved rounds; the table shows the median µs of CPU and of
wall time per call, and the CPU ratio to the raw POST. botocore's SigV4 signing
alone (no I/O) is shown for scale.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

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
SERVER = ("import sys; from simulator import parse_variants, serve; "
          "serve('127.0.0.1', int(sys.argv[1]), parse_variants('Variant1=logistic', "
          "endpoint='bench'))")


def _start_simulator() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1):  # noqa: S310 (loopback)
                return process, url
        except OSError:
            time.sleep(0.05)
    process.kill()
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

    calls(100)
    return _timed(lambda: calls(n))


def _backend(url: str, n: int) -> tuple[float, float]:
    async def main() -> tuple[float, float]:
        session = botocore.session.Session()
        session.set_credentials(*KEYS)
        backend = SageMakerBackend(endpoint_url=url, region="us-east-1", session=session)
        await backend.start()
        request = InvokeRequest(ENDPOINT, "Variant1", BODY, "application/json", None, None, None)
        for _ in range(100):
            await backend.invoke(request)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(n):
            await backend.invoke(request)
        result = time.process_time() - cpu, time.perf_counter() - wall
        await backend.close()
        return result

    return asyncio.run(main())


def _raw(url: str, n: int) -> tuple[float, float]:
    async def main() -> tuple[float, float]:
        http = pooled_session(max_connections=10, connect_timeout_s=5, read_timeout_s=60)
        target = f"{url}/endpoints/{ENDPOINT}/invocations"

        async def call() -> None:
            async with http.post(target, data=BODY, headers=HEADERS) as response:
                await response.read()

        for _ in range(100):
            await call()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(n):
            await call()
        result = time.process_time() - cpu, time.perf_counter() - wall
        await http.close()
        return result

    return asyncio.run(main())


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


def backend_cost(n: int = 2000) -> list[list[str]]:
    """Rows of the table: way, µs CPU per call, µs wall per call, CPU ratio to raw POST."""
    ways: dict[str, Callable[[str, int], tuple[float, float]]] = {
        "(a) boto3 invoke_endpoint": _boto3, "(b) SageMakerBackend.invoke": _backend,
        "(c) raw aiohttp POST": _raw, "botocore SigV4 signing alone (no I/O)": _signing}
    process, url = _start_simulator()
    samples: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
    try:
        for _ in range(ROUNDS):
            for way, run in ways.items():
                samples[way].append(run(url, n))
    finally:
        process.terminate()
        process.wait(10)
    cpu = {w: statistics.median(c for c, _ in s) / n * 1e6 for w, s in samples.items()}
    wall = {w: statistics.median(t for _, t in s) / n * 1e6 for w, s in samples.items()}
    reference = cpu["(c) raw aiohttp POST"]
    return [[way, f"{cpu[way]:.0f}", f"{wall[way]:.0f}", f"{cpu[way] / reference:.2f}×"]
            for way in ways]


def main(argv: list[str]) -> None:
    n = int(argv[1]) if len(argv) > 1 else 2000
    rows = backend_cost(n)
    print(_common.run_header(f"Client CPU per SageMaker call, N={n} sequential", argv))
    print(_common.markdown_table(["way", "µs CPU / call", "µs wall / call", "CPU vs (c)"], rows))


if __name__ == "__main__":
    main(sys.argv)
