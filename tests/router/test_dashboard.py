"""``GET /dashboard`` in a real headless Chromium, over a router + memory ingester with data.

The embedded app (router, webhook and learner in one process on ``memory://``) serves
decisions; signed rewards come back through ``/v1/rewards`` in waves, each sent once the
learner has written a timeline point for the one before (its timeline interval is set
to 0 s, so every learned batch writes a point), so there are several points. Chromium
(Debian's ``chromium`` package, ``make system-deps``) then loads the page with the admin
token in the URL fragment: ``--dump-dom`` must show one SVG line per variant in each of
the charts and the stats table's rows, and no warning (the traffic is honest, the
rewards come in time); ``--screenshot`` must show the variants' colours.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from cli.embedded import embedded_app, ingest_service
from common.config import Settings, parse_settings
from reward_ingest.signing import sign
from tests._servers import run_asgi
from tests._wait import wait_for

TOKEN = "dashboard-test-token"  # noqa: S105 - a test's own admin token
SECRET = "dashboard-webhook-secret"  # noqa: S105 - a test's own webhook secret
VARIANTS = {"Variant1": 0.3, "Variant2": 0.7, "Variant3": 0.5}  # reward rates
COLORS = {"Variant1": (0x1F, 0x77, 0xB4), "Variant2": (0xD6, 0x27, 0x28),
          "Variant3": (0x2C, 0xA0, 0x2C)}  # the page's palette, in variant order
CHARTS = ("chart-share", "chart-probability", "chart-reward", "chart-requests")
UNREWARDED = 0.04  # decisions left to the default reward (wait_seconds: 1): under the
# 10% that warns, so this honest experiment's page must show no warning


def chromium() -> str:
    """The browser, or a clear failure: these tests need the real one."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("chromium is not installed: the dashboard tests drive a real headless "
                "browser; install it with `make system-deps` (apt-get install -y chromium)")


def config() -> Settings:
    return parse_settings({
        "store": "memory://",
        "experiments": [{
            "name": "shop", "endpoint": "shop-endpoint", "backend": "http",
            "variants": [{"name": name, "url": "http://127.0.0.1:9/"} for name in VARIANTS],
            "policy": {"type": "thompson"},
            "reward": {"aggregate": "first", "default": 0, "wait_seconds": 1},
        }],
    })


@dataclass
class Sent:
    """What the test sent: per variant, the decisions and the rewards posted."""

    decisions: Counter[str] = field(default_factory=Counter)
    rewards: dict[str, list[float]] = field(default_factory=dict)
    unrewarded: Counter[str] = field(default_factory=Counter)


def drive(url: str, waves: int = 4, per_wave: int = 150, seed: int = 5) -> Sent:
    """Decisions and signed rewards in ``waves``, each once the last one's rewards made a
    timeline point (so there is at least one point per wave)."""
    rng = random.Random(seed)
    sent = Sent()
    with httpx.Client(base_url=url, timeout=10) as client:
        for wave in range(waves):
            rewards = []
            for _ in range(per_wave):
                answer = client.post("/v1/experiments/shop/decisions", json={"context": {}})
                assert answer.status_code == 200, answer.text
                decision = answer.json()
                variant = decision["variant"]
                sent.decisions[variant] += 1
                if rng.random() < UNREWARDED:
                    sent.unrewarded[variant] += 1
                    continue
                value = float(rng.random() < VARIANTS[variant])
                sent.rewards.setdefault(variant, []).append(value)
                rewards.append({"event_id": decision["event_id"], "reward": value})
            body = json.dumps({"rewards": rewards}).encode()
            headers = {"Content-Type": "application/json", **sign(SECRET, body, int(time.time()))}
            points = len(timeline_points(url))
            posted = client.post("/v1/rewards", content=body, headers=headers)
            assert posted.status_code == 202, posted.text
            wait_for_point_after(url, points, f"wave {wave}")
    return sent


