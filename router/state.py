"""Everything a running router holds, built once from settings and handed to the routes."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bandit import make_policy
from common.config import ExperimentConfig, Secrets, Settings

from .backends import Backend, HttpBackend, SageMakerBackend
from .context import ContextExtractor
from .errors import ValidationError
from .experiments import Experiment
from .markers import MarkerLog
from .metrics import RouterMetrics
from .store import DecisionStore

Clock = Callable[[], float]
BackendFactory = Callable[[ExperimentConfig], Backend]


@dataclass(slots=True)
class Route:
    """One experiment as the HTTP layer sees it: runtime, config, context, backend."""

    config: ExperimentConfig
    experiment: Experiment
    context: ContextExtractor
    backend: Backend
    snapshot_version: int = 0
    """The registry's publication counter of the snapshot served (0: none loaded yet)."""


@dataclass(slots=True)
class RouterState:
    """The router's long-lived parts; routes read it, the lifespan starts and stops it."""

    settings: Settings
    secrets: Secrets
    store: DecisionStore
    metrics: RouterMetrics
    routes: dict[str, Route] = field(default_factory=dict)       # by experiment name
    endpoints: dict[str, Route] = field(default_factory=dict)    # by endpoint name
    backends: list[Backend] = field(default_factory=list)
    backend_factory: BackendFactory | None = None
    clock: Clock = time.monotonic
    wall_clock: Clock = time.time
    markers: MarkerLog | None = None
    """Where guardrail trips and config changes are recorded for the dashboard."""

    def by_endpoint(self, endpoint: str) -> Route:
        """The route serving ``endpoint``; ``ValidationError`` as SageMaker words it."""
        route = self.endpoints.get(endpoint)
        if route is None:
            raise ValidationError(f"Endpoint {endpoint} not found: no experiment routes it "
                                  f"(known: {', '.join(sorted(self.endpoints)) or 'none'})")
        return route

    def by_experiment(self, name: str) -> Route:
        route = self.routes.get(name)
        if route is None:
            raise ValidationError(f"experiment {name!r} not found (known: "
                                  f"{', '.join(sorted(self.routes)) or 'none'})")
        return route


def default_backend_factory() -> BackendFactory:
    """SageMaker experiments share one signed client; http ones get their own pool."""
    shared: list[SageMakerBackend] = []

    def build(config: ExperimentConfig) -> Backend:
        if config.backend == "http":
            return HttpBackend({v.name: str(v.url) for v in config.variants})
        if not shared:
            shared.append(SageMakerBackend())
        return shared[0]

    return build


def build_state(
    settings: Settings,
    store: DecisionStore,
    *,
    secrets: Secrets | None = None,
    backend_factory: BackendFactory | None = None,
    environ: Mapping[str, str] | None = None,
) -> RouterState:
    """The router's state for ``settings``; backends and store are started by the app."""
    metrics = RouterMetrics()
    state = RouterState(settings=settings, secrets=secrets or Secrets.from_env(environ or {}),
                        store=store, metrics=metrics)
    state.backend_factory = factory = backend_factory or default_backend_factory()
    for config in settings.experiments:
        route = build_route(config, factory)
        if route.backend not in state.backends:
            state.backends.append(route.backend)
        state.routes[config.name] = route
        state.endpoints[config.endpoint] = route
        metrics.policy_version.labels(config.name).set(route.experiment.policy.version)
    return state


def build_route(config: ExperimentConfig, factory: BackendFactory) -> Route:
    """A fresh route for ``config``: a new policy from its spec, its backend (not started)."""
    return Route(config, build_experiment(config), ContextExtractor(config.context),
                 factory(config))


def build_experiment(config: ExperimentConfig) -> Experiment:
    """A fresh experiment for ``config``: a new policy from its spec, no statistics."""
    policy = make_policy(dict(config.policy), config.arms, seed=config.seed)
    return Experiment(config.name, policy, guardrails=config.guardrails)
