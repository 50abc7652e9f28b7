"""``bandit-router demo`` end to end: the installed console script, its output and its errors."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.offline_demo import BERNOULLI_MEANS

SCRIPT = Path(sys.executable).with_name("bandit-router")
# A fixed width: rich sizes its tables from COLUMNS when stdout is not a terminal.
ENV = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}


def bandit_router(*args: str) -> subprocess.CompletedProcess[str]:
    # The project's own console script with the test's fixed arguments.
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True,  # noqa: S603
                          env=ENV, timeout=120, check=False)


def summary(stdout: str) -> dict[tuple[str, str], tuple[float, float, float]]:
    """(problem, policy) → (best-arm share, mean reward, regret) from the summary table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) == 7 and cells[1] in ("bernoulli", "contextual"):
            share, reward, regret = cells[3:6]
            rows[cells[1], cells[2]] = (float(share.rstrip("%")) / 100, float(reward),
                                        float(regret.replace(",", "")))
    return rows


@pytest.fixture(scope="module")
def demo_run() -> subprocess.CompletedProcess[str]:
    return bandit_router("demo", "--offline", "--steps", "3000", "--seed", "0", "--no-live",
                         "--policies", "static,thompson,online_cover")


def test_demo_summary_shows_learning_beats_the_ab_split(
    demo_run: subprocess.CompletedProcess[str],
) -> None:
    assert demo_run.returncode == 0, demo_run.stderr
    rows = summary(demo_run.stdout)
    assert set(rows) == {(problem, policy) for problem in ("bernoulli", "contextual")
                         for policy in ("static", "thompson", "online_cover")}
    # The A/B split sends a quarter of the last 1,000 requests to the best variant:
    # binomial sd sqrt(0.25 · 0.75 / 1000) = 0.014, so ±0.055 is 4 sd.
    assert rows["bernoulli", "static"][0] == pytest.approx(0.25, abs=0.055)
    # Its expected regret is 3000 × (0.60 − mean of the rates) = 225, sd ≈ 2.7.
    gap = max(BERNOULLI_MEANS) - sum(BERNOULLI_MEANS) / len(BERNOULLI_MEANS)
    assert rows["bernoulli", "static"][2] == pytest.approx(3000 * gap, abs=12)
    # Thompson on the 0.05 gap: best-arm share 0.76–0.997 and regret 19–108 over
    # seeds 0–5 (seed 0: 0.967, 22).
    assert rows["bernoulli", "thompson"][0] > 0.7
    assert rows["bernoulli", "static"][2] > 2 * rows["bernoulli", "thompson"][2]
    # On the contextual problem no context-free policy can beat its best fixed arm
    # (0.575); online_cover earned 0.67–0.70 over seeds 0–5 (regret 406–466 against
    # static's ~1000).
    assert rows["contextual", "online_cover"][1] > 0.62
    assert rows["contextual", "thompson"][1] < 0.575 + 0.03
    assert rows["contextual", "online_cover"][2] < 0.6 * rows["contextual", "static"][2]


def test_demo_prints_progress_and_the_reference_rewards(
    demo_run: subprocess.CompletedProcess[str],
) -> None:
    out = demo_run.stdout
    for quarter in ("25%", "50%", "75%", "100%"):
        assert f"demo: {quarter:>4}" in out
    assert "best fixed arm Variant3: 0.600" in out
    oracle = out.split("per-context oracle: ")[1].split()[0]
    assert math.isclose(float(oracle), 0.8286, abs_tol=0.015)  # 3000 contexts: sd ≈ 0.003


def test_same_seed_same_summary() -> None:
    args = ("demo", "--offline", "--steps", "500", "--no-live", "--policies",
            "epsilon_greedy,ucb1")
    first, again, other = bandit_router(*args), bandit_router(*args), bandit_router(*args,
                                                                                    "--seed", "1")
    assert summary(first.stdout) == summary(again.stdout) != {}
    assert summary(first.stdout) != summary(other.stdout)


