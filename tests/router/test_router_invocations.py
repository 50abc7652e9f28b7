"""boto3 → router → simulator: InvokeEndpoint works unchanged, every decision is logged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from simulator import enable_context_header
from tests.router._stack import SIM_ENDPOINT, Stack, experiment, router_stack, settings

BODY = json.dumps({"instances": [[0.1, -0.2, 0.3, 0.4, -0.5, 0.6]]})


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    config = settings(experiment(policy={"type": "static", "weights": {
        "Variant1": 2, "Variant2": 1, "Variant3": 1}}))
    with router_stack(config) as running:
        yield running


JSON_CONTEXT = {"from": "json", "pointers": ["/instances/0/0",
                                             {"pointer": "/instances/0/1", "name": "f1"}]}
CSV_CONTEXT = {"from": "csv", "columns": [0, {"column": 2, "name": "third"}]}


def logged(stack: Stack) -> list[dict[str, Any]]:
    # MemoryStore.read_decisions only reads a list: safe from the test's thread.
    return [event for _, event in asyncio.run(stack.store.read_decisions(1_000_000))]


def by_id(stack: Stack, event_id: str) -> dict[str, Any]:
    matches = [event for event in logged(stack) if event["event_id"] == event_id]
    assert len(matches) == 1, f"{event_id} logged {len(matches)} times"
    return matches[0]


def test_invoke_endpoint_routes_and_logs_the_decision(stack: Stack) -> None:
    client = stack.client()
    answer = client.invoke_endpoint(EndpointName=SIM_ENDPOINT, Body=BODY,
                                    ContentType="application/json")
    headers = answer["ResponseMetadata"]["HTTPHeaders"]
    variant = answer["InvokedProductionVariant"]
    assert variant in ("Variant1", "Variant2", "Variant3")
    assert answer["ContentType"].startswith("application/json")
    assert "predictions" in json.loads(answer["Body"].read())
    event = by_id(stack, headers["x-bandit-event-id"])
    assert event["variant"] == variant
    assert event["probabilities"] == {"Variant1": 0.5, "Variant2": 0.25, "Variant3": 0.25}
    assert event["probability"] == event["probabilities"][variant]
    assert float(headers["x-bandit-probability"]) == event["probability"]
    assert headers["x-bandit-policy-version"] == str(event["policy_version"])
    assert event["targeted"] is False and event["outcome"] == "ok"
    assert event["experiment"] == "exp" and event["source"] == "invocations"
    assert event["latency_ms"] > 0


def test_target_variant_inference_id_and_custom_attributes(stack: Stack) -> None:
    client = stack.client()
    answer = client.invoke_endpoint(
        EndpointName=SIM_ENDPOINT, Body=BODY, ContentType="application/json",
        TargetVariant="Variant3", InferenceId="req-42 from the app",
        CustomAttributes="trace=abc;tenant=7")
    assert answer["InvokedProductionVariant"] == "Variant3"
    assert answer["CustomAttributes"] == "trace=abc;tenant=7"
    headers = answer["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-bandit-event-id"] == "req-42 from the app"
    event = by_id(stack, "req-42 from the app")
    assert event["targeted"] is True
    assert event["probability"] == 1.0 and event["probabilities"] == {"Variant3": 1.0}


def test_context_header_is_logged(stack: Stack) -> None:
    client = stack.client()
    enable_context_header(client)
    answer = client.invoke_endpoint(EndpointName=SIM_ENDPOINT, Body=BODY,
                                    BanditContext=json.dumps({"country": "NZ", "age": 41}))
    event = by_id(stack, answer["ResponseMetadata"]["HTTPHeaders"]["x-bandit-event-id"])
    assert event["context"] == {"country": "NZ", "age": 41}


def test_json_and_csv_contexts() -> None:
    with router_stack(settings(experiment("by-json", context=JSON_CONTEXT))) as stack:
        client = stack.client()
        answer = client.invoke_endpoint(EndpointName=SIM_ENDPOINT, Body=BODY,
                                        ContentType="application/json")
        event = by_id(stack, answer["ResponseMetadata"]["HTTPHeaders"]["x-bandit-event-id"])
        assert event["context"] == {"0": 0.1, "f1": -0.2}
        assert event["experiment"] == "by-json"
        with pytest.raises(client.exceptions.ValidationError) as caught:
            client.invoke_endpoint(EndpointName=SIM_ENDPOINT, Body=b'{"instances": []}')
        assert "/instances/0/0" in caught.value.response["Error"]["Message"]
    with router_stack(settings(experiment("by-csv", context=CSV_CONTEXT))) as stack:
        client = stack.client()
        answer = client.invoke_endpoint(EndpointName=SIM_ENDPOINT, ContentType="text/csv",
                                        Body="0.5,1.5,-2.5,0,0,0", Accept="text/csv")
        event = by_id(stack, answer["ResponseMetadata"]["HTTPHeaders"]["x-bandit-event-id"])
        assert event["context"] == {"c0": 0.5, "third": -2.5}
        assert answer["ContentType"].startswith("text/csv")
        with pytest.raises(client.exceptions.ValidationError) as caught:
            client.invoke_endpoint(EndpointName=SIM_ENDPOINT, Body=b"1", ContentType="text/csv")
        assert "column 2" in caught.value.response["Error"]["Message"]
        assert len(logged(stack)) == 1


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"EndpointName": "nope"}, "Endpoint nope not found"),
    ({"EndpointName": SIM_ENDPOINT, "TargetVariant": "Variant9"}, "TargetVariant 'Variant9'"),
])
def test_bad_requests_are_validation_errors(stack: Stack, kwargs: dict[str, Any],
                                            fragment: str) -> None:
    client = stack.client()
    before = len(logged(stack))
    with pytest.raises(client.exceptions.ValidationError) as caught:
        client.invoke_endpoint(**{"Body": BODY, **kwargs})
    assert fragment in caught.value.response["Error"]["Message"]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert len(logged(stack)) == before  # refused before a decision: nothing logged


def test_bad_context_header_names_the_problem(stack: Stack) -> None:
    response = httpx.post(f"{stack.router_url}/endpoints/{SIM_ENDPOINT}/invocations",
                          content=BODY, headers={"X-Bandit-Context": "[1, 2]"})
    assert response.status_code == 400
    assert response.headers["x-amzn-errortype"] == "ValidationError"
    assert "X-Bandit-Context" in response.json()["message"]


def test_body_over_6_mb_is_refused(stack: Stack) -> None:
    response = httpx.post(f"{stack.router_url}/endpoints/{SIM_ENDPOINT}/invocations",
                          content=b"x" * (6 * 1024 * 1024 + 1))
    assert response.status_code == 400
    assert "6 MB" in response.json()["message"]


@pytest.mark.parametrize(("kind", "exception", "status"), [
    ("model", "ModelError", 424),
    ("unavailable", "ServiceUnavailable", 503),
    ("throttle", "ServiceUnavailable", 503),
    ("internal", "InternalFailure", 500),
    ("not_ready", "ModelNotReadyException", 429),
])
def test_variant_failures_raise_sagemakers_exception_classes(
        stack: Stack, kind: str, exception: str, status: int) -> None:
    stack.set_variant("Variant2", error_rate=1.0, error_kind=kind)
    try:
        client = stack.client()
        with pytest.raises(getattr(client.exceptions, exception)) as caught:
            client.invoke_endpoint(EndpointName=SIM_ENDPOINT, Body=BODY,
                                   TargetVariant="Variant2")
    finally:
        stack.set_variant("Variant2", error_rate=0.0, error_kind="model")
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    event = by_id(stack, response["ResponseMetadata"]["HTTPHeaders"]["x-bandit-event-id"])
    assert event["variant"] == "Variant2"
    assert event["outcome"] != "ok"
    if kind == "model":
        assert response["OriginalStatusCode"] == 500
        assert "injected failure" in response["OriginalMessage"]


def test_decision_only_api_with_eligible_and_sticky_units(stack: Stack) -> None:
    url = f"{stack.router_url}/v1/experiments/exp/decisions"
    answer = httpx.post(url, json={"context": {"a": 1}, "eligible": ["Variant2", "Variant3"],
                                   "event_id": "only-1"}).json()
    assert answer["event_id"] == "only-1"
    assert answer["variant"] in ("Variant2", "Variant3")
    assert answer["probabilities"]["Variant1"] == 0.0
    assert answer["probabilities"]["Variant2"] == pytest.approx(0.5)
    event = by_id(stack, "only-1")
    assert event["eligible"] == ["Variant2", "Variant3"] and event["outcome"] == "decided"
    chosen = {httpx.post(url, json={"unit_id": "user-7"}).json()["variant"] for _ in range(20)}
    assert len(chosen) == 1
    spread = {httpx.post(url, json={"unit_id": f"user-{i}"}).json()["variant"]
              for i in range(40)}
    assert spread == {"Variant1", "Variant2", "Variant3"}


@pytest.mark.parametrize(("body", "fragment"), [
    ({"eligible": ["Nope"]}, "eligible: unknown variant"),
    ({"eligible": []}, "eligible"),
    ({"context": [1]}, "context"),
    ({"surprise": 1}, "surprise: unknown key"),
    ({"event_id": ""}, "event_id"),
])
def test_decision_only_api_refuses_bad_bodies(stack: Stack, body: dict[str, Any],
                                              fragment: str) -> None:
    response = httpx.post(f"{stack.router_url}/v1/experiments/exp/decisions", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["message"]


def test_unknown_experiment_and_non_json_bodies(stack: Stack) -> None:
    response = httpx.post(f"{stack.router_url}/v1/experiments/zzz/decisions", json={})
    assert response.status_code == 400 and "zzz" in response.json()["message"]
    response = httpx.post(f"{stack.router_url}/v1/experiments/exp/decisions",
                          content=b"{not json")
    assert response.status_code == 400 and "not valid JSON" in response.json()["message"]


def test_health_readiness_and_metrics(stack: Stack) -> None:
    assert httpx.get(f"{stack.router_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{stack.router_url}/readyz")
    assert ready.status_code == 200 and ready.json()["store"]["reachable"] is True
    stack.client().invoke_endpoint(EndpointName=SIM_ENDPOINT, Body=BODY,
                                   TargetVariant="Variant1")
    text = httpx.get(f"{stack.router_url}/metrics").text
    assert 'bandit_router_decisions_total{experiment="exp",targeted="true",variant="Variant1"}' \
        in text
    assert "bandit_router_invocation_seconds_bucket" in text


def test_openapi_documents_every_route(stack: Stack) -> None:
    paths = httpx.get(f"{stack.router_url}/openapi.json").json()["paths"]
    for path in ("/endpoints/{endpoint_name}/invocations",
                 "/v1/experiments/{experiment}/decisions", "/healthz", "/readyz", "/metrics",
                 "/v1/experiments/{name}", "/v1/experiments/{name}/stats"):
        assert path in paths, path
    body = paths["/v1/experiments/{experiment}/decisions"]["post"]["requestBody"]
    assert "eligible" in body["content"]["application/json"]["schema"]["properties"]
    assert httpx.get(f"{stack.router_url}/docs").status_code == 200
