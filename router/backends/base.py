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


class SessionPool:
    """One keep-alive aiohttp session for all of a backend's calls (a session per call
    costs a handshake): opened by the backend's ``start``, closed by its ``close``."""

    def __init__(self, *, max_connections: int, connect_timeout_s: float,
                 read_timeout_s: float) -> None:
        self._limits = (max_connections, connect_timeout_s, read_timeout_s)
        self.session: aiohttp.ClientSession | None = None
        """The open session, or None before ``open`` and after ``close``."""

    def open(self) -> None:
        """Create the session (once)."""
        if self.session is None:
            connections, connect_s, read_s = self._limits
            connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections,
                                             ttl_dns_cache=60, keepalive_timeout=30)
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_s,
                                            sock_read=read_s)
            # No cookie jar: these are API calls, and the jar costs time per response.
            self.session = aiohttp.ClientSession(connector=connector, timeout=timeout,
                                                 cookie_jar=aiohttp.DummyCookieJar())

    async def close(self) -> None:
        """Close the session and its connections."""
        if self.session is not None:
            await self.session.close()
            self.session = None


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
