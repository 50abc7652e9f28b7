"""The archiver: rotation by size and age, whole files only, S3 via moto, VW reads it all."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import vowpalwabbit

from bandit.dsjson import from_dsjson, to_dsjson
from reward_ingest.archive import Archiver
from tests.reward_ingest._moto import aws_env, moto_server

T0 = 1_714_564_800.0  # 2024-05-01T12:00:00Z


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def event(i: int, experiment: str = "churn", **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "format": 1, "event_id": f"e{i}", "timestamp": T0 + i, "experiment": experiment,
        "endpoint": "ep", "policy_version": "1", "variants": ["V1", "V2"], "eligible": None,
        "context": {"i": i, "plan": "gold"}, "variant": "V1" if i % 2 else "V2",
        "probability": 0.5, "probabilities": {"V1": 0.5, "V2": 0.5}, "targeted": False,
        "unit_id": None, "source": "decisions", "outcome": "decided", "latency_ms": None,
        "reward": float(i % 3 == 0), "default_reward": False, "rewards": 1,
        "joined_at": T0 + i + 1}
    base.update(changes)
    return base


def json_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith(".json"))


def event_ids(data: bytes) -> list[str]:
    return [from_dsjson(line)["event_id"] for line in data.splitlines()]


def vw_examples(path: Path) -> float:
    workspace = vowpalwabbit.Workspace(f"--cb_explore_adf --dsjson -d {path} --quiet")
    workspace.run_parser()
    read = float(workspace.get_weighted_examples())
    workspace.finish()
    return read


def test_rotation_by_size(tmp_path: Path) -> None:
    line_size = len(to_dsjson(event(10))) + 1  # about the size of one line
    archiver = Archiver(str(tmp_path), max_bytes=3 * line_size + 50, clock=FakeClock())

    async def main() -> None:
        for start in range(0, 20, 4):
            await archiver.add([event(i) for i in range(start, start + 4)])
        await archiver.close()

    asyncio.run(main())
    files = json_files(tmp_path)
    assert [p.name for p in files] == list(archiver.recent_files)  # name order = write order
    assert all(p.name.startswith("churn-20240501T120000-") for p in files)
    assert all(p.stat().st_size <= archiver.max_bytes for p in files)
    assert len(files) >= 20 * line_size // archiver.max_bytes
    ids = [i for p in files for i in event_ids(p.read_bytes())]
    assert ids == [f"e{i}" for i in range(20)]  # nothing lost, nothing doubled, in order
    stats = archiver.stats
    assert (stats.files, stats.events, stats.pending_events) == (len(files), 20, 0)
    assert stats.bytes == sum(p.stat().st_size for p in files)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_a_line_larger_than_max_bytes_gets_its_own_file(tmp_path: Path) -> None:
    archiver = Archiver(str(tmp_path), max_bytes=100, clock=FakeClock())
    asyncio.run(archiver.add([event(1), event(2)]))
    assert [len(event_ids(p.read_bytes())) for p in json_files(tmp_path)] == [1, 1]


def test_rotation_by_age_and_close_writes_the_tail(tmp_path: Path) -> None:
    clock = FakeClock()
    archiver = Archiver(str(tmp_path), max_bytes=1 << 20, max_seconds=30, clock=clock)

    async def main() -> None:
        assert archiver.next_due() is None
        await archiver.add([event(1)])
        clock.now += 10
        await archiver.add([event(2), event(3, experiment="other")])
        assert archiver.next_due() == 20
        await archiver.flush_due()
        assert json_files(tmp_path) == []  # nothing is 30 s old yet
        clock.now += 20  # churn's file is due; other's (opened at +10) is not
        await archiver.flush_due()
        assert [p.name for p in json_files(tmp_path)] == ["churn-20240501T120000-000001.json"]
        assert archiver.next_due() == 10
        clock.now += 1
        await archiver.add([event(4)])  # a new churn file, opened now
        assert archiver.stats.pending_events == 2
        await archiver.close()  # the tail: both open files
        with pytest.raises(RuntimeError, match="closed"):
            await archiver.add([event(5)])

    asyncio.run(main())
    names = [p.name for p in json_files(tmp_path)]
    # close() wrote "other" (open since +10) before the newer churn file.
    assert names == ["churn-20240501T120000-000001.json", "churn-20240501T120031-000003.json",
                     "other-20240501T120010-000002.json"]
    assert [event_ids(p.read_bytes()) for p in json_files(tmp_path)] == [
        ["e1", "e2"], ["e4"], ["e3"]]


def test_one_stream_for_all_and_malformed_events_skipped(tmp_path: Path) -> None:
    archiver = Archiver(str(tmp_path), clock=FakeClock(), by_experiment=False)

    async def main() -> int:
        taken = await archiver.add([event(1), event(2, experiment="b"), {"event_id": "bad"},
                                    event(3, variant="nope")])
        await archiver.close()
        return taken

    assert asyncio.run(main()) == 2
    (only,) = json_files(tmp_path)
    assert only.name.startswith("all-") and event_ids(only.read_bytes()) == ["e1", "e2"]
    assert archiver.stats.skipped == 2


def test_never_overwrites_an_existing_file(tmp_path: Path) -> None:
    taken = tmp_path / "churn-20240501T120000-000001.json"
    taken.write_text("somebody else's\n")
    archiver = Archiver(str(tmp_path), clock=FakeClock())

    async def main() -> None:
        await archiver.add([event(1)])
        await archiver.close()

    asyncio.run(main())
    assert taken.read_text() == "somebody else's\n"
    assert list(archiver.recent_files) == ["churn-20240501T120000-000002.json"]


def test_readers_never_see_a_partial_file(tmp_path: Path) -> None:
    """List and read the directory in a loop while 11 files of ~3 MB are written:
    every *.json seen is already whole (its size is the final one, every line parses)."""
    big = {f"k{j}": f"v{j}" * 20 for j in range(300)}
    events = [event(i, context=big) for i in range(1600)]
    archiver = Archiver(str(tmp_path), max_bytes=3 << 20, clock=FakeClock())
    stop = threading.Event()
    seen: dict[str, int] = {}
    temporaries = 0
    problems: list[str] = []

    def watch() -> None:
        nonlocal temporaries
        while not stop.is_set():
            for name in os.listdir(tmp_path):
                if name.startswith("."):
                    temporaries += 1
                    continue
                if not name.endswith(".json"):  # the indexes
                    continue
                try:
                    data = (tmp_path / name).read_bytes()
                except FileNotFoundError:
                    problems.append(f"{name} listed but gone")
                    continue
                if not data.endswith(b"\n"):
                    problems.append(f"{name}: partial ({len(data)} bytes)")
                seen[name] = len(data)

    async def main() -> None:
        for start in range(0, len(events), 100):
            await archiver.add(events[start:start + 100])
        await archiver.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        asyncio.run(main())
    finally:
        stop.set()
        watcher.join()
    final = {p.name: p.stat().st_size for p in json_files(tmp_path)}
    assert problems == []
    assert len(final) >= 8 and set(seen) <= set(final)
    assert all(final[name] == size for name, size in seen.items())
    assert sum(len(p.read_bytes().splitlines()) for p in json_files(tmp_path)) == len(events)
    assert temporaries > 0, "the watcher never caught a file being written"


def test_a_failed_write_keeps_the_events_and_refuses_new_ones(tmp_path: Path) -> None:
    blocked = tmp_path / "archive"
    blocked.write_text("a file where the directory should be")
    archiver = Archiver(str(blocked), max_bytes=10, clock=FakeClock())

    async def main() -> None:
        assert await archiver.add([event(1)]) == 1  # taken; its write failed and waits
        assert (archiver.stats.write_errors, archiver.stats.pending_events) == (1, 1)
        with pytest.raises(OSError):
            await archiver.add([event(2)])  # the queue still cannot be written: not taken
        assert archiver.stats.pending_events == 1
        with pytest.raises(OSError):
            await archiver.flush()
        blocked.unlink()
        await archiver.add([event(2)])
        await archiver.close()

    asyncio.run(main())
    assert [event_ids(p.read_bytes()) for p in json_files(blocked)] == [["e1"], ["e2"]]
    assert archiver.stats.events == 2


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def s3_env(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in aws_env(moto_url).items():
        monkeypatch.setenv(key, value)
    # The archiver's default client must find moto through the standard variable alone.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)
    return moto_url


def test_s3_archive_through_moto(s3_env: str, tmp_path: Path) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_env)
    s3.create_bucket(Bucket="logs")
    # Occupies the first name the archiver will try: it must move on, not overwrite.
    s3.put_object(Bucket="logs", Key="bandit/runs/churn-20240501T120000-000001.json",
                  Body=b"not ours\n")
    clock = FakeClock()
    archiver = Archiver("s3://logs/bandit/runs/", max_bytes=2000, max_seconds=60, clock=clock)

    async def main() -> None:
        await archiver.add([event(i) for i in range(10)])
        await archiver.add([event(i, experiment="other") for i in range(10, 13)])
        clock.now += 61
        await archiver.flush_due()
        await archiver.add([event(13)])
        await archiver.close()

    asyncio.run(main())
    listed = [item for item in s3.list_objects_v2(Bucket="logs", Prefix="bandit/runs/")[
        "Contents"] if item["Key"].endswith(".json")]  # the indexes: test_archive_index.py
    keys = sorted(item["Key"] for item in listed)
    assert len(keys) == archiver.stats.files + 1 >= 4
    body = s3.get_object(Bucket="logs", Key=keys[0])["Body"].read()
    assert body == b"not ours\n"
    ids: list[str] = []
    for key in keys[1:]:
        obj = s3.get_object(Bucket="logs", Key=key)
        assert obj["ContentType"] == "application/x-ndjson"
        data = obj["Body"].read()
        local = tmp_path / key.rsplit("/", 1)[1]
        local.write_bytes(data)
        assert vw_examples(local) == len(data.splitlines())  # VW reads every line
        ids += event_ids(data)
    assert sorted(ids, key=lambda e: int(e[1:])) == [f"e{i}" for i in range(14)]
    assert archiver.stats.events == 14 and archiver.stats.bytes == sum(
        item["Size"] for item in listed if item["Key"] != keys[0])


def test_s3_bad_bucket_is_an_error_on_flush(s3_env: str) -> None:
    archiver = Archiver("s3://no-such-bucket/x", clock=FakeClock())

    async def main() -> None:
        await archiver.add([event(1)])
        with pytest.raises(Exception, match="NoSuchBucket"):
            await archiver.flush()

    asyncio.run(main())
    assert archiver.stats.pending_events == 1 and archiver.stats.write_errors == 1
