"""The raw ASGI invocations route: what it takes, what it leaves to FastAPI, how it fails.

Everything else about the route (boto3, every error class, logging) is tested
through it by test_router_invocations.py, since every invocation now takes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from router.fast_path import invocation_endpoint, request_headers
from router.store import MemoryStore
from tests.router._stack import SIM_ENDPOINT, Stack, experiment, router_stack, settings

BODY = json.dumps({"instances": [[0.1, -0.2, 0.3, 0.4, -0.5, 0.6]]}).encode()


def scope(path: str, method: str = "POST", **extra: Any) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "headers": [], **extra}


@pytest.mark.parametrize(("path", "method", "extra", "expected"), [
    ("/endpoints/my-endpoint/invocations", "POST", {}, "my-endpoint"),
    ("/endpoints/a b/invocations", "POST", {}, "a b"),  # decoded; the handler validates
    ("/endpoints/my-endpoint/invocations", "GET", {}, None),
    ("/endpoints//invocations", "POST", {}, None),
    ("/endpoints/a/b/invocations", "POST", {}, None),
    ("/endpoints/my-endpoint/invocations/", "POST", {}, None),
    ("/v1/experiments/exp/decisions", "POST", {}, None),
    ("/endpoints/my-endpoint/invocations", "POST", {"root_path": "/api"}, None),
])
def test_only_the_exact_route_is_taken(path: str, method: str, extra: dict[str, Any],
                                       expected: str | None) -> None:
    assert invocation_endpoint(scope(path, method, **extra)) == expected


def test_websocket_and_lifespan_scopes_are_left_alone() -> None:
    assert invocation_endpoint(scope("/endpoints/e/invocations") | {"type": "lifespan"}) \
        is None
    assert invocation_endpoint({"type": "websocket", "path": "/endpoints/e/invocations"}) \
        is None


def test_headers_by_name_first_one_wins() -> None:
    raw = [(b"content-type", b"text/csv"), (b"x-bandit-unit-id", b"u1"),
           (b"content-type", b"application/json")]
    assert request_headers({"headers": raw}) == {"content-type": "text/csv",
                                                 "x-bandit-unit-id": "u1"}


class BrokenStore(MemoryStore):
    """A store with a bug (not an outage): append raises what no handler expects."""

    async def append(self, event: dict[str, Any]) -> None:
        raise RuntimeError("a bug in the store")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with router_stack(settings(experiment())) as running:
        yield running


def logged(stack: Stack) -> int:
    # MemoryStore.read_decisions only reads a list: safe from the test's thread.
    return len(asyncio.run(stack.store.read_decisions(1_000_000)))


def url(stack: Stack) -> str:
    return f"{stack.router_url}/endpoints/{SIM_ENDPOINT}/invocations"


def test_chunked_body_over_6_mb_is_refused_while_it_arrives(stack: Stack) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        for _ in range(7):
            yield b"x" * (1024 * 1024)

    before = logged(stack)
    response = httpx.post(url(stack), content=chunks())
    assert response.status_code == 400
    assert response.headers["x-amzn-errortype"] == "ValidationError"
    assert "6 MB" in response.json()["message"]
    assert logged(stack) == before  # refused before a decision: nothing logged


def test_chunked_body_under_the_limit_is_served(stack: Stack) -> None:
    def chunks() -> Iterator[bytes]:
        yield BODY[:10]
        yield BODY[10:]

    response = httpx.post(url(stack), content=chunks(),
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert "predictions" in response.json()
    assert response.headers["x-amzn-invoked-production-variant"].startswith("Variant")


def test_other_methods_and_paths_still_reach_fastapi(stack: Stack) -> None:
    assert httpx.get(url(stack)).status_code == 405
    assert httpx.post(f"{stack.router_url}/endpoints/a/b/invocations",
                      content=BODY).status_code == 404
    assert httpx.get(f"{stack.router_url}/healthz").status_code == 200


def test_a_bug_is_a_logged_internal_failure_not_a_dropped_connection(
        caplog: pytest.LogCaptureFixture) -> None:
    with (router_stack(settings(experiment()), store=BrokenStore()) as broken,
          caplog.at_level(logging.ERROR, logger="router.fast_path")):
        response = httpx.post(url(broken), content=BODY,
                              headers={"Content-Type": "application/json"})
    assert response.status_code == 500
    assert response.headers["x-amzn-errortype"] == "InternalFailure"
    assert "see the router's log" in response.json()["message"]
    assert any("a bug in the store" in (record.exc_text or "") for record in caplog.records)
