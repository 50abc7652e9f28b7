"""scikit-learn and httpx are the ``simulator`` extra: the service never loads them, and
the commands that need them say which extra to install when they are missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

EXTRA = ("sklearn", "httpx")


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True,  # noqa: S603
                          text=True, timeout=120, check=False)


@pytest.mark.parametrize("module", ["router", "reward_ingest", "cli.main", "cli.serve",
                                    "cli.ingest"])
def test_the_service_imports_none_of_the_extra(module: str) -> None:
    done = python(f"import sys, {module}; "
                  f"print(sorted(m for m in {EXTRA!r} if m in sys.modules))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"{module} imports {done.stdout.strip()}"


def without(hidden: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """``bandit-router argv`` in a process where importing ``hidden`` fails."""
    # None in sys.modules makes `import hidden` raise ImportError, as if not installed.
    return python(f"import sys; sys.modules[{hidden!r}] = None; "
                  f"sys.argv = ['bandit-router', *{list(argv)!r}]; "
                  "from cli.main import main; main()")


@pytest.mark.parametrize("hidden", EXTRA)
@pytest.mark.parametrize("argv", [("simulate", "--port", "1"),
                                  ("demo", "--requests", "50", "--no-live")])
def test_a_missing_extra_is_one_line_naming_it(hidden: str, argv: tuple[str, ...]) -> None:
    done = without(hidden, *argv)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (f"bandit-router: error: this command needs {hidden}: "
                           "install bandit-router[simulator]\n")
    assert done.stdout == ""


def test_the_offline_demo_needs_no_extra() -> None:
    done = without("sklearn", "demo", "--offline", "--steps", "100", "--no-live",
                   "--problems", "bernoulli", "--policies", "thompson")
    assert done.returncode == 0, done.stderr