def test_live_view_runs_to_the_summary() -> None:
    result = bandit_router("demo", "--offline", "--steps", "300", "--live", "--problems",
                           "bernoulli", "--policies", "thompson", "--delay", "20",
                           "--batch", "5")
    assert result.returncode == 0, result.stderr
    assert "300/300 steps per lane" in result.stdout
    assert set(summary(result.stdout)) == {("bernoulli", "thompson")}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("demo", "--offline", "--steps", "0"), "'--steps'"),
        (("demo", "--offline", "--steps", "many"), "'--steps'"),
        (("demo", "--offline", "--policies", "thompson,nope"), "unknown nope"),
        (("demo", "--offline", "--problems", "chess"), "unknown chess"),
        (("demo", "--offline", "--batch", "0"), "'--batch'"),
        (("demo", "--steps", "500"), "'--steps': only applies with --offline"),
        (("demo", "--offline", "--requests", "400"),
         "'--requests': only applies without --offline"),
        (("demo", "--requests", "0"), "'--requests'"),
        (("demo", "--requests", "lots"), "'--requests'"),
        (("demo", "--duration", "1"), "'--duration'"),
        (("demo", "--concurrency", "0"), "'--concurrency'"),
        (("demo", "--rate", "-1"), "'--rate'"),
        (("demo", "--window", "1000000"), "'--window'"),
        (("demo", "--frobnicate"), "--frobnicate"),
        (("nosuch",), "No such command"),
    ],
)
def test_bad_options_fail_with_one_clear_line(args: tuple[str, ...], message: str) -> None:
    result = bandit_router(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bandit-router: error: ") and message in lines[0]


# The live demo: moto, the simulator and the router on loopback ports, for real.


def _flat(text: str) -> str:
    """``text`` with every run of whitespace as one space (rich wraps long lines)."""
    return " ".join(text.split())


def _live_summary(stdout: str) -> dict[str, tuple[float, float, float]]:
    """variant → (share of the first requests, of the last, endpoint weight)."""
    rows = {}
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) == 10 and cells[1].startswith("Variant"):
            first, last, weight = cells[4], cells[5], cells[8]
            rows[cells[1]] = (float(first.rstrip("%")) / 100, float(last.rstrip("%")) / 100,
                              float(weight.rstrip("%")) / 100)
    return rows


