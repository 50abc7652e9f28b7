"""Keeps a router's live experiments in step with the shared registry.

One background task per app: wait for a change notice (pub/sub) or ``poll_s``,
then ``refresh``: one round trip for the registry's revision and every
experiment's snapshot version; when the revision moved, read every config and
apply the difference; when a snapshot version moved, load it. Admin writes go
through ``edit`` (optimistic concurrency: read, change, write unless another
writer came in between, else again), which refreshes right after writing, so the
replica that took the change serves it before answering, and the others within a
notice (or a poll) of it.

Applying a changed config keeps what was learned unless the policy itself
changed: arms are added and removed on the live policy (``Experiment.set_variants``),
guardrails, context and backend are replaced only when their keys changed. A
loaded snapshot replaces the policy object (requests in flight keep theirs) and
is then brought to the registry's variants, in case the learner has not caught
up with an arm change yet. A snapshot is loaded whenever the store's publication
counter differs from the one loaded, whatever ``policy.version`` says: a local arm
change also bumps that version, and the learner's word must still win.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from bandit import BanditError, load_policy
from common.config import ExperimentConfig
from common.tasks import run_bounded, stop_tasks

from .backends import Backend, HttpBackend
from .context import ContextExtractor
from .errors import RegistryConflictError, RegistryUnavailableError
from .experiments import Experiment
from .guardrails import Guardrails
from .registry import Registry, RegistryView, config_json
from .state import (
    BackendFactory,
    Route,
    RouterState,
    build_experiment,
    build_route,
    default_backend_factory,
)

logger = logging.getLogger(__name__)

POLL_S = 0.5
RETIRE_AFTER_S = 5.0  # a replaced backend may still be serving requests in flight
CLOSE_STEP_S = 3.0  # each step of close() (watcher, retiring backends, registry) at most
WRITE_ATTEMPTS = 5

Change = Callable[[RegistryView], Awaitable[ExperimentConfig | None]]
"""What ``edit`` does to one experiment: the registry as read, to the config to put
(None: delete the experiment); it may raise to refuse the change."""


class RegistrySync:
    """Applies the registry's experiments and snapshots to ``state``."""

    def __init__(self, state: RouterState, registry: Registry, *, poll_s: float = POLL_S,
                 retire_after_s: float = RETIRE_AFTER_S) -> None:
        self.state = state
        self.registry = registry
        self.poll_s = poll_s
        self.retire_after_s = retire_after_s
        self.revision = -1
        self.reachable = False
        self.detail = "not started"
        self.problems: dict[str, str] = {}
        """Experiments this replica could not apply, with why (also logged)."""
        self._seeded = False
        self._closing = False
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Seed, apply what the registry holds, and start watching (never fails on an
        unreachable registry: the config file's experiments are served meanwhile)."""
        await self.registry.start()
        await self.refresh()
        self._task = asyncio.create_task(self._watch(), name="registry-sync")

    async def close(self) -> None:
        """Stop watching, close the backends still retiring, close the registry: each
        step within ``CLOSE_STEP_S``, whatever state the registry's store is in (a step
        that overruns is logged and left behind, so a shutdown always ends)."""
        self._closing = True
        if self._task is not None:
            await stop_tasks({self._task}, CLOSE_STEP_S)
        await stop_tasks(self._retiring, CLOSE_STEP_S)
        if not await run_bounded(self.registry.close(), CLOSE_STEP_S):
            logger.warning("closing the registry took over %g s; left behind", CLOSE_STEP_S)

    def status(self) -> dict[str, Any]:
        """For ``/readyz``: where, whether it answers, what this replica serves."""
        return {"where": self.registry.describe(), "reachable": self.reachable,
                "revision": self.revision, "detail": self.detail,
                "snapshots": {name: route.snapshot_version
                              for name, route in sorted(self.state.routes.items())},
                "problems": dict(self.problems)}

    async def edit(self, name: str, change: Change) -> int | None:
        """Put ``change``'s config under ``name`` (or delete it) unless another writer
        changed the registry since it was read; then read and change again, at most
        ``WRITE_ATTEMPTS`` times. Applied here before returning the new revision (None:
        there was nothing to delete).

        Raises ``RegistryUnavailableError``, ``RegistryConflictError`` when the registry
        kept changing, and whatever ``change`` raises.
        """
        registry = self.registry
        for _ in range(WRITE_ATTEMPTS):
            view = await registry.read()
            config = await change(view)
            try:
                if config is None:
                    revision = await registry.delete(name, expect_revision=view.revision)
                else:
                    revision = await registry.put(config, expect_revision=view.revision)
            except RegistryConflictError:
                continue  # another writer came in between: change its result instead
            if revision is not None:
                await self.refresh()
            return revision
        raise RegistryConflictError(f"the registry kept changing during {WRITE_ATTEMPTS} "
                                    "attempts; retry")

    async def refresh(self) -> None:
        """Bring this replica up to the registry now; records (not raises) an outage."""
        async with self._lock:
            try:
                await self._refresh()
            except RegistryUnavailableError as exc:
                if self.reachable or self.detail == "not started":
                    logger.warning("registry unreachable, serving what we have: %s", exc)
                self.reachable, self.detail = False, str(exc)
            except PydanticValidationError as exc:
                # Only a hand-edited registry gets here: the admin API validates first.
                self.reachable, self.detail = True, f"registry holds an invalid config: {exc}"
                logger.error("%s", self.detail)
            else:
                self.reachable, self.detail = True, "ok"

    async def _refresh(self) -> None:
        state, registry = self.state, self.registry
        if not self._seeded:
            added = await registry.seed(state.settings.experiments)
            self._seeded = True
            if added:
                logger.info("seeded the registry with %d experiment(s) from the config", added)
        revision, versions = await registry.poll(list(state.routes))
        if revision < self.revision:
            # The counter went back: the store lost its data (a Redis restarted empty).
            # Rather than drop every experiment, put back what this replica serves.
            logger.warning("registry revision went back from %d to %d (data lost?): re-seeding "
                        "it with the %d experiment(s) served here", self.revision, revision,
                        len(state.routes))
            await registry.seed([route.config for route in state.routes.values()])
            revision, versions = await registry.poll(list(state.routes))
        if revision != self.revision:
            await self._apply(await registry.read())
            if set(versions) != set(state.routes):
                _, versions = await registry.poll(list(state.routes))
        for name, version in versions.items():
            route = state.routes.get(name)
            # Any other counter than the one loaded means other bytes in the store (a
            # lower one: the store was reset and the learner is publishing again).
            if route is not None and version not in (0, route.snapshot_version):
                await self._load_snapshot(route)

    async def _watch(self) -> None:
        feed = self.registry.changes()
        try:
            while not self._closing:  # the flag too: a cancel can be lost (common.tasks)
                await feed.wait(self.poll_s)
                try:
                    await self.refresh()
                except Exception:
                    # A bug must not stop this replica following the registry for good.
                    logger.exception("registry refresh failed; retrying at the next poll")
        finally:
            await feed.close()

    async def _apply(self, view: RegistryView) -> None:
        routes = self.state.routes
        for name in [name for name in routes if name not in view.experiments]:
            self._remove(name)
        for name, config in sorted(view.experiments.items()):
            route = routes.get(name)
            try:
                if route is None:
                    await self._add(config)
                elif config_json(route.config) != config_json(config):
                    await self._update(route, config)
                self.problems.pop(name, None)
            except (BanditError, ValueError) as exc:
                self.problems[name] = f"{type(exc).__name__}: {exc}"
                logger.error("cannot apply experiment %s: %s", name, self.problems[name])
        self._reindex()
        self.revision = view.revision
        logger.info("registry revision %d applied: %s", view.revision, ", ".join(sorted(routes)))

    async def _add(self, config: ExperimentConfig) -> None:
        taken = {route.config.endpoint: name for name, route in self.state.routes.items()}
        if config.endpoint in taken:
            raise ValueError(f"endpoint {config.endpoint} is routed by {taken[config.endpoint]}")
        route = build_route(config, self._factory())
        await self._adopt(route.backend)
        self.state.routes[config.name] = route
        self.state.metrics.policy_version.labels(config.name).set(
            route.experiment.policy.version)

    async def _update(self, route: Route, config: ExperimentConfig) -> None:
        old = route.config
        if old.policy != config.policy or old.seed != config.seed:
            # A new policy spec starts afresh: old statistics belong to another policy.
            experiment = build_experiment(config)
        else:
            experiment = route.experiment
            experiment.set_variants(config.arms)
            if old.guardrails != config.guardrails:
                experiment.guardrails = (None if config.guardrails is None
                                         else Guardrails(config.guardrails, config.arms))
        context = route.context
        if old.context != config.context:
            context = ContextExtractor(config.context)
        backend = await self._backend_for(route, config)
        self.state.routes[config.name] = Route(config, experiment, context, backend,
                                               route.snapshot_version)
        if backend is not route.backend:
            self._release(route.backend)
        self.state.metrics.policy_version.labels(config.name).set(experiment.policy.version)

    async def _backend_for(self, route: Route, config: ExperimentConfig) -> Backend:
        old, backend = route.config, route.backend
        if old.backend == config.backend:
            if isinstance(backend, HttpBackend) and old.variants != config.variants:
                for gone in set(old.arms) - set(config.arms):
                    backend.remove_variant(gone)
                for variant in config.variants:
                    backend.add_variant(variant.name, str(variant.url))
            return backend
        backend = self._factory()(config)
        await self._adopt(backend)
        return backend

    def _remove(self, name: str) -> None:
        route = self.state.routes.pop(name)
        self.problems.pop(name, None)
        self._release(route.backend)

    def _reindex(self) -> None:
        # A new dict, assigned at once: requests never see a half-built index.
        endpoints: dict[str, Route] = {}
        for _, route in sorted(self.state.routes.items()):
            endpoints.setdefault(route.config.endpoint, route)
        self.state.endpoints = endpoints

    async def _load_snapshot(self, route: Route) -> None:
        name = route.config.name
        snapshot = await self.registry.snapshot(name)
        if snapshot is None or snapshot.version == route.snapshot_version:
            return
        route.snapshot_version = snapshot.version  # a bad snapshot is not retried either
        try:
            policy = load_policy(snapshot.blob)
        except BanditError as exc:
            logger.error("snapshot %d of %s refused: %s", snapshot.version, name, exc)
            return
        wanted = route.config.policy.get("type")
        if policy.type_name != wanted:
            logger.warning("snapshot %d of %s is a %s policy, the config says %s: ignored",
                        snapshot.version, name, policy.type_name, wanted)
            return
        experiment: Experiment = route.experiment
        serving = experiment.policy
        experiment.install(policy)
        try:
            experiment.set_variants(route.config.arms)
        except BanditError as exc:
            experiment.install(serving)  # never serve a variant the registry removed
            logger.error("snapshot %d of %s cannot take the variants %s: %s", snapshot.version,
                      name, ", ".join(route.config.arms), exc)
            return
        self.state.metrics.policy_version.labels(name).set(experiment.policy.version)
        logger.info("serving snapshot %d of %s (policy version %d)", snapshot.version, name,
                 experiment.policy.version)

    def _factory(self) -> BackendFactory:
        if self.state.backend_factory is None:
            self.state.backend_factory = default_backend_factory()
        return self.state.backend_factory

    async def _adopt(self, backend: Backend) -> None:
        if backend not in self.state.backends:
            await backend.start()
            self.state.backends.append(backend)

    def _release(self, backend: Backend) -> None:
        if any(route.backend is backend for route in self.state.routes.values()):
            return  # shared (e.g. the one SageMaker client)
        if backend in self.state.backends:
            self.state.backends.remove(backend)
        task = asyncio.create_task(self._close_later(backend))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _close_later(self, backend: Backend) -> None:
        try:
            await asyncio.sleep(self.retire_after_s)
        finally:
            await backend.close()
