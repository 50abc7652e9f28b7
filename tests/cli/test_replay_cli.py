"""``bandit-router replay`` from the outside: the console script on archives written here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bandit.dsjson import to_dsjson

SCRIPT = Path(sys.executable).with_name("bandit-router")
ENV = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1"}
ARMS = ("A", "B", "C")
MEANS = np.array([0.3, 0.5, 0.7])
T0 = 1_790_000_000.0


def bandit_router(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), "replay", *map(str, args)],  # noqa: S603
                          capture_output=True, text=True, env=ENV, timeout=120, check=False)


def write_archive(directory: Path, n: int = 6000, *, seed: int = 0, lie: bool = False,
                  experiment: str = "exp") -> Path:
    """An adaptive logger over A, B, C with Bernoulli rewards of MEANS, in two files.

    The logger's split moves from uniform towards C over time (a new version every
    500 events). ``lie``: it logs probabilities that are not the ones it sampled with
    (C's is logged 1.5× too small), which the calibration check must catch.
    """
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    for i in range(n):
        version = i // 500
        tilt = min(version / 8, 0.8)
        p = np.array([(1 - tilt) / 3, (1 - tilt) / 3, (1 - tilt) / 3 + tilt])
        arm = int(rng.choice(3, p=p))
        logged = p.copy()
        if lie:
            logged[2] /= 1.5
            logged /= logged.sum()
        reward = float(rng.random() < MEANS[arm])
        lines.append(to_dsjson({
            "event_id": f"e{i}", "timestamp": T0 + i, "experiment": experiment,
            "policy_version": str(version), "variants": list(ARMS), "variant": ARMS[arm],
            "probability": float(logged[arm]),
            "probabilities": dict(zip(ARMS, map(float, logged), strict=True)),
            "reward": reward, "context": None}))
    half = n // 2
    (directory / f"{experiment}-20260901T000000-0001.json").write_text(
        "\n".join(lines[:half]) + "\n")
    (directory / f"{experiment}-20260901T010000-0002.json").write_text(
        "\n".join(lines[half:]) + "\n")
    return directory


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_archive(tmp_path_factory.mktemp("archive"))


@pytest.fixture(scope="module")
def json_run(archive: Path) -> dict[str, Any]:
    result = bandit_router(archive, "--policy", "ab=static", "--policy", "thompson",
                           "--policy", '{"type": "static", "weights": {"C": 1}}', "--json")
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_json_holds_every_candidate_and_estimator(json_run: dict[str, Any]) -> None:
    assert set(json_run["candidates"]) == {"ab", "thompson", "static"}
    for entry in json_run["candidates"].values():
        for estimator in ("IPS", "SNIPS", "DM", "DR"):
            assert set(entry[estimator]) == {"value", "lower", "upper", "std_error", "ess", "n"}
            assert entry[estimator]["n"] == 6000
            assert set(entry["vs_baseline"][estimator]) == set(entry[estimator])
    assert json_run["experiment"] == "exp"
    assert json_run["archive"]["files"] == 2
    assert json_run["archive"]["events"] == 6000


def test_estimates_find_the_truth(json_run: dict[str, Any]) -> None:
    # The equal split earns mean(MEANS) = 0.5, always-C earns 0.7. With 6,000 events
    # the intervals are about ±0.02 (IPS up to ±0.04 for always-C, whose weights reach 3).
    ab, always_c = json_run["candidates"]["ab"], json_run["candidates"]["static"]
    for estimator in ("IPS", "SNIPS", "DR"):
        assert ab[estimator]["lower"] - 0.01 < 0.5 < ab[estimator]["upper"] + 0.01
        assert always_c[estimator]["lower"] - 0.01 < 0.7 < always_c[estimator]["upper"] + 0.01
    # The logger tilted towards C, so it earned more than the split: the paired
    # difference excludes 0 below it and above it for always-C.
    assert ab["vs_baseline"]["DR"]["upper"] < 0 < always_c["vs_baseline"]["DR"]["lower"]
    baseline = json_run["baseline"]
    assert baseline["lower"] < baseline["value"] < baseline["upper"]
    assert json_run["audit"]["calibration"]["ok"] is True


def test_table_shows_audit_first_then_the_candidates(archive: Path, tmp_path: Path) -> None:
    report = tmp_path / "replay.html"
    result = bandit_router(archive, "--policy", "ab=static", "--policy", "thompson",
                           "--report", report)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.index("calibration") < out.index("thompson")
    for word in ("IPS", "SNIPS", "DM", "DR", "ab", "thompson"):
        assert word in out
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>") and "thompson" in page


def test_strict_fails_on_a_log_that_lies_about_its_probabilities(tmp_path: Path) -> None:
    lying = write_archive(tmp_path / "lying", lie=True)
    relaxed = bandit_router(lying, "--policy", "static", "--json")
    assert relaxed.returncode == 0, relaxed.stderr
    assert json.loads(relaxed.stdout)["audit"]["calibration"]["ok"] is False
    strict = bandit_router(lying, "--policy", "static", "--strict")
    assert strict.returncode == 1


def test_experiment_and_time_filters_are_counted(archive: Path) -> None:
    result = bandit_router(archive, "--policy", "static", "--json", "--experiment", "exp",
                           "--since", str(T0 + 1000), "--until", "2026-09-21T15:20:00Z")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    # T0 + 4000 is 2026-09-21T15:20:00Z: events 1000..3999 remain.
    assert document["archive"]["events"] == 3000
    assert document["audit"]["excluded"]["before_since"] == 1000
    assert document["audit"]["excluded"]["after_until"] == 2000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--policy", "static"), "no/such/dir"),
        (("--policy", "nope"), "nope"),
        (("--policy", '{"type": "thompson", "prior": {"alpha": -1}}'), "alpha"),
        (("--policy", "{not json"), "not valid JSON"),
        (("--policy", "@missing.yaml"), "missing.yaml"),
        (("--policy", "static", "--policy", "static"), "two candidates named 'static'"),
        (("--policy", "static", "--experiment", "other"), "other"),
        (("--policy", "static", "--since", "yesterday"), "--since"),
        (("--policy", "static", "--estimators", "ips,foo"), "foo"),
        (("--policy", "static", "--on-bad-line", "maybe"), "--on-bad-line"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(archive: Path, args: tuple[str, ...],
                                               message: str) -> None:
    target: Path | str = "no/such/dir" if message == "no/such/dir" else archive
    result = bandit_router(target, *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_bad_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    directory = write_archive(tmp_path / "bad", n=200)
    first = sorted(directory.iterdir())[0]
    lines = first.read_text().splitlines()
    lines[6] = '{"EventId": "broken"'
    first.write_text("\n".join(lines) + "\n")
    skipped = bandit_router(directory, "--policy", "static", "--json")
    assert skipped.returncode == 0, skipped.stderr
    bad = json.loads(skipped.stdout)["audit"]["bad_lines"]
    assert bad["count"] == 1
    assert bad["examples"][0]["line"] == 7 and bad["examples"][0]["path"].endswith(first.name)
    failed = bandit_router(directory, "--policy", "static", "--on-bad-line", "fail")
    assert failed.returncode == 2
    assert f"{first.name}:7" in failed.stderr
