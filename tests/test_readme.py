"""The README's five-minute path, run as written on a machine with no AWS configuration.

The fenced blocks of "The router in five minutes" run in order, in a fresh directory
holding only a ``.venv`` link to this checkout's: the shell ones through ``bash -e``
(as a user pastes them into one terminal: the first starts the simulator and the router
in the background and waits for both), the Python one through the venv's interpreter.
One substitution, and only because the ports must be free: every ``8080`` (the
router) and ``8090`` (the simulator) becomes a free loopback port. The environment is
stripped of every ``AWS_*`` variable and points boto3's config and credentials files
at /dev/null, so a region or key the snippets forget fails here as on a clean machine
(``NoRegionError``, ``NoCredentialsError``). The background servers run in the first
block's own session and are stopped through its process group.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._servers import free_port
from tests._wait import wait_for

ROOT = Path(__file__).resolve().parent.parent
BASH = shutil.which("bash") or "/bin/bash"
SECTION = "## The router in five minutes"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.M | re.S)


# Run after the README's client, in the same interpreter: the hook really sends the
# header (a context that is not a JSON object is refused, naming the header).
HEADER_SENT = """
bandit_context.set(["not", "an", "object"])
try:
    runtime.invoke_endpoint(EndpointName="bandit-sim", Body=b"{}")
except runtime.exceptions.ValidationError as error:
    print(error.response["Error"]["Message"])
"""


@dataclass(frozen=True)
class Block:
    """One fenced block: its language and its text."""

    language: str
    text: str


def five_minute_blocks(readme: str) -> list[Block]:
    """The fenced blocks of the five-minute section, in order."""
    section = readme.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return [Block(language, text) for language, text in _BLOCK.findall(section)]


def with_free_ports(text: str, router: int, simulator: int) -> str:
    return re.sub(r"\b8090\b", str(simulator), re.sub(r"\b8080\b", str(router), text))


def clean_environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AWS_", "BANDIT_ROUTER_"))}
    env |= {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true", "PYTHONUNBUFFERED": "1"}
    return env


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    yield tmp_path


def test_the_section_has_the_blocks_this_test_runs() -> None:
    blocks = five_minute_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert [block.language for block in blocks] == ["sh", "python", "sh"]
    assert "8080" in blocks[1].text and "8090" in blocks[0].text


def test_five_minute_path_runs_as_written(workdir: Path) -> None:
    blocks = five_minute_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    router, simulator = free_port(), free_port()
    start, client, check = (with_free_ports(b.text, router, simulator) for b in blocks)
    env = clean_environment()
    log = (workdir / "start.out").open("w")
    servers = subprocess.Popen(  # noqa: S603 - the README's own text
        [BASH, "-e", "-c", start], cwd=workdir, env=env, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            assert servers.wait(timeout=60) == 0, _logs(workdir)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the servers did not come up in 60 s\n{_logs(workdir)}")
        assert "OK" in (workdir / "start.out").read_text(), _logs(workdir)  # check-config

        ran = subprocess.run(  # noqa: S603 - the README's own text
            [sys.executable, "-c", client + HEADER_SENT], cwd=workdir, env=env,
            capture_output=True, text=True, timeout=60, check=False)
        assert ran.returncode == 0, ran.stderr + _logs(workdir)
        variant_line, event_line, reward_line, header_line = ran.stdout.splitlines()
        assert header_line.startswith("X-Bandit-Context"), header_line
        variant = variant_line.split()[0]
        assert variant in ("Variant1", "Variant2", "Variant3")
        assert "predictions" in variant_line
        event_id, probability = event_line.split()
        assert 0 < float(probability) <= 1
        assert reward_line == "202 b'{\"accepted\":1,\"duplicates\":0}'"

        def learned() -> bool:
            out = subprocess.run(  # noqa: S603 - the README's own text
                [BASH, "-e", "-c", check], cwd=workdir, env=env, capture_output=True,
                text=True, timeout=30, check=True).stdout
            stats_line, *metrics = out.splitlines()
            stats = {v["name"]: v for v in json.loads(stats_line)["variants"]}
            assert any(f'variant="{variant}"' in line for line in metrics)
            return bool(stats[variant]["rewards_joined"] == 1
                        and stats[variant]["mean_reward"] == 1.0)

        wait_for(learned, 20.0, message=lambda: _logs(workdir))
        assert len(event_id) == 32
    finally:
        os.killpg(servers.pid, signal.SIGTERM)
        log.close()


def _logs(workdir: Path) -> str:
    return "\n".join(f"--- {name}\n{(workdir / name).read_text(errors='replace')[-3000:]}"
                     for name in ("start.out", "router.log", "simulator.log")
                     if (workdir / name).exists())
