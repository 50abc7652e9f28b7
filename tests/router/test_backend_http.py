"""HttpBackend against the simulator's per-variant model-server routes under uvicorn."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from router.backends import HttpBackend, InvokeRequest, InvokeResult
from router.errors import InternalFailure, ModelError, ServiceUnavailable, ValidationError
from simulator import Simulator, create_app, parse_variants
from tests._servers import free_port, run_asgi

T = TypeVar("T")
ROW = [0.5, -1.2, 0.3, 0.9, -0.4, 0.1]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, Simulator]]:
    app = create_app(parse_variants("Variant1=logistic,Variant2=tree"))
    with run_asgi(app) as url:
        yield url, app.state.simulator


@pytest.fixture
def sim(served: tuple[str, Simulator]) -> Iterator[Simulator]:
    simulator = served[1]
    saved = dict(simulator.variants)
    yield simulator
    simulator.variants = saved


@pytest.fixture
def urls(served: tuple[str, Simulator], sim: Simulator) -> dict[str, str]:
    return {v: f"{served[0]}/variants/{v}/invocations" for v in ("Variant1", "Variant2")}


def _run(urls: dict[str, str], make: Callable[[HttpBackend], Awaitable[T]],
         **options: Any) -> T:
    async def main() -> T:
        backend = HttpBackend(urls, **options)
        await backend.start()
        try:
            return await make(backend)
        finally:
            await backend.close()

    return asyncio.run(main())


def _request(variant: str = "Variant1", body: object = None, **fields: Any) -> InvokeRequest:
    payload = {"instances": [ROW]} if body is None else body
    fields.setdefault("content_type", "application/json")
    return InvokeRequest(endpoint="e", variant=variant, body=json.dumps(payload).encode(),
                         **fields)


def test_success_on_each_variant(urls: dict[str, str], sim: Simulator) -> None:
    async def calls(backend: HttpBackend) -> list[InvokeResult]:
        return [await backend.invoke(_request(v, accept="text/csv", custom_attributes="a=b"))
                for v in ("Variant1", "Variant2")]

    before = dict(sim.served)
    results = _run(urls, calls)
    assert [r.invoked_variant for r in results] == ["Variant1", "Variant2"]
    assert all(r.content_type == "text/csv" for r in results)
    assert {k: sim.served[k] - before[k] for k in before} == {"Variant1": 1, "Variant2": 1}
    assert sim.last_request is not None
    assert sim.last_request.header("x-amzn-sagemaker-custom-attributes") == "a=b"
    json_result = _run(urls, lambda b: b.invoke(_request("Variant2")))
    assert json.loads(json_result.body)["predictions"][0]["label"] in (0, 1)


def test_failures_are_model_errors_with_the_original_status(urls: dict[str, str],
                                                            sim: Simulator) -> None:
    sim.update("Variant1", {"error_rate": 1.0})
    with pytest.raises(ModelError) as caught:
        _run(urls, lambda b: b.invoke(_request("Variant1")))
    assert caught.value.original_status_code == 500
    assert caught.value.original_message == "injected failure in variant Variant1"
    sim.update("Variant1", {"error_kind": "throttle"})
    with pytest.raises(ModelError) as throttled:
        _run(urls, lambda b: b.invoke(_request("Variant1")))
    assert throttled.value.original_status_code == 429
    with pytest.raises(ModelError) as bad:
        _run(urls, lambda b: b.invoke(_request("Variant2", {"instances": [[1, 2]]})),
             max_error_chars=12)
    assert bad.value.original_status_code == 400
    assert bad.value.original_message == "expected row"


def test_unknown_variant_unreachable_and_not_started(urls: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="Variant3"):
        _run(urls, lambda b: b.invoke(_request("Variant3")))
    dead = {"Variant1": f"http://127.0.0.1:{free_port()}/invocations"}
    with pytest.raises(ServiceUnavailable, match="Variant1 unreachable"):
        _run(dead, lambda b: b.invoke(_request("Variant1")))
    with pytest.raises(InternalFailure, match="before start"):
        asyncio.run(HttpBackend(urls).invoke(_request()))


def test_variants_come_and_go(urls: dict[str, str]) -> None:
    async def calls(backend: HttpBackend) -> str:
        backend.add_variant("Variant9", urls["Variant2"])
        backend.remove_variant("Variant1")
        result = await backend.invoke(_request("Variant9"))
        with pytest.raises(ValidationError):
            await backend.invoke(_request("Variant1"))
        return result.invoked_variant

    assert _run(urls, calls) == "Variant9"
