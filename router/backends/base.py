"""What every backend takes and gives, and the pooled HTTP session they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import aiohttp

H_CUSTOM = "X-Amzn-SageMaker-Custom-Attributes"
H_TARGET = "X-Amzn-SageMaker-Target-Variant"
H_INFERENCE_ID = "X-Amzn-SageMaker-Inference-Id"
H_INVOKED = "X-Amzn-Invoked-Production-Variant"


@dataclass(frozen=True, slots=True)
class InvokeRequest:
    """One inference call to make on ``variant`` of ``endpoint``."""

    endpoint: str
    variant: str
    body: bytes
    content_type: str | None = None
    accept: str | None = None
    custom_attributes: str | None = None
    inference_id: str | None = None


@dataclass(frozen=True, slots=True)
class InvokeResult:
    """The variant's answer, passed back to the client as is."""

    body: bytes
    content_type: str
    invoked_variant: str
    custom_attributes: str | None = None


class Backend(Protocol):
    """Where the router sends an inference call once it has picked the variant.

    ``invoke`` raises ``router.errors``: ModelError (the variant failed: original status
    and message), ServiceUnavailable (throttled after retries, or unreachable),
    ValidationError (the request is invalid), ModelNotReady, InternalFailure.
    """

    async def start(self) -> None:
        """Open connections and resolve credentials; call once before ``invoke``."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        """Make the call."""
        ...


def pooled_session(*, max_connections: int, connect_timeout_s: float,
                   read_timeout_s: float) -> aiohttp.ClientSession:
    """One keep-alive connection pool for all calls (a session per call costs a handshake)."""
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=max_connections,
                                     ttl_dns_cache=60, keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s,
                                    sock_read=read_timeout_s)
    # No cookie jar: these are API calls, and the jar costs time per response.
    return aiohttp.ClientSession(connector=connector, timeout=timeout,
                                 cookie_jar=aiohttp.DummyCookieJar())


def common_headers(request: InvokeRequest) -> dict[str, str]:
    """The SageMaker headers ``request`` carries (those that are set)."""
    headers: dict[str, str] = {}
    if request.content_type is not None:
        headers["Content-Type"] = request.content_type
    if request.accept is not None:
        headers["Accept"] = request.accept
    if request.custom_attributes is not None:
        headers[H_CUSTOM] = request.custom_attributes
    if request.inference_id is not None:
        headers[H_INFERENCE_ID] = request.inference_id
    return headers
