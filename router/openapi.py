"""OpenAPI entries for the routes written as plain Starlette handlers (the hot paths).

FastAPI documents only the routes it builds itself; the invocation, decision and
operations routes skip its request parsing for speed, so their ``/docs`` entries
are written here, from the same pydantic model the decision route validates with.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from .routes.decisions import DecisionRequest

_ERROR = {"content": {"application/json": {"schema": {
    "type": "object", "properties": {"message": {"type": "string"}}}}}}


def _header(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "description": description,
            "schema": {"type": "string"}}


def _errors(*codes: tuple[str, str]) -> dict[str, Any]:
    return {status: {"description": f"{name} (header x-amzn-ErrorType)", **_ERROR}
            for status, name in codes}


INVOCATIONS: dict[str, Any] = {"post": {
    "summary": "InvokeEndpoint, routed by the bandit (SageMaker Runtime wire format)",
    "description": "Point a boto3 `sagemaker-runtime` client's `endpoint_url` here. The "
                   "router picks a variant, invokes it with TargetVariant, logs the "
                   "decision, and answers with the model's body.",
    "parameters": [
        {"name": "endpoint_name", "in": "path", "required": True, "schema": {"type": "string"}},
        _header("Content-Type", "the payload's type, passed to the variant"),
        _header("Accept", "the wanted answer type, passed to the variant"),
        _header("X-Amzn-SageMaker-Custom-Attributes", "passed through both ways"),
        _header("X-Amzn-SageMaker-Target-Variant", "serve this variant (probability 1, "
                                                   "logged as targeted)"),
        _header("X-Amzn-SageMaker-Inference-Id", "becomes the event id"),
        _header("X-Bandit-Context", "a JSON object of features"),
        _header("X-Bandit-Unit-Id", "sticky key: same unit, same variant while shares hold"),
    ],
    "requestBody": {"content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
    "responses": {
        "200": {"description": "The variant's answer; headers "
                               "X-Amzn-Invoked-Production-Variant, X-Bandit-Event-Id, "
                               "X-Bandit-Probability, X-Bandit-Policy-Version",
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}},
        **_errors(("400", "ValidationError"), ("424", "ModelError"),
                  ("429", "ModelNotReadyException"), ("500", "InternalFailure"),
                  ("503", "ServiceUnavailable")),
    },
}}

DECISIONS: dict[str, Any] = {"post": {
    "summary": "A decision without an invocation (logged like a routed one)",
    "parameters": [{"name": "experiment", "in": "path", "required": True,
                    "schema": {"type": "string"}}],
    "requestBody": {"content": {"application/json": {
        "schema": DecisionRequest.model_json_schema()}}},
    "responses": {
        "200": {"description": "event_id, variant, probability, probabilities, "
                               "policy_version",
                "content": {"application/json": {"schema": {"type": "object"}}}},
        **_errors(("400", "ValidationError"), ("503", "ServiceUnavailable")),
    },
}}


def _get(summary: str, media: str = "application/json") -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": {"200": {
        "description": "OK", "content": {media: {"schema": {}}}}}}}


def document_routes(app: FastAPI) -> None:
    """Add the hand-written routes to the app's OpenAPI document (``/docs``)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema["paths"] = {
                "/endpoints/{endpoint_name}/invocations": INVOCATIONS,
                "/v1/experiments/{experiment}/decisions": DECISIONS,
                "/healthz": _get("The process is up"),
                "/readyz": _get("Ready: policies loaded, decisions can be logged or spooled "
                                "(503 otherwise)"),
                "/metrics": _get("Prometheus metrics", "text/plain"),
                **schema["paths"],
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
