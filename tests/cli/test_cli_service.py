"""``serve``, ``simulate`` and ``check-config`` as a user runs them: the installed script."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import httpx
import pytest

from common.check_config import check_config
from tests._servers import free_port
from tests._wait import wait_for

SCRIPT = Path(sys.executable).with_name("bandit-router")
DUMMY_KEYS = ("testing", "testing")  # the simulator checks no credentials
ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_REGION": "us-east-1", "NO_COLOR": "1"}

GOOD = """\
store: memory://
experiments:
  - name: churn
    endpoint: bandit-sim
    variants: [{name: Variant1}, {name: Variant2}, {name: Variant3}]
    policy: {type: thompson}
"""
BAD = """\
store: memory://
experiments:
  - name: churn
    endpoint: bandit-sim
    variants: [{name: Variant1}]
    policy: {type: epsilon_greedy, epsilon: 2}
    guardrails: {error_rate: 0}
    colour: blue
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True,  # noqa: S603
                          env=ENV, timeout=60, check=False)


@contextmanager
def background(*args: str, port: int, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run the script until the block ends; yields its URL once it answers."""
    process = subprocess.Popen([str(SCRIPT), *args], env=env or ENV,  # noqa: S603
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    probe = f"{url}/healthz" if "serve" in args else f"{url}/ping"

    def answers() -> bool:
        if process.poll() is not None:
            _, err = process.communicate(timeout=5)
            raise AssertionError(f"{args[0]} exited before it answered: {err.decode()}")
        try:
            httpx.get(probe, timeout=0.5)
        except httpx.TransportError:
            return False
        return True

    try:
        wait_for(answers, 30.0, interval=0.1, message=f"{args[0]} did not answer on {url}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    result = run("check-config", str(path))
    assert result.returncode == 0 and result.stdout.strip() == "OK: 1 experiment"


def test_check_config_names_every_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = run("check-config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert "experiments[0].policy.epsilon: must be in [0, 1], got 2.0" in lines
    assert "experiments[0].colour: unknown key" in lines
    assert any(line.startswith("experiments[0].guardrails.error_rate:") for line in lines)
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_bad_config_in_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    result = run("serve", "--config", str(path), "--port", str(free_port()))
    assert result.returncode == 2
    assert "experiments[0].colour: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_simulate_and_serve_work_together_with_boto3(tmp_path: Path) -> None:
    sim_port, router_port = free_port(), free_port()
    config = tmp_path / "router.yaml"
    config.write_text(GOOD)
    env = {**ENV, "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": f"http://127.0.0.1:{sim_port}"}
    with background("simulate", "--port", str(sim_port), port=sim_port), \
            background("serve", "--config", str(config), "--port", str(router_port),
                       port=router_port, env=env) as router_url:
        key, secret = DUMMY_KEYS
        client = boto3.client("sagemaker-runtime", endpoint_url=router_url,
                              region_name="us-east-1", aws_access_key_id=key,
                              aws_secret_access_key=secret)
        answer = client.invoke_endpoint(EndpointName="bandit-sim",
                                        Body=json.dumps({"instances": [[0, 1, 0, 1, 0, 1]]}))
        assert answer["InvokedProductionVariant"] in ("Variant1", "Variant2", "Variant3")
        assert "x-bandit-event-id" in answer["ResponseMetadata"]["HTTPHeaders"]
        assert httpx.get(f"{router_url}/readyz").json()["status"] == "ready"


@pytest.mark.parametrize(("args", "message"), [
    (("simulate", "--variants", "A=bogus"), "unknown model 'bogus'"),
    (("serve", "--config", "/no/such/file.yaml"), "does not exist"),
])
def test_bad_options_end_in_one_line(args: tuple[str, ...], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("drop", "message"), [
    (("AWS_REGION", "AWS_DEFAULT_REGION"), "no AWS region"),
    (("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"),
     "no AWS credentials"),
])
def test_serve_without_aws_settings_says_what_is_missing(
        tmp_path: Path, drop: tuple[str, ...], message: str) -> None:
    config = tmp_path / "router.yaml"
    config.write_text(GOOD)
    env = {key: value for key, value in ENV.items() if key not in drop}
    env |= {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true"}
    result = subprocess.run([str(SCRIPT), "serve", "--config", str(config),  # noqa: S603
                             "--port", str(free_port())], capture_output=True, text=True,
                            env=env, timeout=60, check=False)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


MANY_PROBLEMS = """\
store: memory://
decision_log: {stream_maxlen: 9223372036854775808}
experiments:
  - name: churn
    endpoint: ep-a
    variants: [{name: Variant1}, {name: Variant2}, {name: Variant3}]
    policy: {type: epsilon_greedy, floor: 0.9, epsilon: 2.0, decay: -1, bogus: 1}
    weights_push: {enabled: true, min_weight: 0.5}
    colour: blue
  - name: churn
    endpoint: ep-b
    variants: [{name: Variant1}]
    policy: {type: thompson, prior: {alpha: 0, beta: 0}, samples: 1}
  - name: other
    endpoint: ep-b
    variants: [{name: Variant1}]
    policy: {type: static, weights: {Z: 1, Variant1: -1}}
"""


def test_check_config_names_every_problem_in_one_pass(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(MANY_PROBLEMS)
    result = run("check-config", str(path))
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    for expected in [
        "decision_log.stream_maxlen: must be <= 9223372036854775807, got 9223372036854775808",
        "experiments[0].colour: unknown key",
        "experiments[0].policy.floor: 0.9 × 3 arms exceeds 1",
        "experiments[0].policy.epsilon: must be in [0, 1], got 2.0",
        "experiments[0].policy.decay: must be in [0, inf), got -1.0",
        "experiments[0].weights_push.min_weight: 0.5 × 3 variants exceeds 1",
        "experiments[1].name: duplicate name 'churn' (also experiments[0])",
        "experiments[1].policy.prior.alpha: must be in (0, inf), got 0.0",
        "experiments[1].policy.prior.beta: must be in (0, inf), got 0.0",
        "experiments[1].policy.samples: must be in [100, 1000000], got 1",
        "experiments[2].endpoint: duplicate endpoint 'ep-b' (also experiments[1])",
        "experiments[2].policy.weights.Z: is not an arm (Variant1)",
        "experiments[2].policy.weights.Variant1: must be in [0, inf), got -1.0",
    ]:
        assert expected in lines, (expected, lines)
    assert any(line.startswith("experiments[0].policy.bogus: unknown key") for line in lines)
    assert "Traceback" not in result.stderr


SPOOL_UNDER_A_FILE = """\
store: redis://127.0.0.1:{port}/0
decision_log: {{spool_path: {spool}}}
experiments:
  - name: churn
    endpoint: bandit-sim
    backend: http
    variants: [{{name: A, url: "http://127.0.0.1:9/a"}}]
    policy: {{type: thompson}}
"""


def _unusable_spool(tmp_path: Path, where: str) -> Path:
    """A router config whose spool path cannot be used, for the reason ``where``."""
    spool = tmp_path / "taken"
    spool.mkdir()  # a directory in its place
    if where == "under a regular file":
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("a file")
        spool = blocker / "spool" / "decisions.jsonl"
    path = tmp_path / "router.yaml"
    path.write_text(SPOOL_UNDER_A_FILE.format(port=free_port(), spool=spool))
    return path


@pytest.mark.parametrize("where", ["under a regular file", "a directory in its place"])
def test_check_config_names_a_spool_path_that_cannot_be_used(tmp_path: Path,
                                                             where: str) -> None:
    path = _unusable_spool(tmp_path, where)
    out, err = io.StringIO(), io.StringIO()
    assert check_config(path, out=out, err=err) == 2
    [line] = err.getvalue().strip().splitlines()
    assert line.startswith("decision_log.spool_path: "), line


def test_serve_refuses_a_spool_path_that_cannot_be_used_in_one_line(tmp_path: Path) -> None:
    path = _unusable_spool(tmp_path, "under a regular file")
    served = run("serve", "--config", str(path), "--port", str(free_port()))
    assert served.returncode == 2, served.stderr
    [line] = served.stderr.strip().splitlines()
    assert line == (f"bandit-router: {path}: decision_log.spool_path: cannot create directory "
                    f"'{tmp_path}/not-a-directory/spool': '{tmp_path}/not-a-directory' is not "
                    "a directory"), line
