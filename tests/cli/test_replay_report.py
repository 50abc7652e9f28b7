"""The replay result's two views: the terminal (rich) and the HTML report (in headless Chromium).

The results are built by hand, with what a real replay can produce: several
candidates, a failed calibration and sample-ratio row, a biased candidate with a low
ESS, NaN and null numbers, and names that are HTML (a variant, a candidate and bad
line's path come from the user's data and command line).
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import html5lib
import httpx
import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from websockets.sync.client import ClientConnection, connect

from cli.replay_report import ReportError, render_report, write_report
from cli.replay_view import LARGE_INPUT_BYTES, progress, render
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
            overflowing: [...document.querySelectorAll("main *")]
                .filter(e => e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0)
                .map(e => e.tagName + "." + e.className),
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


def as_json(result: dict[str, Any]) -> dict[str, Any]:
    """The result as ``--json`` prints it: NaN and infinities become null."""
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, list):
            return [clean(item) for item in value]
        return value
    loaded: dict[str, Any] = json.loads(json.dumps(clean(result), allow_nan=False))
    return loaded


# -- the terminal --------------------------------------------------------------------

def terminal(result: dict[str, Any], width: int = 120) -> Console:
    console = Console(record=True, width=width, file=io.StringIO())
    render(result, console)
    return console


def test_the_terminal_shows_the_audit_first_then_the_baseline_then_the_estimates() -> None:
    text = terminal(sample_result()).export_text()
    order = [text.index(part) for part in (
        "Trust audit", "1,204 targeted", "checkout-20240503T101500-0007.json:412",
        "812 events got the default reward", "0.0041  0.0043", "FAILED: 1 of 6 rows",
        "FAILED: 1 of 2 rows", "Calibration: failing rows", "Sample ratio: failing rows",
        "Baseline", "Candidates")]
    assert order == sorted(order), order
    assert "5,181 events" in text and "3,977 other experiments" in text
    assert f"{HOSTILE}.json:7" in text  # a bad line's file:line, as written
    assert "largest weight 1/μ = 244" in text
    # The failing rows, and only those: the ok rows stay out of the way.
    failing = text[text.index("Calibration: failing rows"):text.index("Sample ratio: failing")]
    assert "1.210" in failing and "[1.150, 1.270]" in failing and "0.990" not in failing
    srm = text[text.index("Sample ratio: failing rows"):text.index("Baseline")]
    assert "41.70" in srm and "8.8e-10" in srm and "15,501.8" in srm and "0.55" not in srm
    assert f"candidate '{HOSTILE}' puts mass on variants the log never offered" in text
    assert "low effective sample size" in text
    assert "0.4012" in text and "[0.3969, 0.4055]" in text and "48,210" in text


def test_the_terminal_table_gives_every_figure_and_says_which_side_of_zero() -> None:
    text = terminal(sample_result()).export_text()
    table = text[text.index("Candidates"):]
    lines = {line.split()[0] + " " + line.split()[1]: line for line in table.splitlines()
             if line.startswith("thompson") or line.startswith("static")}
    thompson = lines["thompson IPS"]
    for figure in ("0.4391", "[0.4271, 0.4511]", "0.0061", "9,904", "48,210", "+0.0379",
                   "[+0.0267, +0.0491]", "better"):
        assert figure in thompson, (figure, thompson)
    assert lines["static 70/30"].rstrip().endswith("worse")
    epsilon = next(line for line in table.splitlines() if line.startswith("epsilon_greedy"))
    assert "[−0.0051, +0.0129]" in epsilon and "better" not in epsilon and "worse" not in epsilon
    # NaN and null are a dash, never "nan"; the flags sit under the candidate's name.
    assert "nan" not in table.lower().replace("inconclusive", "")
    assert "! biased" in table and "! low ESS" in table


def test_colours_on_a_terminal_and_plain_text_through_a_pipe() -> None:
    page = terminal(sample_result()).export_html(inline_styles=True)
    red = re.compile(r'<span style="[^"]*color: #800000[^"]*">([^<]*)</span>')
    green = re.compile(r'<span style="[^"]*color: #008000[^"]*">([^<]*)</span>')
    reds = [span.strip() for span in red.findall(page)]
    assert any(span.startswith("FAILED") for span in reds)
    assert "worse" in reds and "better" in [span.strip() for span in green.findall(page)]
    piped = io.StringIO()
    render(sample_result(), Console(file=piped, width=120))  # not a terminal: no styles
    assert "\x1b[" not in piped.getvalue()
    assert "FAILED: 1 of 6 rows" in piped.getvalue() and "better" in piped.getvalue()


def test_a_narrow_console_gets_two_tables_with_every_figure_whole() -> None:
    text = terminal(sample_result(), width=80).export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "Candidates vs the baseline" in text
    for figure in ("[0.4271, 0.4511]", "[+0.0267, +0.0491]", "21,377", "8.8e-10"):
        assert figure in text, figure
    wide = terminal(sample_result(), width=120).export_text()
    assert "Candidates vs the baseline" not in wide


def test_names_are_text_not_markup_and_a_bare_result_renders() -> None:
    result = sample_result()
    result["candidates"] = {"[bold red]x[/]": result["candidates"]["thompson"]}
    assert "[bold red]x[/]" in terminal(result).export_text()
    bare = terminal({}).export_text()
    assert "Trust audit" in bare and "No candidates were evaluated." in bare


def test_the_progress_bar_shows_only_on_a_terminal_and_for_large_inputs() -> None:
    piped = io.StringIO()
    with progress(10 * LARGE_INPUT_BYTES, Console(file=piped)) as advance:
        advance(LARGE_INPUT_BYTES)
    assert piped.getvalue() == ""
    shown = io.StringIO()
    small = Console(file=shown, force_terminal=True, width=100)
    with progress(LARGE_INPUT_BYTES - 1, small) as advance:
        advance(1000)
    assert shown.getvalue() == ""
    with progress(4096, small, threshold=1024) as advance:
        advance(2048)
        advance(2048)
    assert "reading the archive" in shown.getvalue() and "4.1 kB" in shown.getvalue()


# -- the HTML page ---------------------------------------------------------------------

FORBIDDEN_TAGS = {"script", "img", "iframe", "object", "embed", "link", "image", "use",
                  "foreignObject", "audio", "video", "source", "base", "form"}


def parsed(page: str) -> Any:
    """The page's tree; any HTML5 parse error fails (html5lib's strict mode)."""
    return html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(page)


def test_the_page_is_valid_html5_and_every_name_is_text() -> None:
    for result in (sample_result(), as_json(sample_result())):
        page = render_report(result)
        tree = parsed(page)
        tags = {element.tag.split("}")[-1] for element in tree.iter()}
        assert not tags & FORBIDDEN_TAGS, tags & FORBIDDEN_TAGS
        for element in tree.iter():
            assert not {"src", "href", "xlink:href", "action"} & set(element.attrib), element
            assert not any(name.startswith("on") for name in element.attrib), element
        assert HOSTILE not in page and HOSTILE_VARIANT not in page
        assert escape(HOSTILE) in page and escape(HOSTILE_VARIANT) in page
        assert "http:" not in page and "https:" not in page
        assert "default-src 'none'" in page
        text = "".join(tree.itertext())
        assert HOSTILE in text and HOSTILE_VARIANT in text  # shown, as text
        assert "nan" not in text.lower().replace("inconclusive", "")
        assert text.count("not available") == 4  # SNIPS and DM, in both plots
    ids = [element.get("id") for element in tree.iter() if element.get("id")]
    assert len(ids) == len(set(ids))


def test_a_bare_result_makes_a_valid_page() -> None:
    results: list[dict[str, Any]] = [
        {}, {"baseline": {"value": None}}, {"candidates": {"x": {"spec": {}}}},
        {"series": {"cumulative": {"timestamp": [START], "events": [3], "reward": [1.0]},
                    "histograms": {"V": {"edges": [0.0, 0.5, 1.0], "counts": [0, 0]}}}}]
    for result in results:
        parsed(render_report(result))


def test_an_unwritable_path_is_one_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "report.html"
    with pytest.raises(ReportError, match=f"cannot write the report to {re.escape(str(target))}"):
        write_report(sample_result(), target)


def test_the_report_in_chromium_no_error_no_request(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    write_report(sample_result(), report)
    seen = load(report, tmp_path)
    print(f"\nscreenshots: {tmp_path / 'report.png'} (first screen), "
          f"{tmp_path / 'report-full.png'} (whole page); PDF: {tmp_path / 'report.pdf'}")
    assert seen.errors == []
    assert seen.requests == [report.as_uri()]
    facts = seen.facts
    assert facts["title"] == "Replay report: checkout"
    assert facts["images"] == 0 and facts["scripts"] == 0
    # Two forest plots, the curve over time, a histogram per variant.
    assert facts["charts"] == 2 + 1 + 3
    assert facts["marks"] == 2 * (4 + 4 + 4 + 2)  # every available estimate, in both plots
    assert facts["scrollWidth"] <= 1280  # nothing wider than the window,
    assert facts["overflowing"] == []  # nor than its box (a table scrolling in its card)
    calibration, sample_ratio = facts["failingRows"]
    assert HOSTILE_VARIANT in calibration and "1.210" in calibration
    assert "41.70" in sample_ratio and "8.8e-10" in sample_ratio
    assert HOSTILE in facts["text"] and "FAILED" in facts["text"]
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")
    # The first screen is the header and the audit, drawn: the failed checks' red pills.
    image = Image.open(tmp_path / "report.png").convert("RGB")
    assert image.size == (1280, 800)
    colours = Counter(image.get_flattened_data())
    assert colours[(0xB3, 0x26, 0x1E)] >= 500, colours.most_common(5)
