"""Router and ingester on a real Redis: every loop metric moves, and the dashboard and
the alert rules only name metrics the two ``/metrics`` endpoints expose."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cli.ingest import ingest_app
from common.config import parse_settings
from reward_ingest.signing import sign
from router.app import create_app
from router.store import open_store
from simulator import create_app as create_simulator
from simulator import parse_variants
from tests._promql import exposed_families, family_of, metric_names
from tests._redis_server import RedisServer
from tests._servers import free_port, run_asgi
from tests._wait import wait_for
from tests.router._stack import SIM_ENDPOINT, SIM_VARIANTS, backend_factory

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "bandit-router.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"
SECRET = "observability-test-secret"  # noqa: S105 - a test's own webhook secret
VARIANTS = [{"name": "Variant1"}, {"name": "Variant2"}, {"name": "Variant3"}]


def _settings(store: str, tmp_path: Path) -> Any:
    return parse_settings({
        "store": store,
        "archive": {"path": str(tmp_path / "archive"), "max_seconds": 0.2},
        "decision_log": {"spool_path": str(tmp_path / "spool.jsonl")},
        "experiments": [
            {"name": "obs", "endpoint": SIM_ENDPOINT, "variants": VARIANTS,
             "policy": {"type": "thompson"},
             "reward": {"aggregate": "first", "default": 0, "wait_seconds": 2.0},
             "weights_push": {"enabled": True, "interval_s": 0.2}},
            {"name": "wide", "endpoint": "wide-ep", "variants": [{"name": "A"}],
             "policy": {"type": "static"}, "reward": {"min": -5, "max": 100}}]})


def _post(url: str, rewards: list[dict[str, Any]]) -> httpx.Response:
    body = json.dumps({"rewards": rewards}).encode()
    return httpx.post(f"{url}/v1/rewards", content=body, headers={
        "Content-Type": "application/json", **sign(SECRET, body, int(time.time()))})


def _samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"{url}/metrics").text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def scrapes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Router and ingester after some traffic and rewards: {"router": url, "ingest": url}."""
    tmp_path = tmp_path_factory.mktemp("observability")
    with pytest.MonkeyPatch.context() as env, RedisServer() as server, ExitStack() as stack:
        env.setenv("BANDIT_ROUTER_WEBHOOK_SECRET", SECRET)
        # Weight pushes go to a port nothing listens on: each one fails, and is counted.
        env.setenv("AWS_ENDPOINT_URL_SAGEMAKER", f"http://127.0.0.1:{free_port()}")
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_REGION", "us-east-1")
        settings = _settings(server.url, tmp_path)
        simulator = create_simulator(parse_variants(SIM_VARIANTS, endpoint=SIM_ENDPOINT, seed=1))
        sim_url = stack.enter_context(run_asgi(simulator))
        store = open_store(server.url, spool_path=tmp_path / "spool.jsonl")
        router_url = stack.enter_context(run_asgi(create_app(
            settings, store=store, backend_factory=backend_factory(sim_url))))
        ingest_url = stack.enter_context(run_asgi(ingest_app(settings)))
        events = [httpx.post(f"{router_url}/v1/experiments/obs/decisions", json={}).json()
                  ["event_id"] for _ in range(6)]
        httpx.post(f"{router_url}/endpoints/{SIM_ENDPOINT}/invocations", json={"x": 1})
        assert _post(ingest_url, [{"event_id": events[0], "reward": 1},
                                  {"event_id": events[1], "reward": 0},
                                  {"event_id": events[2], "reward": 50}]).status_code == 202
        assert _post(ingest_url, [{"event_id": events[0], "reward": 1}]).json() == {
            "accepted": 0, "duplicates": 1}
        assert _post(ingest_url, [{"event_id": events[0], "reward": "x"}]).status_code == 422
        yield {"router": router_url, "ingest": ingest_url}


def test_the_loop_counters_move(scrapes: dict[str, str]) -> None:
    ingest = scrapes["ingest"]

    def settled() -> bool:
        s = _samples(ingest)
        return (_value(s, "bandit_ingest_rewards_joined_total", experiment="obs") == 7
                and _value(s, "bandit_ingest_weight_pushes_total", experiment="obs",
                           outcome="failed") >= 1
                and _value(s, "bandit_ingest_archive_files_total") >= 1
                and _value(s, "bandit_ingest_archive_indexes_total") >= 1
                and _value(s, "bandit_ingest_learner_lag_events", experiment="obs") == 0)

    wait_for(settled, 20.0, interval=0.1, message=lambda: httpx.get(f"{ingest}/metrics").text)
    s = _samples(ingest)
    assert _value(s, "bandit_ingest_rewards_total", outcome="accepted") == 3
    assert _value(s, "bandit_ingest_rewards_total", outcome="duplicate") == 1
    assert _value(s, "bandit_ingest_rewards_total", outcome="rejected") == 1
    # 7 decisions (6 asked for, 1 invocation): 2 joined with their reward, 5 with the
    # default (one of them: its reward was 50, outside [0, 1], dropped as out of range).
    assert _value(s, "bandit_ingest_rewards_defaulted_total", experiment="obs") == 5
    assert _value(s, "bandit_ingest_rewards_dropped_total", experiment="obs",
                  reason="out_of_range") == 1
    assert _value(s, "bandit_ingest_join_lag_seconds_count", experiment="obs") >= 7
    # The defaulted ones waited out the 2 s window (long enough for a busy machine to
    # post the three rewards inside it).
    assert _value(s, "bandit_ingest_join_lag_seconds_bucket", experiment="obs", le="0.1") <= 2
    assert 0 <= _value(s, "bandit_ingest_snapshot_age_seconds", experiment="obs") < 60
    assert _value(s, "bandit_ingest_archive_events_total") >= 7
    assert _value(s, "bandit_ingest_archive_bytes_total") > 0
    assert _value(s, "bandit_ingest_archive_index_errors_total") == 0
    assert _value(s, "bandit_build_info", version="0.1.0", python=__import__(
        "platform").python_version()) == 1
    assert ("bandit_redis_errors_total", frozenset({("component", "joiner")})) in s


