"""Plain HTTP model servers, one URL per variant (no SageMaker, no signing)."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from yarl import URL

from router.backends.base import (
    H_CUSTOM,
    InvokeRequest,
    InvokeResult,
    SessionPool,
    common_headers,
)
from router.errors import InternalFailure, ModelError, ServiceUnavailable, ValidationError


class HttpBackend:
    """POSTs the body to the variant's URL; a non-2xx answer is a ModelError.

    The error carries the original status and the start of the body, as SageMaker's
    own ModelError does.
    """

    def __init__(self, urls: Mapping[str, str], *, max_connections: int = 100,
                 connect_timeout_s: float = 5.0, read_timeout_s: float = 60.0,
                 max_error_chars: int = 1024) -> None:
        self._urls = {variant: URL(url) for variant, url in urls.items()}
        self._pool = SessionPool(max_connections=max_connections,
                                 connect_timeout_s=connect_timeout_s,
                                 read_timeout_s=read_timeout_s)
        self._max_error_chars = max_error_chars

    def add_variant(self, variant: str, url: str) -> None:
        """Serve ``variant`` from ``url`` from now on (arms come and go at run time)."""
        self._urls[variant] = URL(url)

    def remove_variant(self, variant: str) -> None:
        """Stop serving ``variant``."""
        self._urls.pop(variant, None)

    async def start(self) -> None:
        """Open the connection pool."""
        self._pool.open()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._pool.close()

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        """POST ``request.body`` to the variant's URL and pass its answer back."""
        http = self._pool.session
        if http is None:
            raise InternalFailure("HTTP backend used before start()")
        url = self._urls.get(request.variant)
        if url is None:
            raise ValidationError(f"Variant {request.variant} not found for endpoint "
                                  f"{request.endpoint}.")
        try:
            async with http.post(url, data=request.body,
                                       headers=common_headers(request)) as response:
                body = await response.read()
                status = response.status
                content_type = response.headers.get("Content-Type", "application/octet-stream")
                custom = response.headers.get(H_CUSTOM)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ServiceUnavailable(f"variant {request.variant} unreachable: "
                                     f"{type(exc).__name__}: {exc}") from exc
        if 200 <= status < 300:
            return InvokeResult(body, content_type, request.variant, custom)
        text = body.decode("utf-8", errors="replace")[: self._max_error_chars]
        side = "client" if status < 500 else "server"
        raise ModelError(f'Received {side} error ({status}) from {request.variant} with '
                         f'message "{text}".', original_status_code=status,
                         original_message=text)
