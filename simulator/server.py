"""Run the simulator under uvicorn (what ``bandit-router simulate`` calls)."""

from __future__ import annotations

import uvicorn

from simulator.app import create_app
from simulator.spec import SimulatorSpec, parse_variants

__all__ = ["parse_variants", "serve"]


def serve(host: str, port: int, spec: SimulatorSpec | None = None, *,
          log_level: str = "warning") -> None:
    """Serve the simulator for ``spec`` (default variants if None) until interrupted."""
    app = create_app(spec if spec is not None else parse_variants())
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
