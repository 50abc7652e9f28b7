"""The simulator's ASGI app: SageMaker Runtime's ``InvokeEndpoint`` over real models.

Routes:

* ``POST /endpoints/{EndpointName}/invocations``: as SageMaker Runtime (rest-json):
  honours ``X-Amzn-SageMaker-Target-Variant`` (unknown → ValidationError), otherwise
  picks a variant by weight with a seeded RNG; answers the model's predictions with
  ``X-Amzn-Invoked-Production-Variant`` and the custom attributes echoed.
* ``POST /variants/{name}/invocations``: the same variant as a plain model server
  (what ``HttpBackend`` calls); failures are bare HTTP statuses.
* ``GET /ping``; ``GET /_sim/variants``; ``PUT /_sim/variants/{name}`` with any of
  ``latency_ms``, ``jitter_ms``, ``error_rate``, ``error_kind``, ``weight``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from router.errors import (
    InternalFailure,
    ModelError,
    ModelNotReady,
    RouterError,
    ServiceUnavailable,
    ValidationError,
    error_response,
)
from simulator.models import Dataset, Model, make_dataset, train_models
from simulator.payload import parse_rows, render
from simulator.spec import SimulatorSpec, VariantSpec

H_TARGET = "x-amzn-sagemaker-target-variant"
H_CUSTOM = "X-Amzn-SageMaker-Custom-Attributes"
H_INVOKED = "X-Amzn-Invoked-Production-Variant"
_TUNABLE = {"latency_ms": float, "jitter_ms": float, "error_rate": float,
            "error_kind": str, "weight": float}


class ThrottlingError(RouterError):
    """What AWS answers when a caller is throttled (botocore retries it)."""

    code = "ThrottlingException"
    status = 400


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """The last invocation as received, so tests can check headers and signatures."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), if any."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


class Simulator:
    """The simulator's state: trained models, current variant settings, its RNG."""

    def __init__(self, spec: SimulatorSpec, dataset: Dataset | None = None) -> None:
        self.spec = spec
        self.dataset = dataset if dataset is not None else make_dataset(spec.seed)
        self.models: dict[str, Model] = train_models((v.model for v in spec.variants),
                                                     self.dataset, spec.seed)
        self.variants: dict[str, VariantSpec] = {v.name: v for v in spec.variants}
        self.served: dict[str, int] = dict.fromkeys(self.variants, 0)
        self.last_request: RecordedRequest | None = None
        # A seeded, reproducible simulation, not cryptography.
        self._rng = random.Random(spec.seed)  # noqa: S311

    def choose(self) -> str:
        """A variant drawn by the current weights."""
        names = list(self.variants)
        weights = [self.variants[n].weight for n in names]
        return self._rng.choices(names, weights)[0]

    def update(self, name: str, changes: dict[str, Any]) -> VariantSpec:
        """Apply ``changes`` to variant ``name``; ValueError naming a bad key or value."""
        if name not in self.variants:
            raise KeyError(name)
        fields: dict[str, Any] = {}
        for key, value in changes.items():
            kind = _TUNABLE.get(key)
            if kind is None:
                raise ValueError(f"unknown setting {key!r}; expected {', '.join(_TUNABLE)}")
            if kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ValueError(f"{key} must be a number")
            if kind is str and not isinstance(value, str):
                raise ValueError(f"{key} must be a string")
            fields[key] = kind(value)
        updated = dataclasses.replace(self.variants[name], **fields)
        if sum(v.weight for n, v in self.variants.items() if n != name) + updated.weight <= 0:
            raise ValueError("at least one variant needs a weight > 0")
        self.variants[name] = updated
        return updated

    async def run(self, name: str, body: bytes, content_type: str | None,
                  accept: str | None) -> tuple[bytes, str]:
        """Serve one request on variant ``name``: delay, maybe fail, else predict."""
        variant = self.variants[name]
        self.served[name] += 1
        delay = variant.latency_ms
        if variant.jitter_ms:
            delay += self._rng.uniform(-variant.jitter_ms, variant.jitter_ms)
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        if variant.error_rate and self._rng.random() < variant.error_rate:
            raise _injected(variant)
        try:
            rows = parse_rows(body, content_type)
            predictions = self.models[variant.model].predict(rows)
        except ValueError as exc:
            # A container rejecting its input: SageMaker wraps that in a ModelError.
            raise ModelError(f"Received client error (400) from primary with message "
                             f'"{exc}".', original_status_code=400,
                             original_message=str(exc)) from None
        return render(predictions, accept)


