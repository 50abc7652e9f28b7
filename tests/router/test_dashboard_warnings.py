"""The dashboard warns, in a real Chromium, when the experiment misleads itself.

The real stack: the embedded app (router, reward webhook, joiner and learner on
``memory://``) invokes the real simulator's variants over SageMaker's API (boto3). Three
things go wrong, each as it would in production:

- the reward sender lags: 30% of the rewards are posted after ``wait_seconds``, so those
  decisions are learned with the default reward and the rewards themselves come late;
- a variant starts failing (the simulator's ``Variant3`` errors on every call from the
  second wave), so its guardrails trip and its calls are learned as failures;
- a dishonest logger writes decisions for ``Variant1`` to the decision log while
  claiming it was drawn with probability 0.2.

The page must show a warning for each (``default_rewards_high``, ``late_rewards_high``,
``variant_errors_high`` and ``variant_suspended``, ``sample_ratio_mismatch``), the
guardrail trip as a marker on the time axis, and the renamed columns; the screenshot
must show the critical banner's colour.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import ClientError
from PIL import Image

from cli.embedded import embedded_app, ingest_service
from common.config import Settings, parse_settings
from reward_ingest.signing import sign
from router.app import router_state
from simulator import create_app as create_simulator
from simulator import parse_variants
from tests._servers import run_asgi
from tests._wait import wait_for
from tests.router._stack import KEYS, SIM_ENDPOINT, SIM_VARIANTS, backend_factory
from tests.router.test_dashboard import SECRET, TOKEN, browse, chromium

BODY = json.dumps({"instances": [[0.1, -0.2, 0.3, 0.4, -0.5, 0.6]]})
VARIANTS = ("Variant1", "Variant2", "Variant3")
RATES = {"Variant1": 0.3, "Variant2": 0.7, "Variant3": 0.5}  # reward rates
LAGGING = 0.3  # share of rewards the sender posts after wait_seconds
WAVES, PER_WAVE, DISHONEST = 3, 100, 150
CRITICAL_BACKGROUND = (0xFD, 0xEC, 0xEA)  # the page's critical banner


def config() -> Settings:
    return parse_settings({
        "store": "memory://",
        "experiments": [{
            "name": "shop", "endpoint": SIM_ENDPOINT,
            "variants": [{"name": name} for name in VARIANTS],
            "policy": {"type": "static"},
            "reward": {"aggregate": "first", "default": 0, "wait_seconds": 1},
            "guardrails": {"error_rate": 0.5, "min_requests": 20, "window_s": 60,
                           "cooldown_s": 600},
        }],
    })


@dataclass
class Sent:
    """What the test did: decisions logged, rewards posted late, calls that failed."""

    logged: int = 0
    late: int = 0
    failed: int = 0


def post_rewards(client: httpx.Client, rewards: list[dict[str, Any]]) -> None:
    body = json.dumps({"rewards": rewards}).encode()
    headers = {"Content-Type": "application/json", **sign(SECRET, body, int(time.time()))}
    posted = client.post("/v1/rewards", content=body, headers=headers)
    assert posted.status_code == 202, posted.text


def drive(url: str, sim: Any, seed: int = 9) -> Sent:
    """Waves of invocations; 70% of the rewards posted at once, 30% after the window."""
    rng = random.Random(seed)
    sent = Sent()
    key, secret = KEYS
    runtime = boto3.client("sagemaker-runtime", endpoint_url=url, region_name="us-east-1",
                           aws_access_key_id=key, aws_secret_access_key=secret,
                           config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))
    with httpx.Client(base_url=url, timeout=10) as client:
        for wave in range(WAVES):
            if wave == 1:  # Variant3 breaks: every call fails from now on
                sim.variants["Variant3"] = dataclasses.replace(sim.variants["Variant3"],
                                                               error_rate=1.0)
            on_time: list[dict[str, Any]] = []
            lagging: list[dict[str, Any]] = []
            for i in range(PER_WAVE):
                event_id = f"w{wave}-{i}"
                try:
                    answer = runtime.invoke_endpoint(EndpointName=SIM_ENDPOINT, Body=BODY,
                                                     ContentType="application/json",
                                                     InferenceId=event_id)
                except ClientError:
                    sent.logged += 1
                    sent.failed += 1
                    continue  # the caller got an error: no reward to send
                sent.logged += 1
                variant = answer["InvokedProductionVariant"]
                reward = {"event_id": event_id, "reward": float(rng.random() < RATES[variant])}
                (lagging if rng.random() < LAGGING else on_time).append(reward)
            post_rewards(client, on_time)
            time.sleep(1.6)  # past wait_seconds (1 s): the joiner has given up on them
            post_rewards(client, lagging)
            sent.late += len(lagging)
    return sent


def log_dishonestly(url: str, store: Any, count: int) -> None:
    """Decisions for Variant1 that claim it was drawn with probability 0.2."""
    now = time.time()
    probabilities = {"Variant1": 0.2, "Variant2": 0.4, "Variant3": 0.4}

    async def write() -> None:
        for _ in range(count):
            await store.append({
                "format": 1, "event_id": uuid.uuid4().hex, "timestamp": now,
                "experiment": "shop", "endpoint": SIM_ENDPOINT, "policy_version": 0,
                "variants": list(VARIANTS), "eligible": None, "context": None,
                "variant": "Variant1", "probability": 0.2, "probabilities": probabilities,
                "targeted": False, "unit_id": None, "source": "decisions",
                "outcome": "decided", "latency_ms": None})

    # The memory store's append does no I/O: run here, between the router's requests.
    asyncio.run(write())


def admin(url: str, path: str) -> Any:
    response = httpx.get(url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


@contextmanager
def misleading_experiment() -> Iterator[tuple[str, Sent, dict[str, Any]]]:
    """The stack, driven into every warning: (URL, what was sent, the final stats)."""
    environ = {"BANDIT_ROUTER_ADMIN_TOKEN": TOKEN, "BANDIT_ROUTER_WEBHOOK_SECRET": SECRET}
    simulator = create_simulator(parse_variants(SIM_VARIANTS, endpoint=SIM_ENDPOINT, seed=3))
    with ExitStack() as stack:
        sim_url = stack.enter_context(run_asgi(simulator))
        app = embedded_app(config(), environ=environ, backend_factory=backend_factory(sim_url))
        url = stack.enter_context(run_asgi(app))
        ingest_service(app).learners["shop"].timeline.interval_s = 0.0
        sent = drive(url, simulator.state.simulator)
        log_dishonestly(url, router_state(app).store, DISHONEST)
        sent.logged += DISHONEST
        latest: dict[str, Any] = {}

        def learned_everything() -> bool:
            latest.update(admin(url, "/v1/experiments/shop/stats"))
            learned = sum(v["rewards_joined"] or 0 for v in latest["variants"])
            return learned == sent.logged and latest["late_rewards"] == sent.late

        wait_for(learned_everything, 20.0, interval=0.1, message=lambda: latest)
        yield url, sent, latest


class WarningDom(HTMLParser):
    """The dumped DOM's warnings (code -> text), markers per chart, table headers."""

    def __init__(self) -> None:
        super().__init__()
        self.warnings: dict[str, str] = {}
        self.markers: dict[str, list[str]] = {}
        self.headers: list[str] = []
        self._code: str | None = None
        self._chart: str | None = None
        self._in_th = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "div" and attributes.get("data-code"):
            self._code = attributes["data-code"]
            self.warnings[self._code or ""] = ""
        elif tag == "svg" and (attributes.get("id") or "").startswith("chart-"):
            self._chart = attributes["id"]
            self.markers[self._chart or ""] = []
        elif tag == "line" and self._chart and attributes.get("data-kind"):
            self.markers[self._chart].append(attributes["data-kind"] or "")
        elif tag == "th":
            self._in_th = True
            self.headers.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "div":
            self._code = None
        elif tag == "svg":
            self._chart = None
        elif tag == "th":
            self._in_th = False

    def handle_data(self, data: str) -> None:
        if self._code:
            self.warnings[self._code] += data
        if self._in_th:
            self.headers[-1] += data


