"""The embedded default: one process on ``memory://`` runs the router and the learning loop.

The router logs decisions to an in-process ``MemoryStore``; ``POST /v1/rewards`` is
mounted on the router's app, its ``bandit_ingest_*`` counters in the router's
``/metrics`` (the names ``bandit-router ingest`` exposes); the ingester (joiner,
learners, pushers, archiver) runs as tasks in the router's lifespan, and its
snapshots reach the router through the in-process registry, exactly as they would
through Redis.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from common.config import Secrets, Settings
from common.learner_stats import MemoryLearnerStats
from reward_ingest.rewards import MemoryRewardStore
from reward_ingest.service import IngestService, memory_service
from reward_ingest.webhook import IngestMetrics, RewardWebhook, mount_rewards
from router.app import create_app, router_state
from router.registry import MemoryRegistry
from router.state import BackendFactory
from router.store import MemoryStore


def embedded_app(settings: Settings, *, environ: Mapping[str, str] | None = None,
                 backend_factory: BackendFactory | None = None) -> FastAPI:
    """A router on ``memory://`` with ``/v1/rewards`` and the learning loop inside."""
    environ = os.environ if environ is None else environ
    secrets = Secrets.from_env(environ)
    store = MemoryStore(maxlen=settings.decision_log.stream_maxlen)
    registry = MemoryRegistry()
    rewards = MemoryRewardStore()
    stats = MemoryLearnerStats()  # the ingester writes it, the router's /stats reads it
    app = create_app(settings, store=store, registry=registry, secrets=secrets,
                     environ=environ, backend_factory=backend_factory, stats_source=stats)
    configs = {experiment.name: experiment.reward for experiment in settings.experiments}
    metrics = IngestMetrics(router_state(app).metrics.registry)  # one /metrics for both
    webhook = RewardWebhook(rewards, secrets=secrets, reward_configs=configs, metrics=metrics)
    mount_rewards(app, webhook)
    router_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[None]:
        manager: AbstractAsyncContextManager[Any] = router_lifespan(application)
        async with manager:
            await rewards.start()
            service = memory_service(settings, store, rewards, registry.snapshots,
                                     stats=stats, dropped=webhook.metrics.dropped,
                                     metrics=webhook.metrics.loop)
            app.state.ingest = service
            try:
                async with service.running():
                    yield
            finally:
                await rewards.close()

    app.router.lifespan_context = lifespan
    return app


def ingest_service(app: FastAPI) -> IngestService:
    """The running ingester of an ``embedded_app`` (after start-up)."""
    service: IngestService = app.state.ingest
    return service
