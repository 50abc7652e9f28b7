"""The invocations route as raw ASGI, ahead of FastAPI's middleware and routing.

``POST /endpoints/{EndpointName}/invocations`` is the router's hot path. Through
FastAPI it also pays for the error and exception middleware, a scan of every
route's regex and Starlette's ``Request`` and ``Headers`` objects: ~100 µs of CPU
per request in a bare FastAPI pass-through, more than the router's own decision,
signing and logging (``bench/README.md``, "Where the time goes").
:class:`RouterApp` answers that one route itself, with the same handler
(``routes.invocations.serve_invocation``); everything else, including any
invocations path it does not recognise exactly, goes to FastAPI as before.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from .auth import CallerAuth
from .errors import InternalFailure, ValidationError, error_response
from .routes.invocations import serve_invocation
from .state import RouterState
from .validation import MAX_BODY_BYTES

logger = logging.getLogger(__name__)

PREFIX = "/endpoints/"
SUFFIX = "/invocations"


def invocation_endpoint(scope: Scope) -> str | None:
    """The endpoint name when ``scope`` is a POST to the invocations route, else None
    (the same paths Starlette's ``{endpoint_name}`` matches: one non-empty segment)."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
        return None
    name = path[len(PREFIX):-len(SUFFIX)]
    return name if name and "/" not in name else None


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers by name (ASGI servers send names in lower case); the
    first of repeated ones, as Starlette's ``Headers.get`` answers."""
    headers: dict[str, str] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return headers


class BodyReader:
    """Reads a request body from ASGI ``receive``, refusing more than SageMaker's 6 MB
    as it arrives (a chunked body has no Content-Length to check first)."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive

    async def __call__(self) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise ValidationError(f"Body: more than {MAX_BODY_BYTES} bytes exceeds the "
                                      f"{MAX_BODY_BYTES}-byte (6 MB) limit")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def serve_fast(state: RouterState, auth: CallerAuth | None, endpoint_name: str,
                     scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one invocation straight from ASGI (``auth``: the caller check, if any)."""
    try:
        response = await serve_invocation(state, auth, endpoint_name, scope,
                                          request_headers(scope), BodyReader(receive))
    except ClientDisconnect:
        return  # nobody to answer; no decision was made
    except Exception:
        # A bug, not bad input: logged with its traceback, answered in SageMaker's shape
        # (what the app's catch-all handler does for every other route).
        logger.exception("unhandled error on POST %s", scope["path"])
        response = error_response(InternalFailure("internal failure; see the router's log"))
    await response(scope, receive, send)


class RouterApp(FastAPI):
    """FastAPI with the invocations route served by :func:`serve_fast` first."""

    router_state: RouterState
    caller_auth: CallerAuth | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint_name = invocation_endpoint(scope)
        if endpoint_name is None:
            await super().__call__(scope, receive, send)
            return
        await serve_fast(self.router_state, self.caller_auth, endpoint_name, scope, receive,
                         send)
