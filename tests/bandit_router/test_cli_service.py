"""``serve``, ``simulate`` and ``check-config`` as a user runs them: the installed script."""

from __future__ import annotations

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
