"""The archive reader: exact round trips, sources (dirs, globs, gzip, S3), filters, bad lines,
errors; and the benchmark's archive generator read back through it."""

from __future__ import annotations

import asyncio
import gzip
import importlib.util
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import numpy as np
import pytest

from bandit.dsjson import from_dsjson, to_dsjson
from bandit.ope import ArchiveError, BadLine, LogChunk, read_archive
from reward_ingest.archive import Archiver
from tests.reward_ingest._moto import aws_env, moto_server

T0 = 1_714_564_800.0  # 2024-05-01T12:00:00Z
ROOT = Path(__file__).resolve().parents[2]


def event(i: int, **changes: Any) -> dict[str, Any]:
    """A joined event: three variants, Variant2 chosen with 0.5, reward i % 2."""
    base: dict[str, Any] = {
        "event_id": f"e{i}", "timestamp": T0 + i, "experiment": "churn",
        "policy_version": "1", "variants": ["V1", "V2", "V3"], "eligible": None,
        "context": {"x": i, "plan": "gold"}, "variant": "V2", "probability": 0.5,
        "probabilities": {"V1": 0.25, "V2": 0.5, "V3": 0.25}, "targeted": False,
        "reward": float(i % 2), "default_reward": False}
    base.update(changes)
    return base


def varied_events() -> list[dict[str, Any]]:
    """Subsets, a variant added mid-stream, targeted, default rewards, versions."""
    events = [event(0), event(1, variant="V1", probability=0.25),
              event(2, eligible=["V3", "V1"], variant="V3", probability=0.4,
                    probabilities={"V1": 0.6, "V3": 0.4}),
              event(3, targeted=True, variant="V3", probability=1.0,
                    probabilities={"V3": 1.0}),
              event(4, default_reward=True, reward=0.0, policy_version="2"),
              event(5, policy_version=7, variant="V3", probability=0.25)]
    four = ["V1", "V2", "V3", "V4"]
    events += [event(6, variants=four, variant="V4", probability=0.1,
                     probabilities={"V1": 0.3, "V2": 0.3, "V3": 0.3, "V4": 0.1},
                     policy_version="3"),
               event(7, variants=four, eligible=["V4", "V2"], variant="V2", probability=0.75,
                     probabilities={"V2": 0.75, "V4": 0.25}, policy_version="3",
                     reward=0.5)]
    return events


