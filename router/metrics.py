"""The router's Prometheus metrics, one registry per app (so tests can run several).

Names follow the Prometheus guide: unit and kind in the name, labels from a
small closed set (experiment, variant, outcome), never an id or a user value.
``bandit_build_info`` and ``bandit_redis_errors_total`` are the process's.
Label children are cached: ``labels()`` costs a lock and a dict lookup per call,
which the hot path would otherwise pay several times per request.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from common.build_info import register_build_info
from common.redis_errors import RedisErrors

# Latency buckets in seconds: the router adds ~0.1–1 ms, variants take 1 ms–seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)
VARIANT_STATES = ("active", "suspended", "probing")
_SUSPENDED_VALUE = {"healthy": 0.0, "probing": 0.5, "suspended": 1.0}
OUTCOMES = ("ok", "model_error", "unavailable", "invalid", "internal", "not_ready")


class RouterMetrics:
    """Counters, histograms and gauges the router updates; ``render`` for ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.decisions = Counter(
            "bandit_router_decisions_total", "Decisions made, by experiment, variant and "
            "whether the caller targeted the variant", ("experiment", "variant", "targeted"),
            registry=r)
        self.invocations = Counter(
            "bandit_router_invocations_total", "Variant invocations by outcome",
            ("experiment", "variant", "outcome"), registry=r)
        self.variant_seconds = Histogram(
            "bandit_router_invocation_seconds", "Time the variant took to answer",
            ("experiment", "variant"), buckets=LATENCY_BUCKETS, registry=r)
        self.request_seconds = Histogram(
            "bandit_router_request_seconds", "Time the router took per request, end to end",
            ("route",), buckets=LATENCY_BUCKETS, registry=r)
        self.rejected = Counter(
            "bandit_router_rejected_requests_total", "Requests refused before a decision, by "
            "route and error code", ("route", "code"), registry=r)
        self.trips = Counter(
            "bandit_router_guardrail_trips_total", "Times a variant's guardrails tripped",
            ("experiment", "variant"), registry=r)
        self.suspended = Gauge(
            "bandit_router_variant_suspended", "Deprecated: use bandit_variant_state. 1 while "
            "the variant is suspended, 0.5 while probed, 0 when healthy",
            ("experiment", "variant"), registry=r)
        self.variant_state = Gauge(
            "bandit_variant_state", "1 for the guardrail state the variant is in (active, "
            "suspended, probing), 0 for the others", ("experiment", "variant", "state"),
            registry=r)
        self.policy_version = Gauge(
            "bandit_router_policy_version", "Version of the policy snapshot being served",
            ("experiment",), registry=r)
        self.spooling = Gauge(
            "bandit_router_decision_log_spooling", "1 while decisions go to the local spool",
            registry=r)
        self.spooled = Gauge(
            "bandit_router_decision_log_spooled_events", "Decisions waiting in the spool",
            registry=r)
        register_build_info(r)
        r.register(RedisErrors())
        # Children of the per-request route histograms, looked up once.
        self.invocations_route_seconds = self.request_seconds.labels("invocations")
        self.decisions_route_seconds = self.request_seconds.labels("decisions")
        self._decision_children: dict[tuple[str, str, bool], Counter] = {}
        self._invocation_children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    def decided(self, experiment: str, variant: str, targeted: bool) -> None:
        """Count one decision."""
        key = (experiment, variant, targeted)
        child = self._decision_children.get(key)
        if child is None:
            child = self.decisions.labels(experiment, variant, "true" if targeted else "false")
            self._decision_children[key] = child
        child.inc()

    def invoked(self, experiment: str, variant: str, outcome: str, seconds: float) -> None:
        """Count one invocation and its latency."""
        key = (experiment, variant, outcome)
        pair = self._invocation_children.get(key)
        if pair is None:
            pair = (self.invocations.labels(experiment, variant, outcome),
                    self.variant_seconds.labels(experiment, variant))
            self._invocation_children[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def guardrail_state(self, experiment: str, variant: str, state: str) -> None:
        """Set the variant's guardrail state (``healthy``, ``suspended`` or ``probing``):
        the labelled gauge (``healthy`` shows as ``active``) and the deprecated one."""
        shown = "active" if state == "healthy" else state
        for name in VARIANT_STATES:
            self.variant_state.labels(experiment, variant, name).set(1.0 if name == shown else 0.0)
        self.suspended.labels(experiment, variant).set(_SUSPENDED_VALUE[state])

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
