"""``bandit-router demo``: the live service loop on this machine, loopback only.

What runs, all started and stopped by the demo itself:

* moto's server (a subprocess on a free loopback port) as the local SageMaker
  *control plane*: the demo creates the endpoint and its production variants in it
  through boto3 (moto makes them InService at once), and the router's weight pusher
  calls ``UpdateEndpointWeightsAndCapacities`` on it. Without moto installed the demo
  says so and runs without weight pushes;
* the simulator (uvicorn in a thread): SageMaker Runtime's ``InvokeEndpoint`` over
  real scikit-learn models of different quality;
* the router on ``memory://`` with ``/v1/rewards`` and the learning loop inside
  (``embedded_app``; uvicorn in a thread), configured in code: Thompson sampling,
  context from the header, reward ``first`` with default 0, weights pushed every
  few seconds.

The main thread sends pool examples through a boto3 ``sagemaker-runtime`` client to
the router (``simulator.traffic.invoke_one``, paced at ``rate`` requests a second,
``concurrency`` in flight), scores each answer against the true label (reward 1 for
a right prediction) and posts the rewards, HMAC-signed with a secret made for this
run, in batches to ``/v1/rewards``. ``LiveDemo.state`` is what the terminal view
(``live_demo_view``) shows; the run stops after ``requests`` requests or
``duration_s`` seconds, whichever comes first.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from .local_servers import LocalServerError, moto_available, moto_server, serve_in_thread

EXPERIMENT = "demo"
ENDPOINT = "bandit-sim"
REGION = "us-east-1"
# forest is the best of the three on the pool (0.90 against 0.72 and 0.73 at seed 0;
# the view shows each variant's accuracy as measured at start-up).
VARIANTS = "Variant1=logistic,Variant2=forest,Variant3=naive_bayes"
_ROLE_ARN = "arn:aws:iam::123456789012:role/bandit-router-demo"
_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bandit-demo:latest"
_DUMMY_KEYS = ("demo", "demo")  # moto and the simulator check no signature


class DemoError(LocalServerError):
    """The demo could not start (a server did not come up, a port was taken...)."""


@dataclass(frozen=True, slots=True)
class LiveOptions:
    """How long and how hard the demo drives the loop."""

    requests: int = 4000
    duration_s: float = 60.0
    seed: int = 0
    concurrency: int = 8
    rate: float = 100.0
    """Requests started per second (0: as fast as the loop answers)."""
    push_interval_s: float = 5.0
    window: int = 500
    """Recent requests the traffic shares and the rolling reward cover."""
    reward_batch: int = 50
    reward_every_s: float = 0.5
    """Rewards are posted when ``reward_batch`` are waiting or this long has passed."""
    archive_dir: str | None = None
    """Where the joined decisions are archived as DSJSON (None: not archived)."""
    keep_serving: bool = False
    """After the traffic, keep every server up until Ctrl-C (or SIGTERM)."""


@dataclass
class VariantView:
    """One production variant as the view shows it."""

    name: str
    model: str
    accuracy: float
    served: int = 0
    rewards: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    reward_sum: float = 0.0
    probability: float | None = None
    endpoint_weight: float | None = None

    @property
    def rolling_reward(self) -> float | None:
        """Mean reward of this variant's last (up to 200) requests."""
        return sum(self.rewards) / len(self.rewards) if self.rewards else None

    @property
    def mean_reward(self) -> float | None:
        """Mean reward of all its requests."""
        return self.reward_sum / self.served if self.served else None


