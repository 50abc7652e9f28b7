"""The container image, checked without a container engine (none runs here).

What a build would do is checked piece by piece: hadolint reads the Dockerfile, the
Dockerfile's instructions are parsed and held to what the docs promise (the CLI as
entry point, a non-root user, a HEALTHCHECK that is run here against a real router),
the .dockerignore is evaluated by Docker's rules, and the lock is installed into a
fresh venv with the same pip command the build runs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from cli.embedded import embedded_app
from cli.local_servers import free_port
from common.config import parse_settings
from tests._servers import run_asgi

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOCKERFILE = ROOT / "Dockerfile"
LOCKS = ("requirements.lock", "requirements-simulator.lock")


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: its keyword (upper case) and the rest of the line."""

    keyword: str
    value: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form ENTRYPOINT, CMD or HEALTHCHECK CMD."""
        text = self.value
        if self.keyword == "HEALTHCHECK":  # its options first, then CMD and the array
            text = re.sub(r"^(--\S+\s+)+", "", text).removeprefix("CMD").strip()
        parsed = json.loads(text)
        assert isinstance(parsed, list) and all(isinstance(arg, str) for arg in parsed)
        return parsed


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, value = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), value.strip()))
        pending = ""
    return instructions


def expand(value: str, args: dict[str, str]) -> str:
    """``${NAME}`` and ``$NAME`` replaced by the build arguments' defaults."""
    return re.sub(r"\$\{?(\w+)\}?", lambda match: args.get(match[1], match[0]), value)


INSTRUCTIONS = parse_dockerfile(DOCKERFILE.read_text())
ARGS = dict(instruction.value.split("=", 1) for instruction in INSTRUCTIONS
            if instruction.keyword == "ARG" and "=" in instruction.value)


