"""Client CPU per SageMaker call with aiobotocore, against a raw aiohttp POST.

    python3 -m venv /tmp/aiobotocore-venv
    /tmp/aiobotocore-venv/bin/pip install aiobotocore
    /tmp/aiobotocore-venv/bin/python bench/_aiobotocore_cost.py \\
        --project-python .venv/bin/python [N]

Its own venv: aiobotocore pins botocore to the releases it was built against, older
than the botocore the project's boto3 needs, so it cannot share the project's venv.
Hence this script imports nothing from the project (stdlib, aiobotocore, the aiohttp
it brings, and ``bench/_client_cost.py``, which needs no more); the project's python
only serves the simulator, in a child process (zero latency), so
``time.process_time()`` here is the client's CPU alone.

Each way makes N calls (after a warm-up) in three interleaved rounds, one at a time
and 32 in flight from an asyncio loop; the tables show median µs of CPU and of wall
time per call, calls/s at 32, and the CPU ratio to the raw POST (c) made in this
same process: the reference ``bench/_backend_cost.py`` prints, so the two scripts'
ratios compare even where their absolute figures differ.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import _client_cost
from _client_cost import BODY, CONCURRENCY, ENDPOINT, KEYS, REFERENCE, Call, Setup, Way
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

AIOBOTOCORE = "(e) aiobotocore invoke_endpoint"


def _simulate(project_python: str) -> Callable[[int], list[str]]:
    """The project's simulator (the ``bandit-router simulate`` CLI), as
    ``_backend_cost.py`` serves it: endpoint ``bench``, Variant1 a logistic model."""
    return lambda port: [project_python, "-m", "cli", "simulate", "--port",
                         str(port), "--variants", "Variant1=logistic", "--endpoint", ENDPOINT]


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


WAYS: dict[str, Setup] = {AIOBOTOCORE: _aiobotocore_call, REFERENCE: _client_cost.raw_call}
ONE: dict[str, Way] = {way: _client_cost.async_way(setup, 1) for way, setup in WAYS.items()}
MANY: dict[str, Way] = {way: _client_cost.async_way(setup, CONCURRENCY)
                        for way, setup in WAYS.items()}


def aiobotocore_cost(project_python: str, n: int) -> _client_cost.Tables:
    """Rows of both tables: one call at a time (way, µs CPU, µs wall, CPU ratio to the
    raw POST) and 32 in flight (way, calls/s, µs CPU, CPU ratio to the raw POST)."""
    with (tempfile.TemporaryFile() as log,
          _client_cost.simulator(_simulate(project_python), log) as url):
        one, many = _client_cost.sample(url, ONE, MANY, n)
    return _client_cost.table_rows(one, many, n)


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
            f"simulator: `{project_python} -m cli simulate`")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--project-python",
                        default=str(_client_cost.ROOT / ".venv" / "bin" / "python"),
                        help="the project venv's python, which serves the simulator")
    parser.add_argument("n", nargs="?", type=int, default=2000, help="calls per way and round")
    args = parser.parse_args(argv[1:])
    _client_cost.exit_on_sigterm()
    rows = aiobotocore_cost(args.project_python, args.n)
    print(run_header(args.n, argv, args.project_python))
    print()
    print(_client_cost.tables(rows, args.n))


if __name__ == "__main__":
    main(sys.argv)