def test_the_router_shows_guardrail_state_as_labels(scrapes: dict[str, str]) -> None:
    s = _samples(scrapes["router"])
    for variant in ("Variant1", "Variant2", "Variant3"):
        states = {state: _value(s, "bandit_variant_state", experiment="obs", variant=variant,
                                state=state) for state in ("active", "suspended", "probing")}
        assert states == {"active": 1, "suspended": 0, "probing": 0}
    assert _value(s, "bandit_router_decisions_total", experiment="obs", variant="Variant1",
                  targeted="false") + _value(
        s, "bandit_router_decisions_total", experiment="obs", variant="Variant2",
        targeted="false") + _value(s, "bandit_router_decisions_total", experiment="obs",
                                   variant="Variant3", targeted="false") == 7


def _exposed(scrapes: dict[str, str]) -> set[str]:
    return {name for url in scrapes.values()
            for name in exposed_families(httpx.get(f"{url}/metrics").text)}


def _dashboard_expressions() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    found = [(panel["title"], target["expr"]) for panel in board["panels"]
             for target in panel.get("targets", []) if target.get("expr")]
    # A variable's label_values(metric, label): the label is not a metric.
    found += [(f"variable {v['name']}", re.sub(r"label_values\(([^,]+),\s*\w+\)", r"\1",
                                                 v["query"]["query"]))
              for v in board["templating"]["list"] if v.get("type") == "query"]
    return found


def _alert_expressions() -> list[tuple[str, str]]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [(rule["alert"], rule["expr"]) for group in rules["groups"]
            for rule in group["rules"]]


def test_dashboard_and_alerts_name_only_exposed_metrics(scrapes: dict[str, str]) -> None:
    exposed = _exposed(scrapes)
    expressions = _dashboard_expressions() + _alert_expressions()
    assert len(expressions) > 10
    missing = {(where, name) for where, expr in expressions for name in metric_names(expr)
               if family_of(name, exposed) not in exposed}
    assert not missing


def test_the_dashboard_loads_with_its_variables_and_datasources() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["experiment"]["type"] == "query"
    titles = []
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel.get("title"), panel
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        titles.append(panel["title"])
    assert len(titles) == len(set(titles)) >= 9


def test_the_alert_rules_have_the_rule_file_shape() -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    assert set(rules) == {"groups"}
    for group in rules["groups"]:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert rule["alert"] and rule["expr"] and rule["for"].endswith(("s", "m", "h"))
            assert rule["labels"]["severity"] in ("warning", "critical")
            assert {"summary", "description"} <= set(rule["annotations"])
    names = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    assert {"BanditLearnerStuck", "BanditRouterSpooling", "BanditVariantSuspended",
            "BanditWeightPushesFailing"} <= names


@pytest.mark.parametrize(("expression", "names"), [
    ('sum by (variant) (rate(bandit_router_invocations_total{experiment=~"$experiment"}[5m]))',
     {"bandit_router_invocations_total"}),
    ("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))) > 0.5 and on (a) y offset 5m",
     {"x_bucket", "y"}),
    ('max_over_time(up{job="a b"}[1h:5m]) unless absent(z) or 1e3 * w', {"up", "z", "w"}),
])
def test_the_tokenizer_finds_metric_names(expression: str, names: set[str]) -> None:
    assert metric_names(expression) == names


def test_serve_on_memory_exposes_every_metric_the_dashboard_and_alerts_name(
        tmp_path: Path) -> None:
    # One process: the router, /v1/rewards and the learning loop (what `serve` runs on
    # memory://). The same names as the two processes on Redis, after the same traffic.
    from cli.embedded import embedded_app

    settings = _settings("memory://", tmp_path)
    simulator = create_simulator(parse_variants(SIM_VARIANTS, endpoint=SIM_ENDPOINT, seed=1))
    with ExitStack() as stack, pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL_SAGEMAKER", f"http://127.0.0.1:{free_port()}")
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_REGION", "us-east-1")
        sim_url = stack.enter_context(run_asgi(simulator))
        url = stack.enter_context(run_asgi(embedded_app(
            settings, environ={"BANDIT_ROUTER_WEBHOOK_SECRET": SECRET},
            backend_factory=backend_factory(sim_url))))
        events = [httpx.post(f"{url}/v1/experiments/obs/decisions", json={}).json()["event_id"]
                  for _ in range(3)]
        assert _post(url, [{"event_id": events[0], "reward": 1}]).status_code == 202
        wait_for(lambda: _value(_samples(url), "bandit_ingest_rewards_joined_total",
                                experiment="obs") >= 1)
        exposed = _exposed({"serve": url})
    missing = {(where, name) for where, expr in _dashboard_expressions() + _alert_expressions()
               for name in metric_names(expr) if family_of(name, exposed) not in exposed}
    assert not missing
