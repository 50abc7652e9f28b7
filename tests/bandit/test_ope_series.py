"""The report's series: cumulative reward over time and probability histograms, streamed."""

from __future__ import annotations

import tracemalloc
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from bandit.ope import LogChunk
from bandit.ope._series import LogSeries

DAY = 86_400.0
START = 1_714_564_800.0  # 2024-05-01T12:00:00Z


def chunk(timestamp: Sequence[float] | np.ndarray, reward: Sequence[float] | np.ndarray,
          arms: tuple[str, ...] = ("A", "B"), logged: np.ndarray | None = None,
          offered: np.ndarray | None = None) -> LogChunk:
    """A chunk of len(timestamp) events; by default both arms offered at 0.5, A taken."""
    n = len(timestamp)
    k = len(arms)
    if logged is None:
        logged = np.full((n, k), 1.0 / k)
    if offered is None:
        offered = np.ones((n, k), dtype=bool)
    action = np.zeros(n, dtype=np.intp)
    return LogChunk(
        experiment="demo", arms=arms, action=action,
        propensity=logged[np.arange(n), action], logged=logged, offered=offered,
        reward=np.asarray(reward, dtype=np.float64),
        timestamp=np.asarray(timestamp, dtype=np.float64),
        default_reward=np.zeros(n, dtype=bool), version=np.zeros(n, dtype=np.intp),
        versions=("1",))


def random_log(n: int, span: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps over ``span`` seconds with bursts and gaps, in time order; 0/1 rewards."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0, n) * rng.choice([0.01, 1.0, 50.0], n, p=[0.5, 0.45, 0.05])
    timestamp = START + np.cumsum(gaps) / gaps.sum() * span
    reward = (rng.random(n) < 0.3 + 0.4 * (timestamp - START) / span).astype(float)
    return timestamp, reward


def series_of(chunks: Sequence[LogChunk], points: int = 200) -> dict[str, Any]:
    series = LogSeries(points=points)
    for part in chunks:
        series.add(part)
    return series.result()


@pytest.mark.parametrize("span", [0.5, 3_600.0, DAY, 400 * DAY])
def test_each_point_counts_exactly_the_events_up_to_its_timestamp(span: float) -> None:
    timestamp, reward = random_log(20_000, span, seed=1)
    parts = np.array_split(np.arange(timestamp.size), 9)
    cumulative = series_of([chunk(timestamp[p], reward[p]) for p in parts])["cumulative"]
    times = np.array(cumulative["timestamp"])
    # Between points/2 and points buckets span the log, whatever its length in time.
    assert 100 < times.size <= 200, times.size
    assert np.all(np.diff(times) > 0)
    assert times[0] >= timestamp[0] and times[-1] == timestamp[-1]
    for t, events, total in zip(times, cumulative["events"], cumulative["reward"], strict=True):
        upto = timestamp <= t
        assert events == int(upto.sum())
        assert total == pytest.approx(reward[upto].sum(), abs=1e-9)
    assert cumulative["events"][-1] == timestamp.size
    # The mean reward grows over the log (0.3 → 0.7); the curve must show it.
    mean = np.array(cumulative["reward"]) / np.array(cumulative["events"])
    assert mean[len(mean) // 10] < 0.4 and mean[-1] == pytest.approx(reward.mean())


def test_the_result_does_not_depend_on_chunking_or_chunk_order() -> None:
    timestamp, reward = random_log(30_000, 30 * DAY, seed=2)
    whole = series_of([chunk(timestamp, reward)])
    rng = np.random.default_rng(3)
    cuts = np.sort(rng.choice(np.arange(1, timestamp.size), 40, replace=False))
    parts = [chunk(timestamp[p], reward[p]) for p in np.split(np.arange(timestamp.size), cuts)]
    rng.shuffle(parts)  # archives read out of order, and earlier events after later ones
    shuffled = series_of(parts)
    one_by_one = series_of(list(reversed(parts)))
    for other in (shuffled, one_by_one):
        assert other["cumulative"]["timestamp"] == whole["cumulative"]["timestamp"]
        assert other["cumulative"]["events"] == whole["cumulative"]["events"]
        assert other["cumulative"]["reward"] == pytest.approx(
            whole["cumulative"]["reward"], abs=1e-7)


def test_memory_stays_flat_however_many_events() -> None:
    series = LogSeries()
    rng = np.random.default_rng(4)
    tracemalloc.start()
    try:
        held = []
        for i in range(60):  # 6 million events; the span keeps growing
            times = START + i * DAY + np.sort(rng.random(100_000)) * DAY
            part = chunk(times, rng.random(100_000) < 0.5)
            series.add(part)
            del part, times
            held.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    # What stays allocated between chunks is the series' own state: no growth with events.
    assert max(held[5:]) - min(held[5:]) < 20_000, held
    cumulative = series.result()["cumulative"]
    assert cumulative["events"][-1] == 6_000_000
    assert len(cumulative["timestamp"]) <= 200


def test_histograms_count_the_logged_probability_of_each_offered_variant() -> None:
    # 0.7 − 0.4 is 0.29999999999999993: still the 0.3 bin, as the policy meant.
    logged = np.array([[0.7, 0.7 - 0.4, 0.0],
                       [0.05, 0.95, 0.0],
                       [1.0, 0.0, 0.0],   # B offered at 0 (suspended), C not offered
                       [0.0, 0.5, 0.5],   # A not offered
                       [0.2, 0.3, 0.5]])
    offered = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0], [0, 1, 1], [1, 1, 1]], dtype=bool)
    first = chunk([START] * 5, [1, 0, 1, 0, 1], ("A", "B", "C"), logged, offered)
    # A later variant list: C removed, D added; histograms follow the names.
    second = chunk([START + 1] * 2, [0, 0], ("A", "D"), np.array([[0.7, 0.3], [0.15, 0.85]]))
    histograms = series_of([first, second])["histograms"]
    assert list(histograms) == ["A", "B", "C", "D"]
    edges = [i / 20 for i in range(21)]
    for variant in histograms.values():
        assert variant["edges"] == pytest.approx(edges, abs=1e-12)
        assert len(variant["counts"]) == 20
    expected = {"A": {14: 2, 1: 1, 19: 1, 4: 1, 3: 1},  # 0.7 twice, .05, 1.0, .2, .15
                "B": {6: 2, 19: 1, 0: 1, 10: 1},       # .3 twice, .95, 0 (offered), .5
                "C": {10: 2},
                "D": {6: 1, 17: 1}}
    for name, bins in expected.items():
        counts = [0] * 20
        for index, count in bins.items():
            counts[index] = count
        assert histograms[name]["counts"] == counts, name


def test_an_empty_series_and_bad_arguments() -> None:
    assert LogSeries().result() == {
        "cumulative": {"timestamp": [], "events": [], "reward": []}, "histograms": {}}
    series = LogSeries()
    series.add(chunk([], []))
    assert series.result()["cumulative"]["events"] == []
    with pytest.raises(ValueError, match="points"):
        LogSeries(points=1)
    with pytest.raises(ValueError, match="bins"):
        LogSeries(bins=0)


def test_events_at_one_instant_make_one_point() -> None:
    cumulative = series_of([chunk([START] * 3, [1, 0, 1]), chunk([START] * 2, [1, 1])])
    assert cumulative["cumulative"] == {
        "timestamp": [START], "events": [5], "reward": [4.0]}