def _listening(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _processes_naming(port: int) -> list[str]:
    """Command lines of running processes that mention moto and ``port`` (read-only)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        words = [word.decode(errors="replace") for word in argv]
        if any("moto" in word for word in words) and str(port) in words:
            found.append(" ".join(words))
    return found


@pytest.fixture(scope="module")
def live_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo") / "archive"


@pytest.fixture(scope="module")
def live_run(live_archive: Path) -> subprocess.CompletedProcess[str]:
    return bandit_router("demo", "--requests", "400", "--no-live", "--archive", str(live_archive))


def test_live_demo_converges_and_pushes_weights_to_moto(
    live_run: subprocess.CompletedProcess[str],
) -> None:
    assert live_run.returncode == 0, live_run.stderr
    out = _flat(live_run.stdout)
    assert "SageMaker control plane: moto at http://127.0.0.1:" in out
    assert "(local, not AWS)" in out and "created through boto3 (InService)" in out
    assert "/dashboard#token=" in out  # the link opens the dashboard, not a token prompt
    for quarter in ("25%", "50%", "75%", "100%"):
        assert f"demo: {quarter:>4}" in live_run.stdout
    rows = _live_summary(live_run.stdout)
    assert set(rows) == {"Variant1", "Variant2", "Variant3"}
    # Variant2 (the forest, 0.90 accurate against 0.72 and 0.73) takes the traffic: it
    # had 80–86 % of the 400 requests in trial runs, against a third without learning.
    assert rows["Variant2"][1] > 0.5
    assert "stopped: 400 requests sent; 400 answered, 0 failed, 400 rewards posted" in out
    pushes = int(out.split("on moto (")[1].split("): ")[1].split(" push")[0])
    assert pushes >= 1
    # Read back from moto with DescribeEndpoint: at least one step of 0.25 toward Variant2.
    assert rows["Variant2"][2] >= 0.55
    assert rows["Variant1"][2] < 1 / 3 and rows["Variant3"][2] < 1 / 3
    assert "all servers stopped" in out


def test_live_demo_leaves_no_server_behind(live_run: subprocess.CompletedProcess[str]) -> None:
    out = _flat(live_run.stdout)
    moto_port = int(out.split("moto at http://127.0.0.1:")[1].split()[0])
    router_port = int(out.split("dashboard: http://127.0.0.1:")[1].split("/")[0])
    assert not _listening(moto_port) and not _listening(router_port)
    assert _processes_naming(moto_port) == []


def test_live_demo_ends_with_the_replay_of_its_archive(
    live_run: subprocess.CompletedProcess[str], live_archive: Path,
) -> None:
    assert live_run.returncode == 0, live_run.stderr
    out = _flat(live_run.stdout)
    names = sorted(path.name for path in live_archive.iterdir())
    data = [name for name in names if name.endswith(".json")]
    assert data and names == sorted(data + [f"{name}.index" for name in data])  # each indexed
    line = out.split("replay of this run's archive (")[1]
    assert line.startswith("400 decisions")
    gain = float(line.split("the bandit earned ")[1].split()[0])
    lower, upper = (float(v) for v in line.split("95% interval [")[1].split("]")[0].split(", "))
    assert lower < gain < upper
    # The truth: the bandit's own mean reward, less the equal split's (the mean of the
    # three models' accuracies on the pool, shown in the summary table). The bandit
    # leaves the split's two weaker variants within a few hundred requests, so the
    # split's estimate rests on the few dozen events each of them got, and those are
    # adaptively stopped (a variant is starved after bad luck): the interval's first-
    # order variance understates that, and one CI run missed by 4.1 of its standard
    # errors (gain 0.029, truth 0.076). So the yardstick adds each variant mean's own
    # binomial error at its count, from the known accuracies: the estimate must sit
    # within 4 combined standard errors of the truth. The estimators' coverage on
    # non-adaptive logs is tested in tests/bandit/test_ope_streaming.py.
    table = [cells for cells in ([cell.strip() for cell in text.split("│")]
                                 for text in live_run.stdout.splitlines())
             if len(cells) == 10 and cells[1].startswith("Variant")]
    accuracies = [float(cells[3]) for cells in table]
    counts = [int(cells[6].replace(",", "")) for cells in table]
    own = float(out.split("mean reward ")[1].split(";")[0])
    truth = own - sum(accuracies) / len(accuracies)
    std_error = (upper - lower) / (2 * 1.96)
    split_error = math.sqrt(sum(a * (1 - a) / max(n, 1) for a, n in zip(
        accuracies, counts, strict=True))) / len(accuracies)
    tolerance = 4 * math.hypot(std_error, split_error)
    assert len(accuracies) == 3 and sum(counts) == 400, (accuracies, counts)
    # Exactly, up to the printed digits: DM values the equal split at the mean of the
    # per-variant mean rewards the summary table shows (every event offers all three).
    rewards = [float(cells[7]) for cells in table]
    assert abs(gain - (own - sum(rewards) / len(rewards))) <= 0.002, (gain, own, rewards)
    assert abs(gain - truth) <= tolerance, (gain, truth, std_error, split_error)
    assert "bandit-router replay" in out


def test_keep_serving_holds_everything_up_until_ctrl_c(tmp_path: Path) -> None:
    import signal
    import time

    import httpx

    process = subprocess.Popen(  # noqa: S603 - the project's own console script
        [str(SCRIPT), "demo", "--requests", "100", "--no-live", "--keep-serving",
         "--archive", str(tmp_path / "archive")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**ENV, "PYTHONUNBUFFERED": "1"})
    try:
        assert process.stdout is not None
        seen: list[str] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if line.startswith("serving until Ctrl-C"):
                break
        assert seen and seen[-1].startswith("serving until Ctrl-C"), "".join(seen)
        dashboard = seen[-1].split("dashboard ")[1].strip()
        url, token = dashboard.split("/dashboard#token=")
        # The traffic is over, the servers are up: the page and the admin API answer.
        assert httpx.get(f"{url}/dashboard").status_code == 200
        listing = httpx.get(f"{url}/v1/experiments",
                            headers={"Authorization": f"Bearer {token}"})
        assert listing.status_code == 200, listing.text
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "all servers stopped" in _flat(out)
    router_port = int(url.rsplit(":", 1)[1])
    assert not _listening(router_port)