@dataclass
class LiveState:
    """Everything the terminal view reads; updated by the demo's main thread only."""

    options: LiveOptions
    variants: dict[str, VariantView]
    router_url: str = ""
    simulator_url: str = ""
    admin_token: str = ""
    """The router's admin token for this run: the dashboard's link carries it."""
    moto_url: str | None = None
    moto_missing: str | None = None
    endpoint_status: str | None = None
    started: float = field(default_factory=time.monotonic)
    elapsed_s: float = 0.0
    sent: int = 0
    done: int = 0
    errors: int = 0
    rewards_posted: int = 0
    learned: int = 0
    snapshot_version: int = 0
    pushes: int = 0
    push_errors: int = 0
    last_push_at: float | None = None
    """Monotonic time at which ``pushes`` last grew."""
    recent: deque[tuple[str, float]] = field(default_factory=deque)
    history: list[tuple[str, float]] = field(default_factory=list)
    """(variant, reward) of every answered request, in order."""
    finished: bool = False
    serving: bool = False
    """The traffic is over and the servers stay up until Ctrl-C (``keep_serving``)."""
    stop_reason: str = ""

    @property
    def best(self) -> str:
        """The variant whose model is the most accurate on the pool."""
        return max(self.variants.values(), key=lambda v: v.accuracy).name

    @property
    def dashboard_url(self) -> str:
        """The dashboard with this run's admin token in the fragment (never sent to the server)."""
        return f"{self.router_url}/dashboard#token={self.admin_token}"

    def shares(self, records: list[tuple[str, float]] | deque[tuple[str, float]]
               ) -> dict[str, float]:
        """Each variant's share of ``records``."""
        total = len(records) or 1
        counts = dict.fromkeys(self.variants, 0)
        for variant, _ in records:
            if variant in counts:
                counts[variant] += 1
        return {name: count / total for name, count in counts.items()}

    def rolling_reward(self) -> float | None:
        """Mean reward over the last ``window`` answered requests."""
        if not self.recent:
            return None
        return sum(reward for _, reward in self.recent) / len(self.recent)

    def mean_reward(self) -> float | None:
        return sum(r for _, r in self.history) / len(self.history) if self.history else None


def accuracies(seed: int) -> tuple[Any, dict[str, tuple[str, float]]]:
    """The simulator's spec for ``seed`` and each variant's (model, accuracy on the pool)."""
    from simulator import make_dataset, parse_variants, train_models

    spec = parse_variants(VARIANTS, endpoint=ENDPOINT, seed=seed)
    dataset = make_dataset(seed)
    models = train_models((v.model for v in spec.variants), dataset, seed)
    return (spec, dataset), {v.name: (v.model, models[v.model].accuracy(dataset.pool))
                             for v in spec.variants}


# --------------------------------------------------------------------------- servers


@contextmanager
def aws_environment(moto_url: str | None) -> Iterator[None]:
    """This process's AWS settings for the demo only: dummy keys, a region, moto as the
    SageMaker control plane, and no config or credentials file (so nobody's real AWS
    account can be reached). Restored afterwards."""
    values: dict[str, str | None] = {
        "AWS_ACCESS_KEY_ID": _DUMMY_KEYS[0], "AWS_SECRET_ACCESS_KEY": _DUMMY_KEYS[1],
        "AWS_SESSION_TOKEN": None, "AWS_PROFILE": None, "AWS_DEFAULT_PROFILE": None,
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_ENDPOINT_URL": None, "AWS_ENDPOINT_URL_SAGEMAKER": moto_url,
    }
    saved = {key: os.environ.get(key) for key in values}
    try:
        _apply(values)
        yield
    finally:
        _apply(saved)


