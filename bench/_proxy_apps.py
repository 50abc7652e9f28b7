"""The two reference servers of ``bench/proxy.py``: the variant and the FastAPI pass-through.

    .venv/bin/python bench/_proxy_apps.py variant PORT
    .venv/bin/python bench/_proxy_apps.py passthrough PORT UPSTREAM_URL

Both run under uvicorn with uvloop and httptools, one process, no access log: the
same server stack as ``bandit-router serve``.

- **variant**: a raw ASGI app (no framework) that answers every POST with a small
  JSON body shaped like a SageMaker model's (``{"predictions": [...]}``) and
  ``X-Amzn-Invoked-Production-Variant`` set to the ``X-Amzn-SageMaker-Target-Variant``
  it was sent (``Variant1`` when none). It does not check signatures: the router's
  SageMaker backend calls it at ``/endpoints/{name}/invocations`` as SageMaker Runtime.
- **passthrough**: what any FastAPI router starts from: a FastAPI route
  (``@app.post``, path parameter) that reads the body, picks a variant uniformly at
  random, forwards the body with a pooled aiohttp ``ClientSession`` (keep-alive, no
  cookie jar: the session settings of the router's own backends) and answers the
  variant's body, status and content type with ``X-Amzn-Invoked-Production-Variant``.
  No validation, no signing, no decision log, no metrics.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import uvicorn
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

VARIANTS = ("Variant1", "Variant2", "Variant3")
RESPONSE_BODY = json.dumps({"predictions": [{"label": 1, "score": 0.734512}]},
                           separators=(",", ":")).encode()
_TARGET = b"x-amzn-sagemaker-target-variant"
_RESPONSE_HEADERS = [(b"content-type", b"application/json"),
                     (b"content-length", str(len(RESPONSE_BODY)).encode())]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def variant_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The model server: drain the body, answer the constant prediction."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    variant = b"Variant1"
    for name, value in scope["headers"]:
        if name == _TARGET:
            variant = value
            break
    await send({"type": "http.response.start", "status": 200,
                "headers": [*_RESPONSE_HEADERS,
                            (b"x-amzn-invoked-production-variant", variant)]})
    await send({"type": "http.response.body", "body": RESPONSE_BODY})


def passthrough_app(upstream: str) -> FastAPI:
    """The FastAPI + aiohttp pass-through to the variant at ``upstream``."""
    upstream = upstream.rstrip("/")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=100, limit_per_host=100, keepalive_timeout=30)
        async with aiohttp.ClientSession(connector=connector,
                                         cookie_jar=aiohttp.DummyCookieJar()) as session:
            app.state.http = session
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/endpoints/{endpoint_name}/invocations")
    async def invoke(endpoint_name: str, request: Request) -> Response:
        body = await request.body()
        variant = random.choice(VARIANTS)
        headers = {"Content-Type": request.headers.get("content-type",
                                                       "application/octet-stream"),
                   "X-Amzn-SageMaker-Target-Variant": variant}
        session: aiohttp.ClientSession = request.app.state.http
        async with session.post(f"{upstream}/endpoints/{endpoint_name}/invocations",
                                data=body, headers=headers) as response:
            payload = await response.read()
            return Response(payload, status_code=response.status,
                            media_type=response.headers.get("Content-Type"),
                            headers={"X-Amzn-Invoked-Production-Variant": response.headers.get(
                                "X-Amzn-Invoked-Production-Variant", variant)})

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(app: Any, port: int) -> None:
    """``app`` under uvicorn on 127.0.0.1:``port``, as ``bandit-router serve`` runs."""
    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False, lifespan="on")


def main(argv: list[str]) -> None:
    if len(argv) >= 3 and argv[1] == "variant":
        serve(variant_app, int(argv[2]))
    elif len(argv) >= 4 and argv[1] == "passthrough":
        serve(passthrough_app(argv[3]), int(argv[2]))
    else:
        sys.exit(f"usage: {argv[0]} variant PORT | passthrough PORT UPSTREAM_URL")


if __name__ == "__main__":
    main(sys.argv)