def test_the_page_warns_of_defaults_late_rewards_a_failing_variant_and_srm(
        tmp_path: Path) -> None:
    chromium()
    with misleading_experiment() as (url, sent, stats):
        page = f"{url}/dashboard#token={TOKEN}&experiment=shop"
        dumped = browse(page, tmp_path, "--dump-dom")
        assert dumped.returncode == 0, dumped.stderr[-2000:]
        shot = tmp_path / "dashboard-warnings.png"
        taken = browse(page, tmp_path, f"--screenshot={shot}")
        assert taken.returncode == 0, taken.stderr[-2000:]
        timeline = admin(url, "/v1/experiments/shop/timeline")
    codes = {w["code"] for w in stats["warnings"]}
    assert codes >= {"default_rewards_high", "late_rewards_high", "sample_ratio_mismatch",
                     "variant_errors_high", "variant_suspended"}, stats["warnings"]
    variants = {v["name"]: v for v in stats["variants"]}
    assert variants["Variant3"]["errors"] == sent.failed >= 20
    assert variants["Variant3"]["state"] == "suspended"
    assert stats["sample_ratio"]["p_value"] < 1e-6
    assert any(m["kind"] == "guardrail_trip" for m in timeline["markers"])

    dom = WarningDom()
    dom.feed(dumped.stdout)
    assert set(dom.warnings) == codes, dom.warnings
    defaults = dom.warnings["default_rewards_high"]
    assert "took the default reward" in defaults and "wait_seconds (1 s)" in defaults
    assert f"{sent.late} rewards" in dom.warnings["late_rewards_high"]
    assert "chi-square" in dom.warnings["sample_ratio_mismatch"]
    assert "Variant3 failed" in dom.warnings["variant_errors_high"]
    # Realised traffic and the policy's probability are named for what they are.
    assert {"Realised share", "Logged probability", "Policy probability now",
            "Uplift vs Variant1 [95%]", "Expected loss"} <= set(dom.headers), dom.headers
    assert "Traffic share" not in dom.headers
    assert "guardrail_trip" in dom.markers.get("chart-requests", []), dom.markers
    # The critical banner is on screen.
    image = Image.open(shot).convert("RGB")
    assert Counter(image.get_flattened_data())[CRITICAL_BACKGROUND] >= 5000
