"""One simulator under a real uvicorn per test module; variant settings reset per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from simulator import Simulator, create_app, make_client, parse_variants
from tests._servers import run_asgi

SPEC = "Variant1=logistic,Variant2=tree,Variant3=naive_bayes"
ENDPOINT = "sim-endpoint"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, Simulator]]:
    app = create_app(parse_variants(SPEC, endpoint=ENDPOINT, seed=1))
    with run_asgi(app) as url:
        yield url, app.state.simulator


@pytest.fixture
def sim(served: tuple[str, Simulator]) -> Iterator[Simulator]:
    simulator = served[1]
    saved = dict(simulator.variants)
    yield simulator
    simulator.variants = saved


@pytest.fixture
def base_url(served: tuple[str, Simulator], sim: Simulator) -> str:
    return served[0]


@pytest.fixture
def client(base_url: str) -> Any:
    return make_client(base_url, max_attempts=1)


DUMMY_KEYS = ("testing", "testing")


def raw_client(base_url: str, attempts: int = 1) -> Any:
    """A plain boto3 client (no hooks), as any SageMaker user has; ``attempts`` in all."""
    key, secret = DUMMY_KEYS
    return boto3.client("sagemaker-runtime", endpoint_url=base_url, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=Config(retries={"total_max_attempts": attempts,
                                               "mode": "standard"}))
