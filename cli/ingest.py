"""``bandit-router ingest``: the reward webhook and the learning loop, on the shared store."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from common.config import Secrets, Settings
from reward_ingest.rewards import open_reward_store
from reward_ingest.service import redis_service
from reward_ingest.webhook import create_webhook_app

from .serve import settings_or_exit


def ingest_app(settings: Settings) -> Starlette:
    """The webhook app whose lifespan also runs joiner, learners, pushers and archiver."""
    store = open_reward_store(settings.store)
    app = create_webhook_app(settings, store, Secrets.from_env(os.environ))
    webhook_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[None]:
        async with webhook_lifespan(application):
            metrics = application.state.webhook.metrics
            service = redis_service(settings, settings.store, dropped=metrics.dropped,
                                    metrics=metrics.loop)
            application.state.ingest = service
            async with service.running():
                yield

    app.router.lifespan_context = lifespan
    return app


def ingest(config: Path, host: str, port: int, log_level: str) -> None:
    """Validate the config and run the ingester until interrupted."""
    settings = settings_or_exit(config)
    if not settings.store.startswith(("redis://", "rediss://")):
        print("bandit-router: ingest needs a shared store (redis://...): with "
              f"{settings.store} `serve` runs the ingester in its own process",
              file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(ingest_app(settings), host=host, port=port, loop="uvloop", http="httptools",
                log_level=log_level, access_log=False, lifespan="on")