def write_lines(path: Path, events: Sequence[dict[str, Any]], *, compress: bool = False) -> Path:
    data = "".join(to_dsjson(e) + "\n" for e in events).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def expected_rows(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per kept (non-targeted) event, what its chunk row must hold, from the events alone."""
    rows = []
    for e in events:
        if e["targeted"]:
            continue
        arms = list(e["variants"])
        offered = set(e["eligible"] or arms)
        rows.append({
            "arms": tuple(arms), "action": arms.index(e["variant"]),
            "propensity": e["probability"],
            "logged": [float(e["probabilities"].get(a, 0.0)) if a in offered else 0.0
                       for a in arms],
            "offered": [a in offered for a in arms], "reward": e["reward"],
            "timestamp": e["timestamp"], "default_reward": e["default_reward"],
            "version": str(e["policy_version"])})
    return rows


def chunk_rows(chunks: Sequence[LogChunk]) -> list[dict[str, Any]]:
    rows = []
    for chunk in chunks:
        for i in range(len(chunk)):
            rows.append({
                "arms": chunk.arms, "action": int(chunk.action[i]),
                "propensity": float(chunk.propensity[i]), "logged": chunk.logged[i].tolist(),
                "offered": chunk.offered[i].tolist(), "reward": float(chunk.reward[i]),
                "timestamp": float(chunk.timestamp[i]),
                "default_reward": bool(chunk.default_reward[i]),
                "version": chunk.versions[int(chunk.version[i])]})
    return rows


def check_dtypes(chunk: LogChunk) -> None:
    n, k = len(chunk), len(chunk.arms)
    assert chunk.logged.shape == chunk.offered.shape == (n, k)
    assert chunk.action.dtype == np.intp and chunk.version.dtype == np.intp
    assert chunk.offered.dtype == chunk.default_reward.dtype == np.bool_
    for name in ("propensity", "reward", "timestamp", "logged"):
        assert getattr(chunk, name).dtype == np.float64


# -- round trips ------------------------------------------------------------------------


def test_round_trip_every_field(tmp_path: Path) -> None:
    events = varied_events()
    archive = read_archive(write_lines(tmp_path / "churn.json", events))
    chunks = list(archive)
    assert [c.arms for c in chunks] == [("V1", "V2", "V3"), ("V1", "V2", "V3", "V4")]
    for chunk in chunks:
        check_dtypes(chunk)
        assert chunk.experiment == "churn" and chunk.contexts is None and chunk.lines is None
    assert chunk_rows(chunks) == expected_rows(events)
    assert chunks[0].versions == ("1", "2", "7") and chunks[1].versions == ("3",)
    stats = archive.stats
    assert (stats.files, stats.lines, stats.events, stats.bad_lines) == (1, 8, 7, 0)
    assert stats.excluded == {"duplicate": 0, "targeted": 1, "other_experiment": 0,
                              "before_since": 0, "after_until": 0, "default_reward": 0}
    assert stats.default_rewards == 1 and stats.experiments == {"churn": 8}


def test_contexts_and_lines_come_back_as_from_dsjson_reads_them(tmp_path: Path) -> None:
    events = [event(i, context={"x": i / 3, "plan": "gold", "user": {"country": "fr"}})
              for i in range(5)]
    path = write_lines(tmp_path / "a.json", events)
    (chunk,) = read_archive(path, contexts=True, lines=True)
    lines = path.read_text().splitlines()
    assert chunk.lines == lines
    assert chunk.contexts == [from_dsjson(line)["context"] for line in lines]
    assert chunk.contexts[1] == {"x": 0.333333333, "plan": "gold", "user": {"country": "fr"}}


def test_other_layouts_read_the_same_through_json(tmp_path: Path) -> None:
    """Reordered keys, spaces and escapes leave the fast path; the arrays must not change."""
    events = varied_events()
    compact = write_lines(tmp_path / "fast" / "a.json", events)
    relaid = tmp_path / "slow" / "a.json"
    relaid.parent.mkdir()
    relaid.write_text("".join(json.dumps(json.loads(line), sort_keys=True, indent=None,
                                         ensure_ascii=True) + "\n"
                              for line in compact.read_text().splitlines()))
    assert chunk_rows(list(read_archive(relaid))) == chunk_rows(list(read_archive(compact)))
    # A variant name needing escapes, and a timestamp with an offset.
    odd = event(1, variants=['V"1', "V2", "V3"], variant='V"1', probability=0.25,
                probabilities={'V"1': 0.25, "V2": 0.5, "V3": 0.25})
    line = json.loads(to_dsjson(odd))
    line["Timestamp"] = "2024-05-01T14:00:01.000+02:00"
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(line) + "\n")
    (chunk,) = read_archive(path)
    assert chunk.arms == ('V"1', "V2", "V3") and chunk.action.tolist() == [0]
    assert chunk.timestamp.tolist() == [T0 + 1]


def test_archiver_files_read_back_in_order(tmp_path: Path) -> None:
    events = [event(i, variant=("V1", "V2", "V3")[i % 3], probability=0.5,
                    probabilities={("V1", "V2", "V3")[i % 3]: 0.5,
                                   ("V1", "V2", "V3")[(i + 1) % 3]: 0.5})
              for i in range(60)]
    archiver = Archiver(str(tmp_path), max_bytes=4000, max_seconds=1e9)

    async def write() -> None:
        for start in range(0, 60, 7):
            await archiver.add(events[start:start + 7])
        await archiver.close()

    asyncio.run(write())
    archive = read_archive(tmp_path)
    assert len(archive.files) == archiver.stats.files > 3
    assert list(archive.files) == sorted(archive.files)
    assert archive.total_bytes == archiver.stats.bytes
    assert chunk_rows(list(archive)) == expected_rows(events)


def test_chunks_hold_chunk_size_events_at_most(tmp_path: Path) -> None:
    events = [event(i) for i in range(10)]
    chunks = list(read_archive(write_lines(tmp_path / "a.json", events), chunk_size=4))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert chunk_rows(chunks) == expected_rows(events)


def test_several_passes_read_again_and_progress_sums_to_the_bytes(tmp_path: Path) -> None:
    write_lines(tmp_path / "a.json", [event(i) for i in range(5)])
    write_lines(tmp_path / "b.json.gz", [event(i) for i in range(5, 9)], compress=True)
    read: list[int] = []
    archive = read_archive(tmp_path, progress=read.append)
    first = chunk_rows(list(archive))
    assert chunk_rows(list(archive)) == first and len(first) == 9
    assert sum(read) == 2 * archive.total_bytes and archive.stats.events == 9


# -- sources ----------------------------------------------------------------------------


def test_directories_globs_and_gzip_in_name_order(tmp_path: Path) -> None:
    write_lines(tmp_path / "x" / "churn-20240501T120002-000003.json", [event(2)])
    write_lines(tmp_path / "x" / "deep" / "churn-20240501T120000-000001.jsonl.gz",
                [event(0)], compress=True)
    # gzip recognised by its magic bytes, whatever the name.
    magic = write_lines(tmp_path / "x" / "churn-20240501T120001-000002.jsonl", [event(1)],
                        compress=True)
    write_lines(tmp_path / "x" / ".churn-20240501T120003-000004.json.1.tmp", [event(3)])
    write_lines(tmp_path / "x" / ".hidden" / "churn-20240501T120004-000005.json", [event(4)])
    write_lines(tmp_path / "x" / "notes.txt", [event(5)])
    archive = read_archive(tmp_path / "x")
    assert [Path(f).name for f in archive.files] == [
        "churn-20240501T120000-000001.jsonl.gz", "churn-20240501T120001-000002.jsonl",
        "churn-20240501T120002-000003.json"]
    assert [r["timestamp"] for r in chunk_rows(list(archive))] == [T0, T0 + 1, T0 + 2]
    assert str(magic) in archive.files
    globbed = read_archive([str(tmp_path / "x" / "*.json*"), str(tmp_path / "x" / "notes.txt")])
    assert [Path(f).name for f in globbed.files] == [
        "churn-20240501T120001-000002.jsonl", "churn-20240501T120002-000003.json",
        "notes.txt"]
    assert len(chunk_rows(list(globbed))) == 3


def test_source_errors_name_the_path(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("no archive here")
    cases: list[tuple[str | Path, str]] = [(tmp_path / "nope", "nope: no such file or directory"),
             (tmp_path / "empty", "empty: the directory holds no archive files"),
             (str(tmp_path / "*.zzz"), r"\*.zzz: no file matches this pattern"),
             ("s3:///prefix", "not an S3 URL; expected s3://bucket/prefix")]
    for path, message in cases:
        with pytest.raises(ArchiveError, match=message):
            read_archive(path, s3_client=object())
    broken = tmp_path / "broken.json.gz"
    broken.write_bytes(gzip.compress(to_dsjson(event(0)).encode() * 50)[:-30])
    with pytest.raises(ArchiveError, match=r"broken\.json\.gz: the gzip data is truncated"):
        list(read_archive(broken))


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


def test_s3_prefix_through_moto(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in aws_env(moto_url).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)  # the default client's only hint
    s3 = boto3.client("s3", endpoint_url=moto_url)
    s3.create_bucket(Bucket="logs")
    s3.put_object(Bucket="logs", Key="runs/churn-20240501T120001-000002.json.gz",
                  Body=gzip.compress((to_dsjson(event(1)) + "\n").encode()))
    s3.put_object(Bucket="logs", Key="runs/churn-20240501T120000-000001.json",
                  Body=(to_dsjson(event(0)) + "\n").encode())
    s3.put_object(Bucket="logs", Key="runs2/churn-20240501T115959-000001.json",
                  Body=(to_dsjson(event(9)) + "\n").encode())
    # Over 1000 keys would need the paginator: moto pages at MaxKeys too, so use it.
    for i in range(3):
        s3.put_object(Bucket="logs", Key=f"runs/sub/churn-20240501T12001{i}-00000{i}.json",
                      Body=(to_dsjson(event(10 + i)) + "\n").encode())
    archive = read_archive("s3://logs/runs")
    assert archive.files == ("s3://logs/runs/churn-20240501T120000-000001.json",
                             "s3://logs/runs/churn-20240501T120001-000002.json.gz",
                             "s3://logs/runs/sub/churn-20240501T120010-000000.json",
                             "s3://logs/runs/sub/churn-20240501T120011-000001.json",
                             "s3://logs/runs/sub/churn-20240501T120012-000002.json")
    assert [r["timestamp"] - T0 for r in chunk_rows(list(archive))] == [0, 1, 10, 11, 12]
    with pytest.raises(ArchiveError, match="s3://logs/none: no objects under this prefix"):
        read_archive("s3://logs/none", s3_client=s3)
    with pytest.raises(ArchiveError, match=r"s3://no-such-bucket/x: cannot list the objects: "
                                           r".*NoSuchBucket"):
        read_archive("s3://no-such-bucket/x", s3_client=s3)


# -- filters ----------------------------------------------------------------------------


def test_every_filter_and_its_count(tmp_path: Path) -> None:
    events = [event(i, default_reward=i % 4 == 0, reward=0.0 if i % 4 == 0 else 1.0,
                    targeted=i == 5, probability=1.0 if i == 5 else 0.5,
                    probabilities={"V2": 1.0} if i == 5 else event(0)["probabilities"])
              for i in range(20)]
    events += [event(i, experiment="pricing") for i in range(20, 23)]
    path = write_lines(tmp_path / "a.json", events)
    archive = read_archive(path, experiment="churn", since=T0 + 2, until=T0 + 18,
                           drop_default_rewards=True)
    rows = chunk_rows(list(archive))
    assert [r["timestamp"] - T0 for r in rows] == [
        i for i in range(2, 18) if i % 4 and i != 5]
    assert archive.stats.excluded == {"duplicate": 0, "other_experiment": 3, "targeted": 1,
                                      "before_since": 2, "after_until": 2,
                                      "default_reward": 4}
    assert archive.stats.experiments == {"churn": 20, "pricing": 3}
    assert archive.stats.events == len(rows) == 11 and archive.stats.default_rewards == 0
    kept = read_archive(path, experiment="churn", since=T0 + 2, until=T0 + 18)
    assert len(chunk_rows(list(kept))) == 15 and kept.stats.default_rewards == 4
    assert kept.stats.excluded["default_reward"] == 0


def test_two_experiments_need_a_choice_and_an_unknown_one_is_named(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.json", [event(0), event(1, experiment="pricing")])
    with pytest.raises(ArchiveError, match=r"more than one experiment \(churn, pricing\); "
                                           "choose the one to evaluate"):
        list(read_archive(path))
    with pytest.raises(ArchiveError, match="experiment 'growth' is not in the archive; "
                                           "it holds: churn, pricing"):
        list(read_archive(path, experiment="growth"))


# -- bad lines --------------------------------------------------------------------------


def bad_lines() -> list[tuple[str, str]]:
    """(line, the message's start) for each way a line can be bad."""
    good = json.loads(to_dsjson(event(0)))

    def changed(**fields: Any) -> str:
        return json.dumps({**good, **fields}, separators=(",", ":"))

    return [
        ("{not json", "not JSON"),
        ('["a list"]', "not one of our DSJSON lines: not a JSON object"),
        (json.dumps({k: v for k, v in good.items() if k != "p"}), "not one of our DSJSON lines"),
        (changed(p=[0.5, 0.25, 0.2]), "'p' is not a probability distribution"),
        (changed(p=[0.5, 0.25, 0.250002]), "'p' is not a probability distribution"),
        (changed(_label_probability=0.5 + 2e-9), "_label_probability 0.500000002 is not"),
        (changed(p=[0.5, 0.25]), "'p' has 2 values for the 3 actions"),
        (changed(p=[0.5, 0.75, -0.25]), "'p' is not a probability distribution"),
        (changed(_label_probability=0.4), "_label_probability 0.4 is not the chosen action's"),
        (changed(_label_probability=0.0, p=[0.0, 0.5, 0.5]),
         "_label_probability 0.0 is not in (0, 1]"),
        (changed(_label_Action=4), "_label_Action 4 is not one of the 3 actions"),
        (changed(a=[1, 1, 3]), "'a' [1, 1, 3] is not a permutation"),
        (changed(variants=["V1", "V3", "V9"]), "variant 'V2' is not one of the experiment's"),
        (changed(Timestamp="2024-13-01T12:00:00.000Z"), "Timestamp "),
        (changed(Timestamp="yesterday"), "Timestamp 'yesterday' is not an ISO 8601 time"),
        (to_dsjson(event(0)).replace('"_label_cost":0.0', '"_label_cost":Infinity'),
         "the reward (-_label_cost) -inf is not finite"),
    ]


def test_bad_lines_are_skipped_and_counted_with_file_and_line(tmp_path: Path) -> None:
    cases = bad_lines()
    good = [to_dsjson(event(i)) for i in range(3)]
    # Within the tolerances: 1e-10 off the chosen p, a pmf 1e-7 off 1.
    good[1] = good[1].replace('"_label_probability":0.5', '"_label_probability":0.5000000001')
    good[2] = good[2].replace('"p":[0.5,0.25,0.25]', '"p":[0.5,0.25,0.2500001]')
    path = tmp_path / "a.json"
    # Blank lines are not lines; they keep the numbering.
    path.write_text("\n".join([good[0], *(line for line, _ in cases), "", good[1], good[2]]))
    archive = read_archive(path, lines=True, contexts=True)
    (chunk,) = list(archive)
    assert chunk.lines == good and "0.2500001" in good[2] and "0.5000000001" in good[1]
    assert chunk.contexts == [{"x": i, "plan": "gold"} for i in range(3)]
    stats = archive.stats
    assert stats.bad_lines == len(cases) == 16 and stats.lines == 19 and stats.events == 3
    assert len(stats.bad_examples) == 10
    for number, (example, (_, message)) in enumerate(
            zip(stats.bad_examples, cases, strict=False), start=2):
        assert isinstance(example, BadLine)
        assert (example.path, example.line) == (str(path), number)
        assert example.message.startswith(message), (example.message, message)


@pytest.mark.parametrize("case", range(16))
def test_each_bad_line_fails_with_file_and_line(tmp_path: Path, case: int) -> None:
    line, message = bad_lines()[case]
    path = tmp_path / "a.json"
    path.write_text("\n".join([to_dsjson(event(0)), to_dsjson(event(1)), line]) + "\n")
    with pytest.raises(ArchiveError) as failure:
        list(read_archive(path, on_bad_line="fail"))
    assert str(failure.value).startswith(f"{path}:3: {message}")


def test_options_are_checked(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.json", [event(0)])
    with pytest.raises(ArchiveError, match="chunk_size must be a positive integer, got 0"):
        read_archive(path, chunk_size=0)
    with pytest.raises(ArchiveError, match="on_bad_line must be 'skip' or 'fail'"):
        read_archive(path, on_bad_line="ignore")  # type: ignore[arg-type]
    with pytest.raises(ArchiveError, match="since must be finite Unix seconds"):
        read_archive(path, since=math.nan)


# -- the benchmark's generator ----------------------------------------------------------


def replay_data() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_replay_data",
                                                  ROOT / "bench" / "_replay_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_lines_are_to_dsjsons() -> None:
    data = replay_data()
    for contextual in (False, True):
        fast = list(data.dsjson_lines(3_000, seed=4, contextual=contextual))
        assert fast == [to_dsjson(e) for e in data.joined_events(3_000, seed=4,
                                                                 contextual=contextual)]


def test_generated_archive_reads_back_with_the_intended_shares(tmp_path: Path) -> None:
    data = replay_data()
    n = 40_000
    files = data.generate(tmp_path, n, seed=7, gzip=True, contextual=True)
    assert [f.name for f in files] == [os.path.basename(f) for f in sorted(files)]
    archive = read_archive(tmp_path, experiment=data.EXPERIMENT)
    chunks = list(archive)
    stats = archive.stats
    assert stats.bad_lines == 0 and stats.lines == n
    # Each file carries the archiver's index, and reading through it changes nothing.
    assert stats.indexed_files == len(files)
    parsed = list(read_archive(tmp_path, experiment=data.EXPERIMENT, use_index=False))
    assert chunk_rows(parsed) == chunk_rows(chunks)
    # Binomial shares: 4 standard deviations of slack at n = 40,000.
    assert stats.excluded["targeted"] / n == pytest.approx(data.TARGETED_SHARE, abs=0.002)
    assert stats.default_rewards / stats.events == pytest.approx(
        data.DEFAULT_REWARD_SHARE, abs=0.003)
    assert [len(c.arms) for c in chunks] == [4, 5]
    subset = np.concatenate([~c.offered.all(axis=1) for c in chunks]).mean()
    assert subset == pytest.approx(data.SUBSET_SHARE, abs=0.006)
    versions = {v for c in chunks for v in c.versions}
    # A version each VERSION_EVENTS, and one more where the fifth variant arrives.
    assert len(versions) == n // data.VERSION_EVENTS + 1
    # The logger learns: its favourite variant's probability grows from 1/4.
    early, late = chunks[0].logged[:2000].mean(axis=0), chunks[0].logged[-2000:].mean(axis=0)
    assert early.max() < 0.35 and late.max() > 0.6


def test_to_dsjson_lines_take_the_fast_path() -> None:
    """Speed rests on this: every line our writer makes matches the one-regex layout."""
    from bandit.ope._archive_parse import _LINE

    events = [*varied_events(), event(9, context=None), event(10, context={"l": [1]}),
              event(11, experiment=None, policy_version=None)]
    for e in events:
        assert _LINE.match((to_dsjson(e) + "\n").encode()), to_dsjson(e)


def test_events_archived_twice_count_once(tmp_path: Path) -> None:
    # The archiver writes at least once: after an ingester restart the events since the
    # last saved offset are written again, into the next file. A replay must count them
    # once, whichever path (fast layout or JSON) reads the repeated lines.
    first = [event(i) for i in range(10)]
    again = [event(i) for i in range(6, 10)] + [event(i) for i in range(10, 14)]
    write_lines(tmp_path / "churn-20240501T120000-000001.json", first)
    second = write_lines(tmp_path / "churn-20240501T120500-000002.json", again)
    # One repeated line in another key order (the slow path), one repeated within the file.
    lines = second.read_text().splitlines()
    record = json.loads(lines[0])
    lines[0] = json.dumps(dict(reversed(list(record.items()))))
    lines.append(lines[-1])
    second.write_text("\n".join(lines) + "\n")
    archive = read_archive(tmp_path)
    rows = chunk_rows(list(archive))
    assert [r["timestamp"] - T0 for r in rows] == list(range(14))
    assert archive.stats.excluded["duplicate"] == 5
    assert archive.stats.lines == 19 and archive.stats.events == 14
    assert archive.stats.experiments == {"churn": 14}