def only(keyword: str) -> Instruction:
    found = [instruction for instruction in INSTRUCTIONS if instruction.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def runtime_stage() -> list[Instruction]:
    """The instructions of the last stage: the image that ships."""
    starts = [i for i, instruction in enumerate(INSTRUCTIONS) if instruction.keyword == "FROM"]
    return INSTRUCTIONS[starts[-1]:]


def run(argv: list[str], *, timeout: float = 120, **options: Any) -> (
        subprocess.CompletedProcess[str]):
    """Run a program of this venv or of the locked one, with arguments from this file."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,  # noqa: S603
                          check=False, **options)


def cli_help(*command: str) -> str:
    environ = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120", "TERM": "dumb"}
    done = run([str(BIN / "bandit-router"), *command, "--help"], env=environ)
    assert done.returncode == 0, done.stderr
    return done.stdout


# --- hadolint -------------------------------------------------------------------------


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    # The threshold "style" fails on every finding, the mildest included.
    return run([str(BIN / "hadolint"), "--no-color", "--failure-threshold", "style", str(path)])


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    done = hadolint(DOCKERFILE)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr


def test_every_hadolint_ignore_says_why() -> None:
    for number, line in enumerate(DOCKERFILE.read_text().splitlines(), 1):
        if "hadolint ignore" in line:
            reason = line.split("hadolint ignore", 1)[1].partition(" ")[2]
            assert len(reason.strip()) > 10, f"line {number}: an ignore without a reason"


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nCMD python app.py\n")
    done = hadolint(bad)
    assert done.returncode != 0
    assert {"DL3007", "DL3013", "DL3025"} <= set(re.findall(r"DL\d{4}", done.stdout))


# --- the base image, the install, the entry command -----------------------------------


def test_every_stage_starts_from_an_exact_tag_and_a_digest() -> None:
    stages = [expand(instruction.value.split()[0], ARGS)
              for instruction in INSTRUCTIONS if instruction.keyword == "FROM"]
    assert len(stages) >= 2, "a build stage and a runtime stage"
    for image in stages:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image), image


def test_dependencies_come_from_the_locks_with_hashes_and_the_project_without() -> None:
    runs = " ".join(instruction.value for instruction in INSTRUCTIONS
                    if instruction.keyword == "RUN")
    assert re.search(r"pip install --require-hashes .*-r \"\$lock\"", runs)
    for lock in LOCKS:
        assert f"lock={lock}" in runs.replace(" ", "")
    assert re.search(r"pip install --no-deps /wheels/\*\.whl", runs)
    assert "WITH_SIMULATOR" in ARGS and ARGS["WITH_SIMULATOR"] == "0"


def test_the_entry_point_is_the_cli_and_the_command_one_of_its_subcommands() -> None:
    assert only("ENTRYPOINT").exec_form() == ["bandit-router"]
    command = only("CMD").exec_form()
    listed = re.findall(r"^│ ([a-z][a-z-]+)\s{2,}", cli_help(), re.MULTILINE)
    assert {"serve", "ingest"} <= set(listed), listed
    assert command[0] in listed
    options = set(re.findall(r"(--[a-z][a-z-]+)", cli_help(command[0])))
    given = [arg for arg in command[1:] if arg.startswith("--")]
    assert given and set(given) <= options, (given, options)
    # Reachable from outside the container, not only from its own loopback.
    assert command[command.index("--host") + 1] == "0.0.0.0"  # noqa: S104


def test_the_runtime_user_is_not_root() -> None:
    stage = runtime_stage()
    users = [instruction.value for instruction in stage if instruction.keyword == "USER"]
    assert users, "the runtime stage sets no USER: it would run as root"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0, "a numeric non-zero uid (runAsNonRoot)"
    assert not group or (group.isdigit() and int(group) != 0)
    created = " ".join(instruction.value for instruction in stage
                       if instruction.keyword == "RUN")
    assert f"--uid {user}" in created, "the user exists in the image"
    # The default spool path is relative: the working directory must be the user's.
    workdir = [instruction.value for instruction in stage if instruction.keyword == "WORKDIR"]
    assert workdir and re.search(
        rf"install --directory --owner {user} \S.* {re.escape(workdir[-1])}\b", created)


# --- the HEALTHCHECK, run against a real router ---------------------------------------


def healthcheck_command() -> list[str]:
    command = only("HEALTHCHECK").exec_form()
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


def run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    return run(healthcheck_command(), env={**os.environ, "HEALTHCHECK_PORT": str(port)})


def test_the_healthcheck_asks_healthz_on_the_configured_port() -> None:
    assert "/healthz" in " ".join(healthcheck_command())
    env = [instruction.value for instruction in runtime_stage() if instruction.keyword == "ENV"]
    assert any("HEALTHCHECK_PORT=8080" in value.split() for value in env)


def test_the_healthcheck_passes_on_a_running_router_and_fails_without_one() -> None:
    # The http backend needs no AWS account; /healthz asks no variant anyway.
    settings = parse_settings({
        "store": "memory://",
        "experiments": [{"name": "shop", "endpoint": "shop-endpoint", "backend": "http",
                         "variants": [{"name": "A", "url": "http://127.0.0.1:9/"},
                                      {"name": "B", "url": "http://127.0.0.1:9/"}],
                         "policy": {"type": "thompson"}}]})
    with run_asgi(embedded_app(settings, environ={})) as url:
        port = int(url.rsplit(":", 1)[1])
        assert run_healthcheck(port).returncode == 0
    assert run_healthcheck(free_port()).returncode != 0


# --- .dockerignore ----------------------------------------------------------------------


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or a parent of it decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.removeprefix("!").strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]").replace(r"\[", "[").replace(r"\]", "]")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("path", [
    ".venv/bin/python", "tests/test_container.py", ".git/HEAD", "demo-archive/x/a.json",
    "bench/decide.py", "bandit/__pycache__/x.cpython-311.pyc", ".mypy_cache/x",
    "bandit_router.egg-info/PKG-INFO", "config.yaml"])
def test_dockerignore_keeps_out(path: str) -> None:
    assert dockerignore_excludes(path, dockerignore())


def test_dockerignore_keeps_every_copied_source() -> None:
    sources = []
    for instruction in INSTRUCTIONS:
        if instruction.keyword == "COPY" and "--from" not in instruction.value:
            sources += shlex.split(instruction.value)[:-1]
    assert "requirements.lock" in sources and "router" in sources
    for source in sources:
        inside = f"{source}/__init__.py" if (ROOT / source).is_dir() else source
        assert not dockerignore_excludes(inside, dockerignore()), source


def test_the_matcher_follows_docker_order() -> None:
    assert dockerignore_excludes("a/b.py", ["*"])
    assert not dockerignore_excludes("a/b.py", ["*", "!a/"])
    assert dockerignore_excludes("a/__pycache__/b.pyc", ["*", "!a/", "**/__pycache__"])
    assert not dockerignore_excludes("a.txt", ["b*"])


# --- the locks ----------------------------------------------------------------------------


def pins(lock: str) -> dict[tuple[str, str], str]:
    """``(name, marker) -> version`` of every pinned line, each checked to carry a hash."""
    found: dict[tuple[str, str], str] = {}
    text = (ROOT / lock).read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        assert "--hash=sha256:" in line, f"{lock}: no hash in {line[:60]}"
        requirement = Requirement(line.split(" --hash")[0].strip())
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", line[:60]
        found[(requirement.name.lower(), str(requirement.marker or ""))] = specifier.version
    return found


def project_dependencies(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(text) for text in listed]


def test_the_service_lock_pins_every_dependency_within_pyproject() -> None:
    locked = pins("requirements.lock")
    for requirement in project_dependencies():
        versions = [v for (name, _), v in locked.items() if name == requirement.name.lower()]
        assert versions, f"{requirement.name} is not in requirements.lock: run make lock"
        for version in versions:
            assert requirement.specifier.contains(version), (requirement, version)
    names = {name for name, _ in locked}
    assert "scikit-learn" not in names and "httpx" not in names


def test_the_simulator_lock_adds_the_extra_and_changes_no_shared_pin() -> None:
    service, simulator = pins("requirements.lock"), pins("requirements-simulator.lock")
    assert {key: simulator[key] for key in service} == service
    for requirement in project_dependencies("simulator"):
        versions = [v for (name, _), v in simulator.items() if name == requirement.name.lower()]
        assert versions and all(requirement.specifier.contains(v) for v in versions)


@pytest.fixture(scope="module")
def locked_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with requirements.lock and the project, installed as the image does."""
    venv = tmp_path_factory.mktemp("locked") / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)])
    assert made.returncode == 0, made.stderr
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
           "--disable-pip-version-check"]
    locked = run([*pip, "--require-hashes", "--only-binary=:all:",
                  "-r", str(ROOT / "requirements.lock")], timeout=600)
    assert locked.returncode == 0, locked.stderr
    # The image builds the wheel with the base image's setuptools; here pip builds it in
    # isolation, and both install it the same way: without dependencies.
    project = run([*pip, "--no-deps", str(ROOT)], timeout=300,
                  cwd=tmp_path_factory.mktemp("build"))
    assert project.returncode == 0, project.stderr
    yield venv


@pytest.mark.slow
def test_the_lock_installs_and_runs_the_service(locked_venv: Path) -> None:
    python = str(locked_venv / "bin" / "python")
    probe = ("import sys, router, reward_ingest, cli.main, cli.serve, cli.ingest, cli.replay, "
             "bandit.ope, common.check_config; "
             "print(sorted(m for m in ('sklearn', 'scipy', 'httpx') if m in sys.modules))")
    done = run([python, "-c", probe], cwd=locked_venv)  # not the checkout's own sources
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    helped = run([str(locked_venv / "bin" / "bandit-router"), "--help"])
    assert helped.returncode == 0 and "serve" in helped.stdout, helped.stderr
    missing = run([str(locked_venv / "bin" / "bandit-router"), "simulate"])
    assert missing.returncode == 2
    assert missing.stderr.strip().endswith("install bandit-router[simulator]"), missing.stderr
    assert "Traceback" not in missing.stderr
