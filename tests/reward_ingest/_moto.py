"""moto's server as a subprocess, and SageMaker endpoints created in it through boto3.

What moto 5.2 does for the SageMaker control plane (read from moto/sagemaker/models.py
and checked against the server):

- CreateEndpoint makes an endpoint that is ``InService`` at once, and no call or
  moto-api switch moves it to another status (no Creating/Updating/Failed; moto's
  state manager does not cover SageMaker endpoints, and UpdateEndpoint is not there).
- DescribeEndpoint returns ProductionVariants with CurrentWeight/DesiredWeight and
  CurrentInstanceCount/DesiredInstanceCount as given at creation, except that a weight
  (or count) of 0 is left out (moto tests the value for truth).
- UpdateEndpointWeightsAndCapacities is implemented: it checks the endpoint exists and
  every named variant is on it (ValidationException otherwise), then sets Current and
  Desired weight *and* instance count from the request, at once. A request without
  DesiredInstanceCount makes moto forget the variant's instance counts (real SageMaker
  keeps them). Weights are stored as sent, not normalised.
- An unknown endpoint is ``ValidationException: Could not find endpoint '<arn>'.``

``force_endpoint_status`` is how the tests see a non-InService endpoint: a botocore
event handler on the (real) client rewrites EndpointStatus in DescribeEndpoint's parsed
response; the request still goes to moto. It is the one place the tests alter an AWS
answer, because moto cannot produce that answer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests._servers import free_port

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/bandit-router-test"


def _command(port: int) -> list[str]:
    """``moto_server`` next to this interpreter (the venv's), else ``python -m moto.server``."""
    script = Path(sys.executable).with_name("moto_server")
    if script.exists():
        return [str(script), "-H", "127.0.0.1", "-p", str(port)]
    found = shutil.which("moto_server")
    if found:
        return [found, "-H", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=0.5):  # noqa: S310
            return True
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def moto_server(timeout_s: float = 15.0, attempts: int = 3) -> Iterator[str]:
    """Run moto's server on a free loopback port until the block ends; yields its URL.

    The port is found free then handed to moto, so another process may take it in
    between: if moto exits before answering, a new port is tried. Stopped by PID.
    """
    for attempt in range(attempts):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, our own interpreter's tool
            _command(port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None and not _answers(url):
            if time.monotonic() > deadline:
                _stop(proc)
                raise RuntimeError(f"moto_server did not answer on {url} in {timeout_s} s")
            time.sleep(0.05)
        if proc.poll() is None:
            break
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if attempt == attempts - 1:
            raise RuntimeError(f"moto_server exited with {proc.returncode}: {stderr[-2000:]}")
    try:
        yield url
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the one process we started (by its PID), then kill it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc.stderr:
        proc.stderr.close()


def aws_env(url: str) -> dict[str, str]:
    """Environment for boto3 to talk to moto at ``url`` with dummy credentials only.

    Points the config and credentials files nowhere, so nobody's real AWS settings leak in.
    """
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL_SAGEMAKER": url,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def create_endpoint(client: SageMakerClient, name: str, weights: Mapping[str, float], *,
                    instances: Mapping[str, int] | None = None) -> None:
    """Create a model, an endpoint config with one production variant per entry of
    ``weights`` (InitialVariantWeight) and an endpoint ``name`` using it."""
    model = f"{name}-model"
    client.create_model(ModelName=model, ExecutionRoleArn=ROLE_ARN,
                        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1"
                                                   ".amazonaws.com/model:latest"})
    client.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[
            {"VariantName": variant, "ModelName": model, "InstanceType": "ml.m5.large",
             "InitialInstanceCount": (instances or {}).get(variant, 1),
             "InitialVariantWeight": weight}
            for variant, weight in weights.items()])
    client.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")


def endpoint_weights(client: SageMakerClient, name: str) -> dict[str, float]:
    """The endpoint's CurrentWeight per variant (0 when moto leaves it out)."""
    variants = client.describe_endpoint(EndpointName=name)["ProductionVariants"]
    return {v["VariantName"]: float(v.get("CurrentWeight", 0.0)) for v in variants}


def endpoint_instances(client: SageMakerClient, name: str) -> dict[str, int]:
    """The endpoint's CurrentInstanceCount per variant (0 when moto leaves it out)."""
    variants = client.describe_endpoint(EndpointName=name)["ProductionVariants"]
    return {v["VariantName"]: int(v.get("CurrentInstanceCount", 0)) for v in variants}


def force_endpoint_status(client: SageMakerClient, status: str) -> None:
    """Make ``client`` see ``status`` in every DescribeEndpoint answer from moto."""
    def rewrite(parsed: dict[str, Any], **_: Any) -> None:
        if "EndpointStatus" in parsed:
            parsed["EndpointStatus"] = status

    client.meta.events.register("after-call.sagemaker.DescribeEndpoint", rewrite)
