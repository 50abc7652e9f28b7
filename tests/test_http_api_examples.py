"""The signing examples of docs/http-api.md, run as written against a real router.

A router on ``memory://`` (the embedded app, with its reward webhook) serves on a free
loopback port; the only substitution in the examples is that port for their ``8080``.
The Python example runs in the venv's interpreter, the curl + openssl one through
bash, both in their own process. Each must end with its reward accepted, and the
reward must then be learned: the decision's variant shows it in ``/stats``. With the
router holding another secret the same curl example is refused with 401, so the
signature is what is checked.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli.embedded import embedded_app
from common.config import Settings, parse_settings
from tests._servers import run_asgi
from tests._wait import wait_for

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "http-api.md"
BASH = shutil.which("bash") or "/bin/bash"
TOKEN = secrets.token_hex(16)
_EXAMPLE = re.compile(r"<!-- example: (\w+) -->\n```\w+\n(.*?)^```$", re.M | re.S)

SETTINGS: Settings = parse_settings({"store": "memory://", "experiments": [{
    "name": "churn", "endpoint": "churn-ep", "backend": "http",
    "variants": [{"name": "Variant1", "url": "http://127.0.0.1:9/v1"},
                 {"name": "Variant2", "url": "http://127.0.0.1:9/v2"}],
    "policy": {"type": "thompson"}}]})


def examples() -> dict[str, str]:
    """The page's tagged examples by tag."""
    return dict(_EXAMPLE.findall(PAGE.read_text(encoding="utf-8")))


def router_with(secret: str) -> Iterator[str]:
    environ = {"BANDIT_ROUTER_WEBHOOK_SECRET": secret, "BANDIT_ROUTER_ADMIN_TOKEN": TOKEN}
    with run_asgi(embedded_app(SETTINGS, environ=environ)) as url:
        yield url


@pytest.fixture
def router() -> Iterator[str]:
    yield from router_with("change-me")


def on_port(example: str, url: str) -> str:
    assert "http://127.0.0.1:8080" in example
    return example.replace("http://127.0.0.1:8080", url)


def rewards_joined(url: str) -> int:
    stats = httpx.get(f"{url}/v1/experiments/churn/stats",
                      headers={"Authorization": f"Bearer {TOKEN}"}).json()
    return sum(variant["rewards_joined"] for variant in stats["variants"])


def test_the_page_has_both_examples() -> None:
    assert set(examples()) == {"python", "curl"}


def test_python_example(router: str) -> None:
    ran = subprocess.run(  # noqa: S603 - the page's own text
        [sys.executable, "-c", on_port(examples()["python"], router)],
        capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode == 0, ran.stderr
    decided, rewarded = ran.stdout.splitlines()
    assert decided.split()[:2] in (["200", "Variant1"], ["200", "Variant2"])
    assert rewarded == "(202, {'accepted': 1, 'duplicates': 0})"
    wait_for(lambda: rewards_joined(router) == 1, message="the reward was never learned")


def run_curl_example(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the page's own text
        [BASH, "-e", "-c", on_port(examples()["curl"], url)],
        capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("openssl") is None,
                    reason="needs curl and openssl")
def test_curl_openssl_example(router: str) -> None:
    ran = run_curl_example(router)
    assert ran.returncode == 0, ran.stderr
    decision_line, reward_line = ran.stdout.splitlines()
    assert json.loads(decision_line)["event_id"] == "order-1234"
    assert json.loads(reward_line) == {"accepted": 1, "duplicates": 0}
    wait_for(lambda: rewards_joined(router) == 1, message="the reward was never learned")
    again = run_curl_example(router)  # a retry, signed anew: a duplicate, not a reward
    assert json.loads(again.stdout.splitlines()[1]) == {"accepted": 0, "duplicates": 1}


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("openssl") is None,
                    reason="needs curl and openssl")
def test_curl_example_is_refused_under_another_secret() -> None:
    for url in router_with("another-secret"):
        ran = run_curl_example(url)
        assert ran.returncode == 22, ran.stdout  # curl -f: the 401
        assert rewards_joined(url) == 0