def _apply(values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def sagemaker_client() -> Any:
    """boto3's ``sagemaker`` client from the environment (moto, inside ``aws_environment``)."""
    import boto3

    return boto3.session.Session().client("sagemaker", region_name=REGION)


def create_endpoint(client: Any, endpoint: str, variants: list[str]) -> str:
    """Model, endpoint config (one production variant each, equal weights) and endpoint,
    through boto3; returns the endpoint's status."""
    model = f"{endpoint}-model"
    client.create_model(ModelName=model, ExecutionRoleArn=_ROLE_ARN,
                        PrimaryContainer={"Image": _IMAGE})
    client.create_endpoint_config(
        EndpointConfigName=f"{endpoint}-config",
        ProductionVariants=[{"VariantName": name, "ModelName": model,
                             "InstanceType": "ml.m5.large", "InitialInstanceCount": 1,
                             "InitialVariantWeight": 1.0} for name in variants])
    client.create_endpoint(EndpointName=endpoint, EndpointConfigName=f"{endpoint}-config")
    status: str = client.describe_endpoint(EndpointName=endpoint)["EndpointStatus"]
    return status


def endpoint_weights(client: Any, endpoint: str) -> dict[str, float]:
    """The endpoint's current weights as DescribeEndpoint reports them, normalised."""
    variants = client.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
    raw = {v["VariantName"]: float(v.get("CurrentWeight", 0.0)) for v in variants}
    total = sum(raw.values())
    return {name: (w / total if total > 0 else 0.0) for name, w in raw.items()}


# --------------------------------------------------------------------------- the loop


def settings(*, push: bool, push_interval_s: float, seed: int,
             archive_dir: str | None = None) -> Any:
    """The router's configuration, built in code."""
    from common.config import parse_settings

    archive = {} if archive_dir is None else {"archive": {"path": archive_dir,
                                                          "max_seconds": 15}}
    return parse_settings({
        **archive,
        "store": "memory://",
        "decision_log": {"spool_path": os.path.join(tempfile.gettempdir(),
                                                    f"bandit-demo-{os.getpid()}.spool")},
        "experiments": [{
            "name": EXPERIMENT, "endpoint": ENDPOINT, "seed": seed,
            "variants": [{"name": name} for name in ("Variant1", "Variant2", "Variant3")],
            "policy": {"type": "thompson"},
            "context": {"from": "header"},
            "reward": {"aggregate": "first", "default": 0, "wait_seconds": 30},
            "weights_push": {"enabled": push, "interval_s": push_interval_s,
                             "min_weight": 0.05, "max_step": 0.25},
        }],
    })


def _backend_factory(sim_url: str) -> Callable[[Any], Any]:
    """SageMaker Runtime backends aimed at the simulator (dummy keys: it checks none)."""
    import botocore.session

    from router.backends import SageMakerBackend

    session = botocore.session.Session()
    session.set_credentials(*_DUMMY_KEYS)

    def build(config: Any) -> Any:
        return SageMakerBackend(region=REGION, endpoint_url=sim_url, session=session,
                                max_attempts=2, backoff_base_s=0.01, max_backoff_s=0.05)

    return build


class LiveDemo:
    """The live loop: ``run(on_tick)`` starts everything, drives traffic, stops everything."""

    def __init__(self, options: LiveOptions) -> None:
        self.options = options
        (self._spec, self._dataset), measured = accuracies(options.seed)
        self.state = LiveState(options, {
            name: VariantView(name, model, accuracy)
            for name, (model, accuracy) in measured.items()})
        self._webhook_secret = secrets.token_hex(16)
        self._admin_token = secrets.token_hex(16)
        self.state.admin_token = self._admin_token
        self._app: Any = None
        self._sagemaker: Any = None
        self._http = httpx.Client(timeout=5.0)
        self._last_weights_read = 0.0

    def run(self, on_tick: Callable[[LiveState], None], *,
            on_ready: Callable[[LiveState], None] | None = None,
            ticks_per_second: float = 4.0) -> LiveState:
        """Start the servers, drive the traffic to the end, stop the servers."""
        from simulator import create_app as create_simulator

        from .embedded import embedded_app

        state = self.state
        with ExitStack() as stack:
            stack.callback(self._http.close)
            if moto_available():
                state.moto_url = stack.enter_context(moto_server())
            else:
                state.moto_missing = ("moto is not installed (pip install 'moto[server]'): "
                                      "running without weight pushes")
            stack.enter_context(aws_environment(state.moto_url))
            if state.moto_url is not None:
                self._sagemaker = sagemaker_client()
                state.endpoint_status = create_endpoint(self._sagemaker, ENDPOINT,
                                                        list(state.variants))
            sim_url = stack.enter_context(serve_in_thread(
                create_simulator(self._spec, self._dataset)))
            state.simulator_url = sim_url
            config = settings(push=state.moto_url is not None,
                              push_interval_s=self.options.push_interval_s,
                              seed=self.options.seed, archive_dir=self.options.archive_dir)
            self._app = embedded_app(
                config, environ={"BANDIT_ROUTER_WEBHOOK_SECRET": self._webhook_secret,
                                 "BANDIT_ROUTER_ADMIN_TOKEN": self._admin_token},
                backend_factory=_backend_factory(sim_url))
            state.router_url = stack.enter_context(serve_in_thread(self._app))
            self._read_weights(force=True)
            if on_ready is not None:
                on_ready(state)
            self._drive(on_tick, 1.0 / ticks_per_second)
            self._settle(on_tick)
            state.finished = True
            on_tick(state)
            if self.options.keep_serving:
                state.serving = True
                on_tick(state)
                _wait_for_interrupt()
        return state

    # The traffic ------------------------------------------------------------

    def _drive(self, on_tick: Callable[[LiveState], None], tick_s: float) -> None:
        from simulator import invoke_one, make_client

        options, state = self.options, self.state
        pool = self._dataset.pool
        client = make_client(state.router_url, pool_size=options.concurrency,
                             credentials=_DUMMY_KEYS)
        rng = random.Random(options.seed)  # noqa: S311 - reproducible traffic
        state.started = time.monotonic()
        deadline = state.started + options.duration_s
        batch: list[dict[str, Any]] = []
        last_post = last_tick = state.started
        state.recent = deque(maxlen=options.window)
        with ThreadPoolExecutor(max_workers=options.concurrency,
                                thread_name_prefix="demo-traffic") as workers:
            pending: set[Future[Any]] = set()
            while True:
                now = time.monotonic()
                state.elapsed_s = now - state.started
                open_ = now < deadline
                if not open_ and not state.stop_reason:
                    state.stop_reason = f"time limit ({options.duration_s:g} s)"
                allowed = options.requests if options.rate <= 0 else min(
                    options.requests, int((now - state.started) * options.rate) + 1)
                while open_ and state.sent < allowed and len(pending) < options.concurrency:
                    index = rng.randrange(len(pool))
                    pending.add(workers.submit(invoke_one, client, ENDPOINT, pool, index))
                    state.sent += 1
                if not pending and (state.sent >= options.requests or not open_):
                    break
                done, pending = wait(pending, timeout=min(tick_s, 0.05),
                                     return_when=FIRST_COMPLETED)
                for future in done:
                    record = future.result()
                    self._count(record, batch)
                now = time.monotonic()
                if batch and (len(batch) >= options.reward_batch
                              or now - last_post >= options.reward_every_s):
                    self._post(batch)
                    batch = []
                    last_post = now
                if now - last_tick >= tick_s:
                    self._observe()
                    on_tick(state)
                    last_tick = now
        if batch:
            self._post(batch)
        if not state.stop_reason:
            state.stop_reason = f"{state.sent:,} requests sent"
        state.elapsed_s = time.monotonic() - state.started

    def _count(self, record: Any, batch: list[dict[str, Any]]) -> None:
        state = self.state
        state.done += 1
        if record.error is not None or record.variant not in state.variants:
            state.errors += 1
            return
        view = state.variants[record.variant]
        view.served += 1
        view.rewards.append(record.reward)
        view.reward_sum += record.reward
        state.recent.append((record.variant, record.reward))
        state.history.append((record.variant, record.reward))
        if record.event_id is not None:
            batch.append({"event_id": record.event_id, "reward": record.reward})

    def _post(self, batch: list[dict[str, Any]]) -> None:
        from reward_ingest.signing import sign

        body = json.dumps({"rewards": batch}).encode()
        headers = {"Content-Type": "application/json",
                   **sign(self._webhook_secret, body, int(time.time()))}
        answer = self._http.post(f"{self.state.router_url}/v1/rewards", content=body,
                                 headers=headers)
        if answer.status_code != 202:
            raise DemoError(f"POST /v1/rewards answered {answer.status_code}: "
                            f"{answer.text[:200]}")
        self.state.rewards_posted += int(answer.json().get("accepted", 0))

    # What the view shows ----------------------------------------------------

    def _observe(self) -> None:
        """Read the router's served probabilities, the learner, the pusher, the endpoint."""
        state = self.state
        try:
            answer = self._http.get(
                f"{state.router_url}/v1/experiments/{EXPERIMENT}/stats",
                headers={"Authorization": f"Bearer {self._admin_token}"})
            stats = answer.json() if answer.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            stats = {}
        for variant in stats.get("variants", []):
            view = state.variants.get(variant.get("name"))
            if view is not None:
                view.probability = variant.get("traffic_share")
        state.snapshot_version = int(stats.get("policy", {}).get("snapshot_version") or 0)
        service = getattr(self._app.state, "ingest", None)
        if service is None:
            return
        learner = service.learners.get(EXPERIMENT)
        if learner is not None:
            state.learned = learner.counters.learned
        pusher = self._pusher()
        if pusher is not None:
            try:
                stats = pusher.stats()
            except RuntimeError:  # its history changed mid-read (the router's thread)
                stats = {"pushes": state.pushes, "errors": state.push_errors}
            pushes, errors = int(stats["pushes"]), int(stats["errors"])
            if pushes != state.pushes:
                state.pushes = pushes
                state.last_push_at = time.monotonic()
                self._read_weights(force=True)
            state.push_errors = errors
        self._read_weights()

    def _read_weights(self, *, force: bool = False) -> None:
        """DescribeEndpoint from moto, at most once a second unless ``force``."""
        if self._sagemaker is None:
            return
        now = time.monotonic()
        if not force and now - self._last_weights_read < 1.0:
            return
        self._last_weights_read = now
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            weights = endpoint_weights(self._sagemaker, ENDPOINT)
        except (BotoCoreError, ClientError):
            return
        for name, weight in weights.items():
            if name in self.state.variants:
                self.state.variants[name].endpoint_weight = weight

    def _settle(self, on_tick: Callable[[LiveState], None], timeout_s: float = 5.0) -> None:
        """Let the learner take in the last rewards and the pusher look at the endpoint
        once more (its next round, at most ``push_interval_s`` away), then read
        everything a last time. Bounded: a few seconds past the push interval."""
        state = self.state
        ended = time.time()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._observe()
            if state.learned >= state.rewards_posted:
                break
            time.sleep(0.1)
        pusher = self._pusher()
        if pusher is not None:
            state.stop_reason += "; waiting for the pusher's next round"
            on_tick(state)
            deadline = time.monotonic() + self.options.push_interval_s + 3.0
            while time.monotonic() < deadline and self._last_push_record_at(pusher) < ended:
                time.sleep(0.1)
                self._observe()
            state.stop_reason = state.stop_reason.removesuffix(
                "; waiting for the pusher's next round")
        self._observe()
        self._read_weights(force=True)

    def _pusher(self) -> Any:
        service = getattr(self._app.state, "ingest", None)
        return None if service is None else service.pushers.get(EXPERIMENT)

    @staticmethod
    def _last_push_record_at(pusher: Any) -> float:
        """When the pusher last pushed, found nothing to change, or failed."""
        try:
            history = pusher.stats()["history"]
        except RuntimeError:  # changed mid-read by the router's thread
            return 0.0
        return float(history[-1]["at"]) if history else 0.0


def _wait_for_interrupt() -> None:
    """Sleep until Ctrl-C (SIGTERM and SIGHUP arrive as KeyboardInterrupt too): a normal end."""
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return
