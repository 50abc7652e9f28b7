"""Router replicas (each a real uvicorn) sharing one registry, in front of one real simulator.

Like ``tests.router._stack.router_stack``, but with the admin token set, a chosen
registry (a Redis URL: each replica opens its own connections, as separate
processes would; or one shared ``MemoryRegistry``), a fast registry poll, and
``Variant4`` on the simulator so tests can add it at run time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
from botocore.config import Config

from common.config import Secrets, Settings
from router.app import create_app
from router.registry import MemoryRegistry, Registry, open_registry
from router.state import RouterState
from router.store import MemoryStore
from router.sync import RegistrySync
from simulator import Simulator, parse_variants
from simulator import create_app as create_simulator
from tests._servers import run_asgi
from tests._wait import wait_for as wait_for  # re-exported: replica tests wait with it
from tests.router._stack import KEYS, SIM_ENDPOINT, SIM_VARIANTS, backend_factory

TOKEN = "s3cret-admin-token"  # noqa: S105  (the tests' own token)
SIM_VARIANTS_4 = SIM_VARIANTS + ",Variant4=logistic"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Replica:
    """One running router: its URL and its in-process state (the test's window into it)."""

    url: str
    state: RouterState
    store: MemoryStore
    sync: RegistrySync

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An admin call with the right token."""
        headers = {**AUTH, **kwargs.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=10, **kwargs)

    def client(self) -> Any:
        """A plain boto3 ``sagemaker-runtime`` client aimed at this replica (no retries)."""
        key, secret = KEYS
        return boto3.client("sagemaker-runtime", endpoint_url=self.url,
                            region_name="us-east-1", aws_access_key_id=key,
                            aws_secret_access_key=secret,
                            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))

    def memory_registry(self) -> MemoryRegistry:
        """The shared in-memory registry (clusters started without a Redis URL)."""
        registry = self.sync.registry
        assert isinstance(registry, MemoryRegistry)
        return registry


@dataclass
class Cluster:
    """The simulator and the replicas."""

    sim_url: str
    sim: Simulator
    replicas: list[Replica]


@contextmanager
def cluster(config: Settings, *, count: int = 2, registry_url: str | None = None,
            token: str | None = TOKEN, poll_s: float = 0.5) -> Iterator[Cluster]:
    """``count`` routers on the registry at ``registry_url`` (None: one shared in memory)."""
    simulator = create_simulator(parse_variants(SIM_VARIANTS_4, endpoint=SIM_ENDPOINT, seed=1))
    shared = MemoryRegistry() if registry_url is None else None
    with ExitStack() as stack:
        sim_url = stack.enter_context(run_asgi(simulator))
        replicas = []
        for _ in range(count):
            registry: Registry = shared if shared is not None else open_registry(
                registry_url or "")
            store = MemoryStore()
            app = create_app(config, store=store, backend_factory=backend_factory(sim_url),
                             secrets=Secrets(admin_token=token), registry=registry,
                             registry_poll_s=poll_s)
            url = stack.enter_context(run_asgi(app))
            replicas.append(Replica(url, app.state.router, store, app.state.sync))
        yield Cluster(sim_url, simulator.state.simulator, replicas)
