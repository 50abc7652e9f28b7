"""The archiver's indexes: one beside each file, read by ``read_archive``; a failed index
never costs a data file (local directory and S3 through moto)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from bandit.ope import LogChunk, read_archive
from reward_ingest import archive as archive_module
from reward_ingest.archive import Archiver
from tests.reward_ingest._moto import aws_env, moto_server
from tests.reward_ingest.test_archive import FakeClock, event, event_ids, json_files


def archive_events(archiver: Archiver, n: int = 40) -> None:
    async def main() -> None:
        for start in range(0, n, 10):
            await archiver.add([event(i) for i in range(start, start + 10)])
        await archiver.close()

    asyncio.run(main())


def same_chunks(first: list[LogChunk], second: list[LogChunk]) -> None:
    assert len(first) == len(second) > 0
    for a, b in zip(first, second, strict=True):
        assert (a.experiment, a.arms, a.versions) == (b.experiment, b.arms, b.versions)
        for name in ("action", "propensity", "logged", "offered", "reward", "timestamp",
                     "default_reward", "version"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_every_file_gets_an_index_that_the_reader_uses(tmp_path: Path) -> None:
    archiver = Archiver(str(tmp_path), max_bytes=3000, clock=FakeClock())
    archive_events(archiver)
    files = json_files(tmp_path)
    assert len(files) >= 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [p.name for p in files] + [f"{p.name}.index" for p in files])
    assert (archiver.stats.indexes, archiver.stats.index_errors) == (len(files), 0)
    indexed = read_archive(tmp_path)
    chunks = list(indexed)
    assert (indexed.stats.indexed_files, indexed.stats.unindexed_files) == (len(files), 0)
    parsed = read_archive(tmp_path, use_index=False)
    same_chunks(chunks, list(parsed))
    assert parsed.stats.unindexed_files == len(files)
    assert indexed.stats.events == parsed.stats.events == 40


def test_a_failed_index_never_costs_the_data_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes, name: str = "") -> bytes:
        raise MemoryError("no room for the index")

    monkeypatch.setattr(archive_module, "build_index", broken)
    archiver = Archiver(str(tmp_path), max_bytes=3000, clock=FakeClock())
    archive_events(archiver)
    files = json_files(tmp_path)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".json")] == []
    assert archiver.stats.index_errors == archiver.stats.files == len(files) >= 3
    assert archiver.stats.indexes == 0 and archiver.stats.write_errors == 0
    ids = [i for p in files for i in event_ids(p.read_bytes())]
    assert ids == [f"e{i}" for i in range(40)]
    archive = read_archive(tmp_path)
    assert sum(len(c) for c in archive) == 40
    assert (archive.stats.indexed_files, archive.stats.unindexed_files) == (0, len(files))


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def s3_env(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in aws_env(moto_url).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)
    return moto_url


def test_s3_indexes_beside_the_files(s3_env: str) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_env)
    s3.create_bucket(Bucket="indexed")
    archiver = Archiver("s3://indexed/runs", max_bytes=3000, clock=FakeClock())
    archive_events(archiver)
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket="indexed")["Contents"]]
    data = sorted(k for k in keys if k.endswith(".json"))
    assert len(data) == archiver.stats.files >= 3
    assert sorted(keys) == sorted(data + [f"{k}.index" for k in data])
    head = s3.head_object(Bucket="indexed", Key=f"{data[0]}.index")
    assert head["ContentType"] == "application/octet-stream"
    archive = read_archive("s3://indexed/runs", s3_client=s3)
    assert archive.files == tuple(f"s3://indexed/{k}" for k in data)  # indexes are not data
    chunks = list(archive)
    assert (archive.stats.indexed_files, archive.stats.unindexed_files) == (len(data), 0)
    same_chunks(chunks, list(read_archive("s3://indexed/runs", s3_client=s3, use_index=False)))
    # A file replaced after its index was written, same size, its last line changed (the
    # ranged read of its tail sees it): parsed, not read through the stale index.
    body = s3.get_object(Bucket="indexed", Key=data[0])["Body"].read()
    at = body.rindex(b"false")
    s3.put_object(Bucket="indexed", Key=data[0], Body=body[:at] + b"true " + body[at + 5:])
    again = read_archive("s3://indexed/runs", s3_client=s3)
    list(again)
    assert (again.stats.indexed_files, again.stats.unindexed_files) == (len(data) - 1, 1)


def test_s3_index_write_failure_keeps_every_data_file(s3_env: str) -> None:
    s3 = boto3.client("s3", endpoint_url=s3_env)
    s3.create_bucket(Bucket="refused")

    def refuse_indexes(params: dict[str, Any], **_: Any) -> None:
        if str(params.get("Key", "")).endswith(".index"):
            raise PermissionError("AccessDenied for indexes")

    def client() -> Any:
        made = boto3.client("s3")
        made.meta.events.register("before-parameter-build.s3.PutObject", refuse_indexes)
        return made

    archiver = Archiver("s3://refused/runs", max_bytes=3000, clock=FakeClock(),
                        s3_client=client)
    archive_events(archiver)
    keys = sorted(item["Key"] for item in s3.list_objects_v2(Bucket="refused")["Contents"])
    assert keys and all(k.endswith(".json") for k in keys)
    assert archiver.stats.index_errors == archiver.stats.files == len(keys)
    archive = read_archive("s3://refused/runs", s3_client=s3)
    assert sum(len(c) for c in archive) == 40
    assert archive.stats.unindexed_files == len(keys)
