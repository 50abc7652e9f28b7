"""Deeply nested JSON gets a 400 on every body and header the router parses, never a 500.

Python's parser raises ``RecursionError`` past about a thousand levels; each surface
must answer it as it answers any other malformed JSON: SageMaker's ``ValidationError``
on the SageMaker-shaped routes, ``{"error": "invalid_json", ...}`` on the admin API
and the reward webhook (signed, and unsigned when no secret is configured).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from cli.embedded import embedded_app
from common.config import Settings, parse_settings
from reward_ingest.signing import sign
from tests._servers import run_asgi

TOKEN = "nested-admin-token"  # noqa: S105  (the test's own token)
SECRET = "whsec_nested"  # noqa: S105  (the test's own secret)
VARIANTS = [{"name": "A", "url": "http://127.0.0.1:9/a"},
            {"name": "B", "url": "http://127.0.0.1:9/b"}]
SETTINGS: Settings = parse_settings({"store": "memory://", "experiments": [
    {"name": "by-header", "endpoint": "header-ep", "backend": "http", "variants": VARIANTS,
     "policy": {"type": "thompson"}, "context": {"from": "header", "max_bytes": 65536}},
    {"name": "by-body", "endpoint": "body-ep", "backend": "http", "variants": VARIANTS,
     "policy": {"type": "thompson"}, "context": {"from": "json", "pointers": ["/x"]}},
]})

DEPTH = 3000
NESTINGS = {
    "arrays": "[" * DEPTH + "]" * DEPTH,
    "objects": '{"a":' * DEPTH + "1" + "}" * DEPTH,
}


@pytest.fixture(scope="module")
def routers() -> Iterator[dict[str, str]]:
    """Two embedded routers (router, admin API, reward webhook): webhook signed and not."""
    urls = {}
    with run_asgi(embedded_app(SETTINGS, environ={"BANDIT_ROUTER_ADMIN_TOKEN": TOKEN,
                                                  "BANDIT_ROUTER_WEBHOOK_SECRET": SECRET})
                  ) as signed, run_asgi(embedded_app(SETTINGS, environ={})) as unsigned:
        urls["signed"], urls["unsigned"] = signed, unsigned
        yield urls


Send = Callable[[dict[str, str], str], httpx.Response]
ADMIN = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def _post(url: str, path: str, body: str, **headers: str) -> httpx.Response:
    return httpx.post(url + path, content=body.encode(), headers=headers, timeout=10)


def _signed_reward(urls: dict[str, str], nested: str) -> httpx.Response:
    headers = sign(SECRET, nested.encode(), int(time.time()))
    return _post(urls["signed"], "/v1/rewards", nested, **headers)


SURFACES: dict[str, tuple[Send, str]] = {
    "invocations, context from the X-Bandit-Context header": (
        lambda urls, nested: _post(urls["signed"], "/endpoints/header-ep/invocations", "{}",
                                   **{"X-Bandit-Context": nested}), "sagemaker"),
    "invocations, context from the JSON body": (
        lambda urls, nested: _post(urls["signed"], "/endpoints/body-ep/invocations", nested,
                                   **{"Content-Type": "application/json"}), "sagemaker"),
    "decisions": (
        lambda urls, nested: _post(urls["signed"], "/v1/experiments/by-header/decisions",
                                   nested), "sagemaker"),
    "admin PUT experiment": (
        lambda urls, nested: httpx.put(urls["signed"] + "/v1/experiments/new", content=nested,
                                       headers=ADMIN, timeout=10), "invalid_json"),
    "admin POST variant": (
        lambda urls, nested: _post(urls["signed"], "/v1/experiments/by-header/variants", nested,
                                   **ADMIN), "invalid_json"),
    "reward webhook, signed": (_signed_reward, "invalid_json"),
    "reward webhook, unsigned (no secret configured)": (
        lambda urls, nested: _post(urls["unsigned"], "/v1/rewards", nested), "invalid_json"),
}


@pytest.mark.parametrize("nesting", sorted(NESTINGS))
@pytest.mark.parametrize("surface", list(SURFACES))
def test_deep_nesting_gets_the_surfaces_invalid_json_400(
    routers: dict[str, str], surface: str, nesting: str,
) -> None:
    send, shape = SURFACES[surface]
    response = send(routers, NESTINGS[nesting])
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    if shape == "sagemaker":
        assert response.headers["x-amzn-errortype"] == "ValidationError"
    else:
        assert body["error"] == shape
    assert "JSON" in body["message"] or "nesting" in body["message"], body