def admin(url: str, path: str) -> Any:
    response = httpx.get(url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def timeline_points(url: str) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = admin(url, "/v1/experiments/shop/timeline")["points"]
    return points


def wait_for_point_after(url: str, points: int, what: str) -> None:
    """Until the timeline has more than ``points`` points."""
    wait_for(lambda: len(timeline_points(url)) > points, 20.0, interval=0.05,
             message=f"{what}: no new timeline point")


def wait_learned(url: str, total: int, timeout_s: float = 20.0) -> dict[str, Any]:
    """The stats once the learner has learned ``total`` rewards (defaults included) and
    the timeline's points account for all of them."""
    latest: dict[str, Any] = {}

    def learned_everything() -> bool:
        latest.update(admin(url, "/v1/experiments/shop/stats"))
        learned = sum(v["rewards_joined"] or 0 for v in latest["variants"])
        charted = sum(point["events"] for point in timeline_points(url))
        return learned == total and charted == total

    wait_for(learned_everything, timeout_s, interval=0.1, message=lambda: latest)
    return latest


@contextmanager
def running_dashboard() -> Iterator[tuple[str, Sent, dict[str, Any]]]:
    """A router + ingester with learned data: (URL, what was sent, the final stats)."""
    environ = {"BANDIT_ROUTER_ADMIN_TOKEN": TOKEN, "BANDIT_ROUTER_WEBHOOK_SECRET": SECRET}
    app = embedded_app(config(), environ=environ)
    with run_asgi(app) as url:
        # A point with every learned batch, not at most one a second: the waves need
        # not be a second apart, and the last batch's point is written with it.
        ingest_service(app).learners["shop"].timeline.interval_s = 0.0
        sent = drive(url)
        stats = wait_learned(url, sum(sent.decisions.values()))
        yield url, sent, stats


class ChartDom(HTMLParser):
    """The dumped DOM's chart lines (chart id -> variant -> path d) and table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.chart: str | None = None
        self.lines: dict[str, dict[str, str]] = {}
        self.rows: list[str] = []
        self.warnings: list[str] = []
        self.quiet = False
        self.status = ""
        self._in_status = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "svg" and attributes.get("id", "") in CHARTS:
            self.chart = attributes["id"]
            self.lines[self.chart or ""] = {}
        elif tag == "path" and self.chart and attributes.get("class") == "line":
            self.lines[self.chart][attributes.get("data-variant") or ""] = \
                attributes.get("d") or ""
        elif tag == "tr" and attributes.get("data-variant"):
            self.rows.append(attributes["data-variant"] or "")
        elif tag == "div" and attributes.get("data-code"):
            self.warnings.append(attributes["data-code"] or "")
        elif tag == "div" and attributes.get("class") == "warning none":
            self.quiet = True
        elif tag == "span" and attributes.get("id") == "status":
            self._in_status = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.chart = None
        elif tag == "span":
            self._in_status = False

    def handle_data(self, data: str) -> None:
        if self._in_status:
            self.status += data


def browse(url: str, out: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on ``url`` with ``options`` (its own profile under ``out``)."""
    # Loopback only: without these Chromium calls Google's update and sync services.
    argv = [chromium(), "--headless", "--disable-gpu", "--no-sandbox",
            "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-default-apps", "--no-pings",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--user-data-dir={out / 'profile'}", "--window-size=1200,900",
            "--virtual-time-budget=5000", *options, url]
    return subprocess.run(argv, capture_output=True, text=True, timeout=90,  # noqa: S603
                          check=False)


def test_dashboard_page_is_static_and_locked_down() -> None:
    environ = {"BANDIT_ROUTER_ADMIN_TOKEN": TOKEN}
    with run_asgi(embedded_app(config(), environ=environ)) as url:
        page = httpx.get(url + "/dashboard")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy
        assert "script-src 'sha256-" in policy and "unsafe-inline" not in policy
        assert page.headers["referrer-policy"] == "no-referrer"
        # No external resource at all (deployments may be offline), and no data inline.
        assert "http://" not in page.text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in page.text and TOKEN not in page.text
        # Its data needs the admin token.
        assert httpx.get(url + "/v1/experiments/shop/timeline").status_code == 401
        assert httpx.get(url + "/v1/experiments/shop/stats").status_code == 401
        assert admin(url, "/v1/experiments/shop/timeline")["points"] == []


def test_dashboard_draws_the_charts_and_the_table_in_chromium(tmp_path: Path) -> None:
    chromium()
    with running_dashboard() as (url, sent, stats):
        timeline = admin(url, "/v1/experiments/shop/timeline")
        assert len(timeline["points"]) >= 3, timeline  # one per wave, at least
        page = f"{url}/dashboard#token={TOKEN}&experiment=shop"
        dumped = browse(page, tmp_path, "--dump-dom")
        assert dumped.returncode == 0, dumped.stderr[-2000:]
        shot = tmp_path / "dashboard.png"
        taken = browse(page, tmp_path, f"--screenshot={shot}")
        assert taken.returncode == 0, taken.stderr[-2000:]
    dom = ChartDom()
    dom.feed(dumped.stdout)
    assert "error" not in dom.status and "updated" in dom.status, dom.status
    for chart in CHARTS:
        assert set(dom.lines.get(chart, {})) == set(VARIANTS), (chart, dom.lines)
        for variant, d in dom.lines[chart].items():
            assert d.startswith("M") and d.count("L") >= 2, (chart, variant, d)
    assert dom.rows == list(VARIANTS)
    assert dom.warnings == [] and dom.quiet, (dom.warnings, stats["warnings"])
    for variant in VARIANTS:  # the table shows the learner's figures
        row = next(v for v in stats["variants"] if v["name"] == variant)
        assert row["rewards_joined"] == sent.decisions[variant]
        assert f"{row['mean_reward']:.3f}" in dumped.stdout
    # The screenshot shows every variant's line colour (the page drew, legibly sized).
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 900)
    colours = Counter(image.get_flattened_data())
    for variant, rgb in COLORS.items():
        assert colours[rgb] >= 200, (variant, colours[rgb])
