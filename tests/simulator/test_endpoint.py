"""The simulator answers boto3's ``sagemaker-runtime`` client as SageMaker Runtime does."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from typing import Any

import pytest

from simulator import Simulator
from tests.simulator.conftest import ENDPOINT, raw_client

ROW = [0.5, -1.2, 0.3, 0.9, -0.4, 0.1]


def _invoke(client: Any, **params: Any) -> Any:
    params.setdefault("EndpointName", ENDPOINT)
    params.setdefault("Body", json.dumps({"instances": [ROW]}))
    params.setdefault("ContentType", "application/json")
    return client.invoke_endpoint(**params)


def _put(base_url: str, variant: str, settings: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 (a loopback http URL)
        f"{base_url}/_sim/variants/{variant}", method="PUT",
                                     data=json.dumps(settings).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        result: dict[str, Any] = json.load(response)
        return result


def test_ping(base_url: str) -> None:
    with urllib.request.urlopen(f"{base_url}/ping", timeout=5) as response:  # noqa: S310
        assert response.status == 200


def test_target_variant_is_served_and_reported(base_url: str) -> None:
    client = raw_client(base_url)
    for variant in ("Variant1", "Variant2", "Variant3"):
        response = _invoke(client, TargetVariant=variant, CustomAttributes="trace=42")
        assert response["InvokedProductionVariant"] == variant
        assert response["CustomAttributes"] == "trace=42"
        assert response["ContentType"] == "application/json"
        prediction = json.loads(response["Body"].read())["predictions"][0]
        assert prediction["label"] in (0, 1)
        assert 0.5 <= prediction["score"] <= 1.0


def test_without_target_variants_are_drawn_by_weight(base_url: str, sim: Simulator) -> None:
    client = raw_client(base_url)
    sim.update("Variant3", {"weight": 0.0})
    counts = Counter(_invoke(client)["InvokedProductionVariant"] for _ in range(60))
    assert set(counts) == {"Variant1", "Variant2"}
    assert min(counts.values()) >= 15  # 30 expected each; 15 is > 3.8 sd away


def test_csv_in_csv_out_and_several_instances(base_url: str) -> None:
    client = raw_client(base_url)
    body = "\n".join(",".join(str(v) for v in row) for row in (ROW, [-1.0] * 6, [1.0] * 6))
    response = _invoke(client, Body=body, ContentType="text/csv", Accept="text/csv",
                       TargetVariant="Variant2")
    assert response["ContentType"] == "text/csv"
    lines = response["Body"].read().decode().splitlines()
    assert len(lines) == 3
    assert all(line.split(",")[0] in ("0", "1") for line in lines)
    single = _invoke(client, Body=json.dumps({"features": ROW}), TargetVariant="Variant2")
    label = json.loads(single["Body"].read())["predictions"][0]["label"]
    assert str(label) == lines[0].split(",")[0]


def test_unknown_variant_and_endpoint_are_validation_errors(base_url: str) -> None:
    client = raw_client(base_url)
    with pytest.raises(client.exceptions.ValidationError, match="Variant9"):
        _invoke(client, TargetVariant="Variant9")
    with pytest.raises(client.exceptions.ValidationError, match="nope"):
        _invoke(client, EndpointName="nope")


def test_bad_payload_is_a_model_error_with_status_400(base_url: str) -> None:
    client = raw_client(base_url)
    with pytest.raises(client.exceptions.ModelError) as caught:
        _invoke(client, Body=json.dumps({"instances": [[1.0, 2.0]]}))
    assert caught.value.response["OriginalStatusCode"] == 400
    assert "6 features" in caught.value.response["OriginalMessage"]


def test_injected_model_error(base_url: str) -> None:
    client = raw_client(base_url)
    settings = _put(base_url, "Variant1", {"error_rate": 1.0})
    assert settings["error_rate"] == 1.0
    with pytest.raises(client.exceptions.ModelError) as caught:
        _invoke(client, TargetVariant="Variant1")
    assert caught.value.response["OriginalStatusCode"] == 500
    assert "Variant1" in caught.value.response["OriginalMessage"]
    _invoke(client, TargetVariant="Variant2")  # the others still serve


@pytest.mark.parametrize(("kind", "code", "status"), [
    ("throttle", "ThrottlingException", 400), ("unavailable", "ServiceUnavailable", 503),
    ("internal", "InternalFailure", 500)])
def test_injected_service_errors(base_url: str, kind: str, code: str, status: int) -> None:
    client = raw_client(base_url)
    _put(base_url, "Variant2", {"error_rate": 1.0, "error_kind": kind})
    with pytest.raises(client.exceptions.ClientError) as caught:
        _invoke(client, TargetVariant="Variant2")
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_boto3_retries_injected_throttling(base_url: str, sim: Simulator) -> None:
    # total_max_attempts counts the first call; botocore's max_attempts counts retries only.
    client = raw_client(base_url, attempts=2)
    sim.update("Variant2", {"error_rate": 1.0, "error_kind": "throttle"})
    before = sim.served["Variant2"]
    with pytest.raises(client.exceptions.ClientError):
        _invoke(client, TargetVariant="Variant2")
    assert sim.served["Variant2"] - before == 2


def test_injected_latency(base_url: str) -> None:
    client = raw_client(base_url)
    _put(base_url, "Variant3", {"latency_ms": 80, "jitter_ms": 10})
    start = time.perf_counter()
    _invoke(client, TargetVariant="Variant3")
    assert time.perf_counter() - start >= 0.069


def test_admin_rejects_bad_settings(base_url: str) -> None:
    for settings, status in (({"error_rate": 2}, 400), ({"colour": 1}, 400),
                             ({"error_kind": "meteor"}, 400)):
        with pytest.raises(urllib.error.HTTPError) as caught:
            _put(base_url, "Variant1", settings)
        assert caught.value.code == status
    with pytest.raises(urllib.error.HTTPError) as missing:
        _put(base_url, "Variant9", {"latency_ms": 1})
    assert missing.value.code == 404
