"""Traffic through a boto3 ``sagemaker-runtime`` client, scored against the ground truth.

Each request sends one pool example (JSON or CSV body) to any SageMaker-Runtime-compatible
URL (the simulator, the router, SageMaker itself) and, as ``X-Bandit-Context``, the
example's features by name: boto3 has no parameter for that header, so a
``before-parameter-build`` hook moves our ``BanditContext`` argument into the request
context and a ``before-sign`` hook turns it into the header (signed like the rest).
The reward is 1 when the predicted label is the true one, else 0 (also for errors).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from simulator.models import Pool

H_CONTEXT = "X-Bandit-Context"
_PARAM = "BanditContext"


@dataclass(frozen=True, slots=True)
class TrafficRecord:
    """One request's outcome: which variant served it, and how well."""

    index: int
    event_id: str | None
    variant: str | None
    label: int
    predicted: int | None
    reward: float
    latency_s: float
    error: str | None = None


def _move_param(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    value = params.pop(_PARAM, None)
    if value is not None:
        context["bandit_context"] = value


def _add_header(request: Any, **_: Any) -> None:
    value = request.context.get("bandit_context")
    if value is not None:
        request.headers[H_CONTEXT] = value


def make_client(endpoint_url: str, *, region: str = "us-east-1", max_attempts: int = 1,
                pool_size: int = 10, credentials: tuple[str, str] | None = ("sim", "sim"),
                ) -> Any:
    """A ``sagemaker-runtime`` client for ``endpoint_url`` that can send ``X-Bandit-Context``.

    ``max_attempts`` counts every attempt (1: no retries), unlike botocore's own
    ``retries={"max_attempts": n}``, which counts retries only.
    ``credentials`` default to dummies (local endpoints do not check them); None uses
    botocore's credential chain.
    """
    key, secret = credentials if credentials is not None else (None, None)
    client = boto3.client(
        "sagemaker-runtime", endpoint_url=endpoint_url, region_name=region,
        aws_access_key_id=key, aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": max_attempts, "mode": "standard"},
                      max_pool_connections=pool_size))
    enable_context_header(client)
    return client


def enable_context_header(client: Any) -> None:
    """Let ``client.invoke_endpoint(BanditContext=json_text, ...)`` send ``X-Bandit-Context``."""
    events = client.meta.events
    events.register("before-parameter-build.sagemaker-runtime.InvokeEndpoint", _move_param)
    events.register("before-sign.sagemaker-runtime.InvokeEndpoint", _add_header)


def _predicted(body: bytes, content_type: str) -> int:
    if content_type.startswith("text/csv"):
        return int(body.decode().split(",", 1)[0])
    return int(json.loads(body)["predictions"][0]["label"])


def invoke_one(client: Any, endpoint: str, pool: Pool, index: int, *, csv: bool = False,
               send_context: bool = True, target_variant: str | None = None) -> TrafficRecord:
    """Send pool example ``index`` and score the answer."""
    row = pool.features[index]
    label = int(pool.labels[index])
    params: dict[str, Any] = {"EndpointName": endpoint}
    if csv:
        params |= {"Body": ",".join(f"{v:.9g}" for v in row), "ContentType": "text/csv",
                   "Accept": "text/csv"}
    else:
        params |= {"Body": json.dumps({"instances": [row.tolist()]}),
                   "ContentType": "application/json", "Accept": "application/json"}
    if send_context:
        params[_PARAM] = json.dumps(pool.context(index), separators=(",", ":"))
    if target_variant is not None:
        params["TargetVariant"] = target_variant
    start = time.perf_counter()
    try:
        response = client.invoke_endpoint(**params)
        body = response["Body"].read()
    except ClientError as exc:
        headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return TrafficRecord(index, headers.get("x-bandit-event-id"),
                             headers.get("x-amzn-invoked-production-variant"), label, None,
                             0.0, time.perf_counter() - start,
                             exc.response.get("Error", {}).get("Code", "ClientError"))
    except BotoCoreError as exc:
        return TrafficRecord(index, None, None, label, None, 0.0,
                             time.perf_counter() - start, type(exc).__name__)
    latency = time.perf_counter() - start
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    predicted = _predicted(body, response.get("ContentType", ""))
    return TrafficRecord(index, headers.get("x-bandit-event-id"),
                         response.get("InvokedProductionVariant"), label, predicted,
                         1.0 if predicted == label else 0.0, latency)


def generate(client: Any, endpoint: str, pool: Pool, *, count: int,
             duration_s: float | None = None, concurrency: int = 1, seed: int = 0,
             csv: bool = False, send_context: bool = True,
             target_variant: str | None = None) -> Iterator[TrafficRecord]:
    """Up to ``count`` requests (stopping early after ``duration_s``), yielded as answered.

    Examples are drawn from ``pool`` with a seeded RNG; at most ``concurrency`` requests
    are in flight (a thread pool; boto3 clients are thread-safe).
    """
    if count < 0 or concurrency < 1:
        raise ValueError("count must be >= 0 and concurrency >= 1")
    rng = random.Random(seed)  # noqa: S311 (reproducible traffic, not cryptography)
    deadline = None if duration_s is None else time.monotonic() + duration_s
    sent = 0
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="traffic") as workers:
        pending: set[Future[TrafficRecord]] = set()
        while True:
            while (sent < count and len(pending) < concurrency
                   and (deadline is None or time.monotonic() < deadline)):
                index = rng.randrange(len(pool))
                pending.add(workers.submit(invoke_one, client, endpoint, pool, index, csv=csv,
                                           send_context=send_context,
                                           target_variant=target_variant))
                sent += 1
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()
