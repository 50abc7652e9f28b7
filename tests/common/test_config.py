"""The YAML configuration: good files parse, every bad key is named by its path."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pydantic
import pytest

from common.check_config import check_config
from common.config import (
    DEFAULT_CONFIG,
    ConfigError,
    ContextConfig,
    Secrets,
    Settings,
    load_settings,
    parse_settings,
)
from common.config_problems import dotted

FULL_EXAMPLE = """\
store: redis://localhost:6379/0        # or memory://
experiments:
  - name: churn
    endpoint: DEMO-xgb-churn-pred
    backend: sagemaker
    variants: [{name: Variant1}, {name: Variant2}]
    policy: {type: thompson}
    context: {from: header}
    reward: {min: 0, max: 1, default: 0, wait_seconds: 600, aggregate: first}
    guardrails: {error_rate: 0.2, p99_ms: 2000, window_s: 60, cooldown_s: 120}
    weights_push: {enabled: true, interval_s: 300, min_weight: 0.05, max_step: 0.25,
                   capacities: false}
archive: {path: s3://bucket/prefix, max_bytes: 1000000, max_seconds: 60}
"""


def experiment(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "churn",
        "endpoint": "churn-endpoint",
        "variants": [{"name": "Variant1"}, {"name": "Variant2"}],
        "policy": {"type": "thompson"},
    }
    base.update(overrides)
    return base


def problems(data: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(data)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def one_problem(**overrides: Any) -> str:
    found = problems({"experiments": [experiment(**overrides)]})
    assert len(found) == 1, found
    return found[0]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "router.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --- good configurations -------------------------------------------------------------------

def test_design_example_parses(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, FULL_EXAMPLE))
    assert settings.store == "redis://localhost:6379/0"
    (churn,) = settings.experiments
    assert churn.arms == ("Variant1", "Variant2")
    assert churn.guardrails is not None and churn.guardrails.p99_ms == 2000
    assert churn.guardrails.min_requests == 20  # default kept for keys not written
    assert churn.weights_push.enabled and churn.reward.aggregate == "first"
    assert settings.archive is not None and settings.archive.max_seconds == 60
    assert settings.decision_log.stream_maxlen == 1_000_000


def test_defaults_when_only_the_required_keys_are_written() -> None:
    settings = parse_settings({"experiments": [experiment()]})
    (churn,) = settings.experiments
    assert settings.store == "memory://" and settings.archive is None
    assert churn.backend == "sagemaker" and churn.seed == 0 and not churn.learn_from_targeted
    assert churn.context.source == "header" and churn.context.max_bytes == 8192
    assert (churn.context.max_depth, churn.context.max_keys) == (4, 256)
    assert (churn.reward.min, churn.reward.max, churn.reward.default) == (0, 1, 0)
    assert churn.reward.wait_seconds == 600
    assert churn.guardrails is not None and churn.guardrails.error_rate == 0.5
    assert churn.guardrails.probe_share == 0.05 and churn.guardrails.cooldown_s == 120
    assert not churn.weights_push.enabled and churn.weights_push.max_step == 0.25
    assert settings.decision_log.spool_path == "./bandit-spool.jsonl"
    assert settings.decision_log.spool_max_bytes == 64 << 20


def test_http_backend_json_and_csv_contexts_and_nullable_sections() -> None:
    settings = parse_settings({
        "store": "rediss://cache.internal:6380/2",
        "decision_log": {"spool_path": "/var/spool/x.jsonl", "stream_maxlen": 5000},
        "experiments": [
            experiment(backend="http", guardrails=None, reward={"default": None},
                       variants=[{"name": "A", "url": "http://127.0.0.1:9001/invocations",
                                  "initial_weight": 2},
                                 {"name": "B", "url": "https://b.example/x"}],
                       context={"from": "json", "pointers": [
                           "/features/age", {"pointer": "/a~1b/0", "name": "first"},
                           "/m~0n"]}),
            experiment(name="ranker", endpoint="ranker", learn_from_targeted=True, seed=7,
                       context={"from": "csv", "columns": [0, {"column": 3, "name": "plan"}]}),
        ],
    })
    http, csv_experiment = settings.experiments
    assert http.guardrails is None and http.reward.default is None
    assert http.variants[0].url == "http://127.0.0.1:9001/invocations"
    assert http.variants[0].initial_weight == 2.0
    assert [p.feature for p in http.context.pointers] == ["age", "first", "m~n"]
    assert [c.feature for c in csv_experiment.context.columns] == ["c0", "plan"]
    assert csv_experiment.seed == 7 and csv_experiment.learn_from_targeted


@pytest.mark.parametrize("spec", [
    {"type": "epsilon_greedy", "epsilon": 0.2, "decay": 0.5},
    {"type": "ucb1", "alpha": 2, "discount": 0.99, "floor": 0.01},
    {"type": "static", "weights": {"Variant1": 3, "Variant2": 1}},
    {"type": "thompson", "prior": {"alpha": 2, "beta": 3}, "change_detection": {"delta": 0.01}},
])
def test_every_policy_spec_is_built_over_the_variants(spec: dict[str, Any]) -> None:
    assert parse_settings({"experiments": [experiment(policy=spec)]}).experiments[0].policy == spec


def test_default_config_is_valid_and_round_trips() -> None:
    (demo,) = DEFAULT_CONFIG.experiments
    assert DEFAULT_CONFIG.store == "memory://"
    assert (demo.name, demo.endpoint, demo.backend) == ("demo", "demo-endpoint", "sagemaker")
    assert demo.arms == ("Variant1", "Variant2", "Variant3")
    assert demo.policy == {"type": "thompson"} and demo.context.source == "header"
    dumped = DEFAULT_CONFIG.model_dump(by_alias=True)
    assert parse_settings(dumped) == DEFAULT_CONFIG


def test_models_are_frozen() -> None:
    with pytest.raises(pydantic.ValidationError):
        DEFAULT_CONFIG.store = "redis://x:1/0"


# --- every bad key, by path ----------------------------------------------------------------

def test_several_bad_keys_are_all_reported_with_their_paths() -> None:
    found = problems({
        "store": "postgres://db",
        "surprise": 1,
        "experiments": [
            experiment(name="bad name", endpoint="under_score",
                       variants=[{"name": "Variant1"}, {"name": "Variant2", "weight": 1}],
                       policy={"type": "epsilon_greedy", "epsilon": 2.0},
                       reward={"wait_seconds": 0, "aggregate": "median"},
                       guardrails={"error_rate": 1.5, "min_requests": "20"}),
            experiment(name="ok", endpoint="ok-endpoint",
                       weights_push={"enabled": "yes", "max_step": 0}),
        ],
    })
    assert found == [
        "store: must be memory:// or redis://host:port/db, got 'postgres://db'",
        "experiments[0].name: must be 1-63 letters, digits, '_', '.' or '-', starting with "
        "a letter or digit, got 'bad name'",
        "experiments[0].endpoint: must be 1-63 letters, digits and hyphens, starting and "
        "ending with a letter or digit, got 'under_score'",
        "experiments[0].variants[1].weight: unknown key",
        "experiments[0].reward.wait_seconds: must be > 0, got 0",
        "experiments[0].reward.aggregate: must be one of 'first', 'sum', 'max' or 'mean', "
        "got 'median'",
        "experiments[0].guardrails.error_rate: must be <= 1, got 1.5",
        "experiments[0].guardrails.min_requests: must be an integer, got '20'",
        # the policy is still checked, against the variant names written
        "experiments[0].policy.epsilon: must be in [0, 1], got 2.0",
        "experiments[1].weights_push.enabled: must be true or false, got 'yes'",
        "experiments[1].weights_push.max_step: must be > 0, got 0",
        "surprise: unknown key",
    ]


def test_unknown_keys_at_every_level() -> None:
    found = problems({
        "experiments": [experiment(
            colour="blue",
            context={"from": "header", "max_byte": 10},
            reward={"minimum": 0},
            variants=[{"name": "Variant1", "URL": "http://x"}, {"name": "Variant2"}],
        )],
        "archive": {"path": "./archive", "gzip": True},
        "decision_log": {"spool": "x"},
    })
    assert found == [
        "experiments[0].variants[0].URL: unknown key",
        "experiments[0].context.max_byte: unknown key",
        "experiments[0].reward.minimum: unknown key",
        "experiments[0].colour: unknown key",
        "archive.gzip: unknown key",
        "decision_log.spool: unknown key",
    ]


@pytest.mark.parametrize(("policy", "line"), [
    ({"type": "thompson", "prior": {"alpha": -1}},
     "experiments[0].policy.prior.alpha: must be in (0, inf), got -1.0"),
    ({"type": "thompson", "bogus": 1},
     "experiments[0].policy.bogus: unknown key (known keys: discount, family, floor, prior, "
     "samples, type)"),
    ({"type": "static", "weights": {"Variant3": 1}},
     "experiments[0].policy.weights.Variant3: is not an arm (Variant1, Variant2)"),
    ({"epsilon": 0.1}, "experiments[0].policy.type: is required (one of "),
    ({"type": "sarsa"}, "experiments[0].policy.type: must be one of "),
    ({"type": "ucb1", "floor": 0.6}, "experiments[0].policy.floor: 0.6 × 2 arms exceeds 1"),
    ("thompson", "experiments[0].policy: must be a mapping, got 'thompson'"),
])
def test_policy_spec_errors_are_located_under_the_experiment(policy: Any, line: str) -> None:
    assert one_problem(policy=policy).startswith(line)


def test_policy_error_locations_are_real_pydantic_locations() -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        Settings.model_validate({"experiments": [
            experiment(), experiment(name="b", endpoint="b", policy={
                "type": "thompson", "change_detection": {"delta": 5}})]})
    (error,) = caught.value.errors()
    assert error["loc"] == ("experiments", 1, "policy", "change_detection", "delta")


def test_list_indexes_in_policy_paths() -> None:
    pytest.importorskip("vowpalwabbit")
    line = one_problem(policy={"type": "online_cover", "interactions": ["sa", "zz"]})
    assert line.startswith("experiments[0].policy.interactions[1]: must be 2 or 3 namespaces")


def test_duplicate_names_and_endpoints() -> None:
    found = problems({"experiments": [
        experiment(variants=[{"name": "A"}, {"name": "B"}, {"name": "A"}]),
        experiment(endpoint="other"),
        experiment(name="third"),
    ]})
    # The bad variant of the first experiment does not hide its siblings' duplicates.
    assert found == [
        "experiments[0].variants[2].name: duplicate variant 'A' (also variants[0])",
        "experiments[1].name: duplicate name 'churn' (also experiments[0])",
        "experiments[2].endpoint: duplicate endpoint 'churn-endpoint' (also experiments[0])",
    ]
    found = problems({"experiments": [
        experiment(), experiment(endpoint="other"), experiment(name="third")]})
    assert found == [
        "experiments[1].name: duplicate name 'churn' (also experiments[0])",
        "experiments[2].endpoint: duplicate endpoint 'churn-endpoint' (also experiments[0])",
    ]


def test_http_backend_needs_urls_and_sagemaker_refuses_them() -> None:
    found = problems({"experiments": [
        experiment(backend="http", variants=[{"name": "A", "url": "http://a:1/"}, {"name": "B"}]),
        experiment(name="sm", endpoint="sm", variants=[{"name": "A", "url": "http://a:1/"}]),
        experiment(name="ftp", endpoint="ftp", backend="http",
                   variants=[{"name": "A", "url": "ftp://a/"}]),
    ]})
    assert found == [
        "experiments[0].variants[1].url: is required when backend is http",
        "experiments[1].variants[0].url: only applies when backend is http "
        "(SageMaker routes by variant name)",
        "experiments[2].variants[0].url: must be an http:// or https:// URL with a host, "
        "got 'ftp://a/'",
    ]


def test_empty_and_missing_lists() -> None:
    assert problems({"experiments": []}) == ["experiments: must list at least one experiment"]
    assert problems({}) == ["experiments: is required"]
    assert one_problem(variants=[]) == "experiments[0].variants: must list at least one variant"
    assert problems([1]) == ["config: must be a mapping, got a list"]


@pytest.mark.parametrize("store", ["memory://", "redis://localhost:6379/0", "redis://h",
                                   "rediss://user:pw@h:1/15"])
def test_good_store_urls(store: str) -> None:
    assert parse_settings({"store": store, "experiments": [experiment()]}).store == store


@pytest.mark.parametrize("store", ["memory", "redis://", "redis://h:port/0", "redis://h:1/x",
                                   "http://h:1/0", "memory:///x"])
def test_bad_store_urls(store: str) -> None:
    (line,) = problems({"store": store, "experiments": [experiment()]})
    assert line.startswith("store: ")


@pytest.mark.parametrize(("name", "ok"), [
    ("Variant1", True), ("a-b--c", True), ("x" * 63, True), ("x" * 64, False),
    ("-a", False), ("a-", False), ("a_b", False), ("a.b", False), ("", False),
])
def test_sagemaker_variant_and_endpoint_names(name: str, ok: bool) -> None:
    data = {"experiments": [experiment(endpoint=name, variants=[{"name": name}])]}
    if ok:
        parse_settings(data)
    else:
        assert [line.split(":")[0] for line in problems(data)] == [
            "experiments[0].endpoint", "experiments[0].variants[0].name"]


def test_context_sections_must_match_their_source() -> None:
    assert one_problem(context={"from": "json"}) == (
        "experiments[0].context.pointers: must list at least one when from is json")
    assert one_problem(context={"from": "header", "columns": [1]}) == (
        "experiments[0].context.columns: only applies when from is csv")
    assert one_problem(context={"from": "csv", "columns": [1, {"column": 2, "name": "c1"}]}) == (
        "experiments[0].context.columns[1]: duplicate feature name 'c1' (also columns[0])")
    assert one_problem(context={"from": "json", "pointers": ["/a/x", "/b/x"]}) == (
        "experiments[0].context.pointers[1]: duplicate feature name 'x' (also pointers[0])")
    assert one_problem(context={"from": "xml"}).startswith(
        "experiments[0].context.from: must be one of 'header', 'json' or 'csv', got 'xml'")
    assert one_problem(context={"from": "csv", "columns": [-1]}) == (
        "experiments[0].context.columns[0].column: must be >= 0, got -1")


@pytest.mark.parametrize("pointer", ["features", "/a~2", "/a~", ""])
def test_bad_json_pointers(pointer: str) -> None:
    line = one_problem(context={"from": "json", "pointers": [pointer]})
    assert line.startswith("experiments[0].context.pointers[0].pointer: must be a JSON pointer")


def test_pointer_ending_in_an_empty_segment_needs_a_name() -> None:
    assert one_problem(context={"from": "json", "pointers": ["/a/"]}) == (
        "experiments[0].context.pointers[0]: pointer '/a/' ends in an empty segment: "
        "give it a name")
    config = ContextConfig.model_validate({"from": "json",
                                           "pointers": [{"pointer": "/a/", "name": "a"}]})
    assert config.pointers[0].feature == "a"


def test_reward_range_and_weights_push_bounds() -> None:
    assert one_problem(reward={"min": 1, "max": 1}) == (
        "experiments[0].reward.max: must be above min (1), got 1")
    assert one_problem(reward={"min": -1, "max": 1, "default": 2}) == (
        "experiments[0].reward.default: must be in [-1, 1] or null, got 2")
    assert one_problem(reward={"max": float("inf")}) == (
        "experiments[0].reward.max: must be finite, got inf")
    many = [{"name": f"V{i}"} for i in range(5)]
    assert one_problem(variants=many, weights_push={"enabled": True, "min_weight": 0.25}) == (
        "experiments[0].weights_push.min_weight: 0.25 × 5 variants exceeds 1")


def test_archive_paths() -> None:
    settings = parse_settings({"experiments": [experiment()], "archive": {"path": "./arch"}})
    assert settings.archive is not None and settings.archive.max_bytes == 64 << 20
    (line,) = problems({"experiments": [experiment()], "archive": {"path": "s3:///prefix"}})
    assert line == "archive.path: must name a bucket (s3://bucket/prefix), got 's3:///prefix'"
    (line,) = problems({"experiments": [experiment()], "archive": {}})
    assert line == "archive.path: is required"


def test_dotted_paths() -> None:
    assert dotted(()) == "config"
    assert dotted(("experiments", 0, "policy", "interactions", 2)) == (
        "experiments[0].policy.interactions[2]")


# --- files ---------------------------------------------------------------------------------

def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "store: memory://\nexperiments: [\n  - name: x\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    (line,) = caught.value.problems
    assert line.startswith(f"{path}: YAML error at line ")


def test_yaml_duplicate_keys_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "store: memory://\nstore: redis://h:1/0\nexperiments: []\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.problems == [
        f"{path}: YAML error at line 2, column 1: duplicate key 'store'"]


def test_yaml_merge_keys_still_work(tmp_path: Path) -> None:
    path = write(tmp_path, (
        "experiments:\n"
        "  - &common {name: a, endpoint: e, variants: [{name: A}], policy: {type: thompson}}\n"
        "  - <<: *common\n"
        "    name: b\n"
        "    endpoint: f\n"))  # overriding a merged key is not a duplicate
    first, second = load_settings(path).experiments
    assert (second.name, second.endpoint, second.arms) == ("b", "f", first.arms)


def test_missing_empty_and_directory_files(tmp_path: Path) -> None:
    for path, ending in [(tmp_path / "nope.yaml", ": no such file"),
                         (write(tmp_path, "# nothing\n"), ": is empty (expected a mapping "
                                                           "with experiments)"),
                         (tmp_path, ": is a directory, not a config file")]:
        with pytest.raises(ConfigError) as caught:
            load_settings(path)
        assert caught.value.problems == [f"{path}{ending}"]


# --- secrets and check-config --------------------------------------------------------------

def test_secrets_from_the_environment() -> None:
    token = "t0ken-for-tests"  # noqa: S105  (a test value, not a secret)
    secrets = Secrets.from_env({"BANDIT_ROUTER_WEBHOOK_SECRET": " new , old,",
                                "BANDIT_ROUTER_ADMIN_TOKEN": token})
    assert secrets.webhook_secrets == ("new", "old") and secrets.admin_token == token
    assert token not in repr(secrets) and "old" not in repr(secrets)
    empty = Secrets.from_env({"BANDIT_ROUTER_ADMIN_TOKEN": ""})
    assert empty.webhook_secrets == () and empty.admin_token is None


def test_check_config_ok_and_errors(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert check_config(write(tmp_path, FULL_EXAMPLE), out=out, err=err) == 0
    assert out.getvalue() == "OK: 1 experiment\n" and err.getvalue() == ""
    bad = FULL_EXAMPLE.replace("aggregate: first", "aggregate: last").replace(
        "{type: thompson}", "{type: thompson, samples: 0}")
    out, err = io.StringIO(), io.StringIO()
    assert check_config(write(tmp_path, bad), out=out, err=err) == 2
    assert out.getvalue() == ""
    assert err.getvalue().splitlines() == [
        "experiments[0].reward.aggregate: must be one of 'first', 'sum', 'max' or 'mean', "
        "got 'last'",
        "experiments[0].policy.samples: must be in [100, 1000000], got 0",
    ]


def test_check_config_default_streams(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check_config(write(tmp_path, FULL_EXAMPLE)) == 0
    assert check_config(tmp_path / "missing.yaml") == 2
    captured = capsys.readouterr()
    assert captured.out == "OK: 1 experiment\n"
    assert captured.err == f"{tmp_path / 'missing.yaml'}: no such file\n"


def auth_problems(auth: object) -> list[str]:
    return problems({"experiments": [experiment()], "auth": auth})


def test_auth_defaults_to_none_and_takes_sigv4_with_a_region() -> None:
    assert DEFAULT_CONFIG.auth.mode == "none"
    settings = parse_settings({"experiments": [experiment()], "auth": {
        "mode": "sigv4", "region": "eu-west-1", "keys_file": "/etc/bandit/keys.yaml",
        "clock_skew_seconds": 900}})
    assert (settings.auth.mode, settings.auth.region, settings.auth.keys_file,
            settings.auth.clock_skew_seconds) == ("sigv4", "eu-west-1",
                                                  "/etc/bandit/keys.yaml", 900)


def test_auth_keys_must_fit_the_mode() -> None:
    assert auth_problems({"mode": "sigv4"}) == ["auth.region: is required when mode is sigv4"]
    assert auth_problems({"region": "us-east-1", "keys_file": "k.json"}) == [
        "auth.region: only applies when mode is sigv4",
        "auth.keys_file: only applies when mode is sigv4"]
    assert auth_problems({"mode": "iam"})[0].startswith(
        "auth.mode: must be one of 'none' or 'sigv4'")
    assert auth_problems({"mode": "sigv4", "region": "US East"}) == [
        "auth.region: must be an AWS region such as us-east-1, got 'US East'"]
    assert auth_problems({"mode": "sigv4", "region": "us-east-1",
                          "clock_skew_seconds": 0}) == [
        "auth.clock_skew_seconds: must be >= 1, got 0"]
    assert auth_problems({"mode": "sigv4", "region": "us-east-1", "secret": "x"})[0].startswith(
        "auth.secret:")


def test_caller_keys_come_from_the_environment_and_stay_out_of_reprs() -> None:
    keys = '{"ops": {"access_key_id": "AKID1", "secret_access_key": "s3cr3t-value"}}'
    secrets = Secrets.from_env({"BANDIT_ROUTER_CALLER_KEYS": f" {keys} "})
    assert secrets.caller_keys == keys and "s3cr3t-value" not in repr(secrets)
    assert Secrets.from_env({"BANDIT_ROUTER_CALLER_KEYS": " "}).caller_keys is None


def test_check_config_names_a_keys_file_it_cannot_read(tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    text = FULL_EXAMPLE + f"auth: {{mode: sigv4, region: us-east-1, keys_file: '{keys}'}}\n"
    out, err = io.StringIO(), io.StringIO()
    assert check_config(write(tmp_path, text), out=out, err=err) == 2
    assert err.getvalue() == f"auth.keys_file: {str(keys)!r} is not a readable file\n"
    keys.write_text("{}")
    assert check_config(write(tmp_path, text), out=io.StringIO(), err=io.StringIO()) == 0
