"""The replay result's two views: the terminal (rich) and the HTML report (in headless Chromium).

The results are built by hand, with what a real replay can produce: several
candidates, a failed calibration and sample-ratio row, a biased candidate with a low
ESS, NaN and null numbers, and names that are HTML (a variant, a candidate and bad
line's path come from the user's data and command line).
"""

from __future__ import annotations

import base64
import json
import math
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from websockets.sync.client import ClientConnection, connect

from tests._wait import wait_for
from tests.router.test_dashboard import chromium

HOSTILE = "<img src=x onerror=alert(1)>"
HOSTILE_VARIANT = "<script>alert('v')</script>"
DAY = 86_400.0
START = 1_714_521_600.0  # 2024-05-01T00:00:00Z


def interval(value: float | None, se: float | None, n: int, ess: float | None = None,
             ) -> dict[str, Any]:
    """An interval object as the evaluation writes it (95%, normal)."""
    if value is None or se is None:
        return {"value": value, "lower": None, "upper": None, "std_error": se,
                "ess": ess, "n": n}
    return {"value": value, "lower": value - 1.96 * se, "upper": value + 1.96 * se,
            "std_error": se, "ess": float(n) if ess is None else ess, "n": n}


def candidate(spec: dict[str, Any], values: dict[str, tuple[float | None, float | None]],
              differences: dict[str, tuple[float | None, float | None]], n: int = 48_210,
              ess: float | None = None, unsupported: float = 0.0,
              low_ess: bool = False) -> dict[str, Any]:
    return {
        "spec": spec,
        **{name: interval(value, se, n, ess) for name, (value, se) in values.items()},
        "vs_baseline": {name: interval(value, se, n, ess)
                        for name, (value, se) in differences.items()},
        "support": {"unsupported_events": round(unsupported * n),
                    "unsupported_mass": unsupported, "biased": unsupported > 0},
        "low_ess": low_ess,
    }


def series(seed: int = 7) -> dict[str, Any]:
    """Two weeks of a log whose reward rate climbs as the logging policy learns."""
    rng = np.random.default_rng(seed)
    times = START + np.sort(rng.random(180)) * 14 * DAY
    per_bucket = rng.integers(150, 400, times.size)
    rate = 0.36 + 0.08 * (times - START) / (14 * DAY) + rng.normal(0, 0.01, times.size)
    events = np.cumsum(per_bucket)
    rewards = np.cumsum(per_bucket * rate)
    edges = [round(i / 20, 2) for i in range(21)]

    def histogram(a: float, b: float) -> dict[str, Any]:
        counts = np.histogram(rng.beta(a, b, 20_000), bins=20, range=(0, 1))[0]
        return {"edges": edges, "counts": counts.tolist()}

    return {
        "cumulative": {"timestamp": times.tolist(), "events": events.tolist(),
                       "reward": rewards.tolist()},
        "histograms": {"control": histogram(2, 5), "ranker-v2": histogram(5, 2),
                       HOSTILE_VARIANT: histogram(1, 12)},
    }


def sample_result() -> dict[str, Any]:
    """A replay result as the command would print it, with every kind of trouble in it."""
    variants = ["control", "ranker-v2", HOSTILE_VARIANT]
    calibration = [
        {"experiment": "checkout", "policy_version": version, "variant": variant,
         "n": 8_000, "mean": mean, "lower": mean - 0.06, "upper": mean + 0.06,
         "ok": abs(mean - 1) < 0.06}
        for version, means in (("7", (0.99, 1.02, 0.97)), ("8", (1.01, 0.98, 1.21)))
        for variant, mean in zip(variants, means, strict=True)]
    sample_ratio = [
        {"experiment": "checkout", "policy_version": "7", "chi2": 1.2, "dof": 2,
         "p_value": 0.55, "ok": True,
         "observed": {"control": 9_120, "ranker-v2": 12_400, HOSTILE_VARIANT: 2_480},
         "expected": {"control": 9_180.4, "ranker-v2": 12_342.1, HOSTILE_VARIANT: 2_477.5}},
        {"experiment": "checkout", "policy_version": "8", "chi2": 41.7, "dof": 2,
         "p_value": 8.8e-10, "ok": False,
         "observed": {"control": 7_010, "ranker-v2": 15_200, HOSTILE_VARIANT: 2_000},
         "expected": {"control": 7_003.2, "ranker-v2": 15_501.8, HOSTILE_VARIANT: 1_705.0}},
    ]
    return {
        "experiment": "checkout",
        "archive": {"paths": ["s3://logs/bandit/checkout/"], "files": 336, "lines": 53_402,
                    "events": 48_210},
        "baseline": {"name": "logging policy", **interval(0.4012, 0.0022, 48_210)},
        "candidates": {
            "thompson": candidate(
                {"type": "thompson"},
                {"IPS": (0.4391, 0.0061), "SNIPS": (0.4377, 0.0049), "DM": (0.4302, 0.0021),
                 "DR": (0.4369, 0.0047)},
                {"IPS": (0.0379, 0.0057), "SNIPS": (0.0365, 0.0045), "DM": (0.0290, 0.0012),
                 "DR": (0.0357, 0.0043)}, ess=9_904.2),
            "epsilon_greedy": candidate(
                {"type": "epsilon_greedy", "epsilon": 0.1},
                {"IPS": (0.4051, 0.0049), "SNIPS": (0.4049, 0.0041), "DM": (0.4038, 0.0020),
                 "DR": (0.4046, 0.0039)},
                {"IPS": (0.0039, 0.0046), "SNIPS": (0.0037, 0.0037), "DM": (0.0026, 0.0011),
                 "DR": (0.0034, 0.0035)}, ess=21_377.0),
            "static 70/30": candidate(
                {"type": "static", "weights": {"control": 0.7, "ranker-v2": 0.3}},
                {"IPS": (0.3725, 0.0058), "SNIPS": (0.3741, 0.0046), "DM": (0.3769, 0.0019),
                 "DR": (0.3738, 0.0044)},
                {"IPS": (-0.0287, 0.0054), "SNIPS": (-0.0271, 0.0043),
                 "DM": (-0.0243, 0.0011), "DR": (-0.0274, 0.0041)}, ess=14_020.5),
            HOSTILE: candidate(
                {"type": "static", "weights": {HOSTILE_VARIANT: 1.0}},
                {"IPS": (0.3310, 0.0410), "SNIPS": (math.nan, None), "DM": (None, None),
                 "DR": (0.3502, 0.0385)},
                {"IPS": (-0.0702, 0.0409), "SNIPS": (math.nan, None), "DM": (None, None),
                 "DR": (-0.0510, 0.0384)}, ess=61.3, unsupported=0.12, low_ess=True),
        },
        "audit": {
            "excluded": {"targeted": 1_204, "other_experiment": 3_977, "before_since": 0,
                         "after_until": 0, "default_reward": 0},
            "bad_lines": {"count": 11, "examples": [
                {"path": "checkout-20240503T101500-0007.json", "line": 412,
                 "message": "not JSON: Expecting ',' delimiter"},
                {"path": f"{HOSTILE}.json", "line": 7,
                 "message": "_label_probability must be in (0, 1], got 0"}]},
            "default_rewards": {"count": 812, "kept": True},
            "smallest_probabilities": [0.0041, 0.0043, 0.0057, 0.0062, 0.0071],
            "calibration": {"ok": False, "rows": calibration},
            "sample_ratio": {"ok": False, "rows": sample_ratio},
            "warnings": [f"candidate '{HOSTILE}' puts mass on variants the log never "
                         f"offered: biased"],
        },
        "series": series(),
    }


