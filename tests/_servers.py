"""Run an ASGI app under a real uvicorn on a free loopback port, in a background thread."""

from __future__ import annotations

from cli.local_servers import REAL_REDIS_PORT, free_port
from cli.local_servers import serve_in_thread as run_asgi

__all__ = ["REAL_REDIS_PORT", "free_port", "run_asgi"]
