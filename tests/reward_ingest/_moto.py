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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cli.local_servers import moto_server as moto_server  # re-exported for the tests

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/bandit-router-test"


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
