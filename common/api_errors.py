"""The JSON error answer of the admin API and the reward webhook.

    {"error": "invalid_config", "message": "a; b", "problems": ["a", "b"]}

``error`` is a short code, ``message`` is for people, ``problems`` (when present)
names each bad field by path. Raise :class:`ApiError`; an app that registers
:func:`api_error_response` as its handler answers it, a plain endpoint returns
``error.response()``. (The SageMaker-shaped routes answer ``router.errors`` instead.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["ApiError", "api_error_response"]


class ApiError(Exception):
    """A request refused: HTTP status, a short code, a message, the problems by path."""

    def __init__(self, status: int, code: str, message: str, *,
                 problems: list[str] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.problems = problems
        self.headers = headers

    def body(self) -> dict[str, Any]:
        """``{"error", "message", "problems"?}``."""
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.problems is not None:
            body["problems"] = self.problems
        return body

    def response(self) -> JSONResponse:
        """The answer: the body, the status and the headers."""
        return JSONResponse(self.body(), status_code=self.status,
                            headers=None if self.headers is None else dict(self.headers))


async def api_error_response(request: Request, exc: Exception) -> Response:
    """The exception handler for ``ApiError`` (register it for that class only)."""
    if not isinstance(exc, ApiError):
        raise exc
    return exc.response()
