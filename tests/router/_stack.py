"""A real router (uvicorn) in front of the real simulator (uvicorn), for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore.config import Config

from common.config import ExperimentConfig, Settings, parse_settings
from router.app import create_app
from router.backends import Backend, HttpBackend, SageMakerBackend
from router.state import RouterState
from router.store import DecisionStore, MemoryStore
from simulator import Simulator, parse_variants
from simulator import create_app as create_simulator
from tests._servers import run_asgi

SIM_ENDPOINT = "sim-endpoint"
SIM_VARIANTS = "Variant1=logistic,Variant2=tree,Variant3=naive_bayes"
KEYS = ("testing", "testing")


@dataclass
class Stack:
    """The running parts: URLs, the simulator's state, the router's state and store."""

    router_url: str
    sim_url: str
    sim: Simulator
    state: RouterState
    store: DecisionStore

    def client(self, attempts: int = 1) -> Any:
        """A plain boto3 ``sagemaker-runtime`` client aimed at the router."""
        key, secret = KEYS
        return boto3.client("sagemaker-runtime", endpoint_url=self.router_url,
                            region_name="us-east-1", aws_access_key_id=key,
                            aws_secret_access_key=secret,
                            config=Config(retries={"total_max_attempts": attempts,
                                                   "mode": "standard"}))

    def set_variant(self, name: str, **changes: Any) -> None:
        """Change a simulated variant's latency / errors at run time."""
        import dataclasses

        self.sim.variants[name] = dataclasses.replace(self.sim.variants[name], **changes)


def experiment(name: str = "exp", **overrides: Any) -> dict[str, Any]:
    """An experiment config dict routing the simulator's endpoint."""
    config: dict[str, Any] = {
        "name": name,
        "endpoint": SIM_ENDPOINT,
        "variants": [{"name": "Variant1"}, {"name": "Variant2"}, {"name": "Variant3"}],
        "policy": {"type": "static"},
        "context": {"from": "header"},
        "guardrails": None,
    }
    config.update(overrides)
    return config


def settings(*experiments: dict[str, Any], store: str = "memory://") -> Settings:
    return parse_settings({"store": store, "experiments": list(experiments or [experiment()])})


def backend_factory(sim_url: str) -> Any:
    """SageMaker backends aimed at the simulator, with quick retries for tests."""
    session = botocore.session.Session()
    session.set_credentials(*KEYS)

    def build(config: ExperimentConfig) -> Backend:
        if config.backend == "http":
            return HttpBackend({v.name: str(v.url) for v in config.variants})
        return SageMakerBackend(region="us-east-1", endpoint_url=sim_url, session=session,
                                backoff_base_s=0.005, max_backoff_s=0.02)

    return build


@contextmanager
def router_stack(
    config: Settings | None = None,
    *,
    store: DecisionStore | None = None,
    sim_variants: str = SIM_VARIANTS,
    sim_seed: int = 1,
) -> Iterator[Stack]:
    """Simulator and router up on free ports for the block; both stopped after."""
    config = config or settings()
    simulator = create_simulator(parse_variants(sim_variants, endpoint=SIM_ENDPOINT,
                                                seed=sim_seed))
    with ExitStack() as stack:
        sim_url = stack.enter_context(run_asgi(simulator))
        store = store if store is not None else MemoryStore()
        app = create_app(config, store=store, backend_factory=backend_factory(sim_url))
        router_url = stack.enter_context(run_asgi(app))
        yield Stack(router_url, sim_url, simulator.state.simulator, app.state.router, store)