def _injected(variant: VariantSpec) -> RouterError:
    if variant.error_kind == "throttle":
        return ThrottlingError("Rate exceeded")
    if variant.error_kind == "unavailable":
        return ServiceUnavailable("Service is unavailable; retry later.")
    if variant.error_kind == "internal":
        return InternalFailure("An internal failure occurred.")
    if variant.error_kind == "not_ready":
        return ModelNotReady(f"Model for variant {variant.name} is not ready yet.")
    message = f"injected failure in variant {variant.name}"
    return ModelError(f'Received server error (500) from primary with message "{message}".',
                      original_status_code=500, original_message=message)


def _record(request: Request, body: bytes) -> RecordedRequest:
    return RecordedRequest(request.method, request.url.path, request.url.query,
                           tuple(request.headers.items()), body)


def create_app(spec: SimulatorSpec, dataset: Dataset | None = None) -> Starlette:
    """The simulator as an ASGI app; its state is ``app.state.simulator``."""
    sim = Simulator(spec, dataset)

    async def invoke(request: Request) -> Response:
        body = await request.body()
        sim.last_request = _record(request, body)
        endpoint = request.path_params["endpoint"]
        if endpoint != spec.endpoint:
            return error_response(ValidationError(f"Endpoint {endpoint} not found."))
        target = request.headers.get(H_TARGET)
        if target is not None and target not in sim.variants:
            return error_response(ValidationError(
                f"Variant {target} not found for endpoint {endpoint}."))
        name = target if target is not None else sim.choose()
        try:
            content, media = await sim.run(name, body, request.headers.get("content-type"),
                                           request.headers.get("accept"))
        except RouterError as exc:
            return error_response(exc)
        # content-type set as is: Starlette would append "; charset=utf-8" to text/csv.
        headers = {"content-type": media, H_INVOKED: name,
                   "x-amzn-RequestId": str(uuid.uuid4())}
        custom = request.headers.get(H_CUSTOM)
        if custom is not None:
            headers[H_CUSTOM] = custom
        return Response(content, headers=headers)

    async def invoke_variant(request: Request) -> Response:
        body = await request.body()
        sim.last_request = _record(request, body)
        name = request.path_params["variant"]
        if name not in sim.variants:
            return PlainTextResponse(f"no variant {name}", status_code=404)
        try:
            content, media = await sim.run(name, body, request.headers.get("content-type"),
                                           request.headers.get("accept"))
        except ModelError as exc:
            return PlainTextResponse(str(exc.extra["OriginalMessage"]),
                                     status_code=exc.original_status_code)
        except RouterError as exc:
            status = 429 if isinstance(exc, ThrottlingError) else exc.status
            return PlainTextResponse(exc.message, status_code=status)
        return Response(content, headers={"content-type": media})

    async def ping(request: Request) -> Response:
        return Response(status_code=200)

    async def list_variants(request: Request) -> Response:
        return JSONResponse({n: dataclasses.asdict(v) | {"served": sim.served[n]}
                             for n, v in sim.variants.items()})

    async def put_variant(request: Request) -> Response:
        name = request.path_params["variant"]
        try:
            changes = json.loads(await request.body())
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object")
            updated = sim.update(name, changes)
        except KeyError:
            return JSONResponse({"message": f"no variant {name}"}, status_code=404)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            return JSONResponse({"message": str(exc)}, status_code=400)
        return JSONResponse(dataclasses.asdict(updated))

    app = Starlette(routes=[
        Route("/endpoints/{endpoint}/invocations", invoke, methods=["POST"]),
        Route("/variants/{variant}/invocations", invoke_variant, methods=["POST"]),
        Route("/ping", ping, methods=["GET"]),
        Route("/_sim/variants", list_variants, methods=["GET"]),
        Route("/_sim/variants/{variant}", put_variant, methods=["PUT"]),
    ])
    app.state.simulator = sim
    return app