# -- headless Chromium over the DevTools protocol --------------------------------------

@dataclass
class PageLoad:
    """What Chromium saw while loading a page: requests, console errors, and a look at it."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


class DevTools:
    """One page of a headless Chromium, driven over its DevTools websocket."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.events: list[dict[str, Any]] = []
        self._next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command and return its result; events read meanwhile are kept."""
        self._next_id += 1
        self.socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == self._next_id:
                assert "error" not in message, (method, message["error"])
                result: dict[str, Any] = message["result"]
                return result
            self.events.append(message)

    def until(self, event: str) -> None:
        """Read events until ``event`` arrives (or fail after 30 s)."""
        while not any(seen.get("method") == event for seen in self.events):
            self.events.append(json.loads(self.socket.recv(timeout=30)))

    def evaluate(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return answer["result"].get("value")


@contextmanager
def chromium_page(profile: Path) -> Iterator[DevTools]:
    """A headless Chromium that resolves no host name and makes no background request."""
    argv = [chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
            "--no-first-run", "--hide-scrollbars", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-default-apps",
            "--no-pings", "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"]
    browser = subprocess.Popen(argv, stdout=subprocess.DEVNULL,  # noqa: S603
                               stderr=subprocess.DEVNULL)
    try:
        active = profile / "DevToolsActivePort"
        wait_for(lambda: active.exists() and len(active.read_text().splitlines()) >= 2, 30.0,
                 interval=0.05, message="Chromium did not open its DevTools port")
        port = int(active.read_text().splitlines()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(target for target in targets if target["type"] == "page")
        with connect(page["webSocketDebuggerUrl"], max_size=None) as socket:
            yield DevTools(socket)
    finally:
        browser.terminate()
        browser.wait(timeout=30)


def load(report: Path, out: Path, width: int = 1280, height: int = 800) -> PageLoad:
    """Open ``report`` in Chromium at width × height; screenshots of the first screen and
    the whole page go to ``out``."""
    seen = PageLoad()
    with chromium_page(out / "profile") as page:
        for domain in ("Page", "Network", "Runtime", "Log"):
            page.call(f"{domain}.enable")
        page.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        page.call("Page.navigate", url=report.as_uri())
        page.until("Page.loadEventFired")
        seen.facts = page.evaluate("""({
            title: document.title,
            scrollWidth: document.documentElement.scrollWidth,
            scrollHeight: document.documentElement.scrollHeight,
            images: document.images.length,
            scripts: document.scripts.length,
            charts: document.querySelectorAll("svg.chart").length,
            marks: document.querySelectorAll("svg.forest g.mark").length,
            failingRows: [...document.querySelectorAll("tr.failing")].map(r => r.innerText),
            text: document.body.innerText,
        })""")
        shot = page.call("Page.captureScreenshot", format="png")
        (out / "report.png").write_bytes(base64.b64decode(shot["data"]))
        whole = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": width,
                                "height": seen.facts["scrollHeight"], "scale": 1})
        (out / "report-full.png").write_bytes(base64.b64decode(whole["data"]))
        pdf = page.call("Page.printToPDF", printBackground=True)
        (out / "report.pdf").write_bytes(base64.b64decode(pdf["data"]))
    for event in page.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            seen.requests.append(params["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            seen.errors.append(json.dumps(params["exceptionDetails"])[:300])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning"):
            seen.errors.append(json.dumps(params.get("args"))[:300])
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            seen.errors.append(params["entry"]["text"])
    return seen
