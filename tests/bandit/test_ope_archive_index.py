"""Archive indexes: reading through them yields exactly what parsing yields (generated
archives with every kind of line), stale or damaged indexes are ignored, indexes are
never read as data, and the duplicate filter is exact."""

from __future__ import annotations

import gzip
import json
import random
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bandit.dsjson import to_dsjson
from bandit.ope import ArchiveError, LogChunk, build_index, read_archive
from bandit.ope import _archive as archive_module
from bandit.ope import _archive_sources as sources_module
from bandit.ope._index import InvalidIndexError, load_index
from tests.bandit.test_ope_archive import T0, bad_lines, event, write_lines

VARIANT_LISTS = (["V1", "V2", "V3"], ["V1", "V2", "V3", "V4"], ["V2", "V1"], ["B", "A", "C"])


def random_event(rng: random.Random, number: int, event_id: str, variants: list[str],
                 experiment: str | None) -> dict[str, Any]:
    offered = [v for v in variants if rng.random() < 0.8] or [rng.choice(variants)]
    chosen = rng.choice(offered)
    targeted = rng.random() < 0.08
    if targeted:
        probabilities = {chosen: 1.0}
    else:
        weights = [rng.random() + 0.05 for _ in offered]
        probabilities = {v: w / sum(weights) for v, w in zip(offered, weights, strict=True)}
    default = rng.random() < 0.08
    return event(number, event_id=event_id, experiment=experiment, variants=list(variants),
                 eligible=None if len(offered) == len(variants) else offered, variant=chosen,
                 probability=probabilities[chosen], probabilities=probabilities,
                 targeted=targeted, default_reward=default,
                 reward=0.0 if default else round(rng.random(), 3),
                 policy_version=rng.choice(["1", "2", 3, None]),
                 timestamp=T0 + number * 0.5 + round(rng.random(), 3),
                 context={"x": number, "plan": rng.choice(["gold", "free"])})


def random_lines(rng: random.Random, count: int, ids: list[str], start: int,
                 experiments: list[str | None]) -> list[str]:
    """Lines of one file: good ones in both layouts, duplicates, bad, blank, CRLF."""
    broken = bad_lines()
    variants = rng.choice(VARIANT_LISTS)
    lines: list[str] = []
    for number in range(start, start + count):
        if rng.random() < 0.1:
            variants = rng.choice(VARIANT_LISTS)  # the variant list changes mid-file
        roll = rng.random()
        if roll < 0.06:
            lines.append(rng.choice(broken)[0])
            continue
        if roll < 0.09:
            lines.append("")
            continue
        if ids and roll < 0.22:  # archived twice: lately, or long ago
            event_id = ids[-rng.randint(1, min(len(ids), 12))] if rng.random() < 0.7 \
                else rng.choice(ids)
        else:
            event_id = f"e{len(ids)}"
        ids.append(event_id)
        line = to_dsjson(random_event(rng, number, event_id, variants,
                                      rng.choice(experiments)))
        if rng.random() < 0.06:  # off the fast layout: parsed by json
            line = json.dumps(json.loads(line), sort_keys=True)
        if rng.random() < 0.03:
            line += "\r"
        lines.append(line)
    return lines


def random_archive(rng: random.Random, directory: Path) -> int:
    """Files in ``directory``, most of them indexed (some indexes stale); returns how many
    have a valid index."""
    directory.mkdir(parents=True)
    experiments: list[str | None] = rng.choice([["churn"], ["churn", "growth"],
                                                ["churn", None], ["growth"]])
    ids: list[str] = []
    valid = 0
    start = 0
    for f in range(rng.randint(1, 4)):
        count = rng.randint(0, 60)
        lines = random_lines(rng, count, ids, start, experiments)
        start += count
        end = "" if rng.random() < 0.3 else "\n"
        compress = gzip.compress if rng.random() < 0.3 else bytes
        data = compress(("\n".join(lines) + end).encode())
        name = f"churn-20240501T1200{f:02d}-{f + 1:06d}.json" + (
            ".gz" if compress is gzip.compress else "")
        path = directory / name
        path.write_bytes(data)
        roll = rng.random()
        if roll < 0.8:
            Path(f"{path}.index").write_bytes(build_index(data, name))
            valid += 1
        elif roll < 0.9:  # made before the last line was added: must be ignored
            before = compress(("\n".join(lines[:-1]) + end).encode())
            Path(f"{path}.index").write_bytes(build_index(before, name))
    return valid


def outcome(archive: Any) -> tuple[list[dict[str, Any]], dict[str, Any], str | None]:
    """Every chunk as lists, the stats (but the index counts) and the error, if any."""
    chunks: list[dict[str, Any]] = []
    error = None
    try:
        for chunk in archive:
            chunks.append(as_lists(chunk))
    except ArchiveError as exc:
        error = str(exc)
    stats = {name: getattr(archive.stats, name) for name in archive.stats.__slots__
             if name not in ("indexed_files", "unindexed_files")}
    stats["experiments"] = list(stats["experiments"].items())  # the order matters too
    return chunks, stats, error


def as_lists(chunk: LogChunk) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in chunk.__slots__:
        value = getattr(chunk, name)
        if isinstance(value, np.ndarray):
            found[name] = (value.dtype.str, value.shape, value.tolist())
        else:
            found[name] = value
    return found


@pytest.mark.parametrize("seed", range(40))
def test_the_index_yields_exactly_what_parsing_yields(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    rng = random.Random(seed)
    valid = random_archive(rng, tmp_path / "archive")
    # Small blocks for parsing, a short duplicate window, few rows turned into lines at a
    # time: block, batch and window edges fall everywhere.
    monkeypatch.setattr(sources_module, "READ_BYTES", rng.choice([64, 700, 1 << 20]))
    monkeypatch.setattr(archive_module, "RECENT_IDS", rng.choice([3, 10, 1 << 18]))
    monkeypatch.setattr(archive_module, "TEXT_ROWS", rng.choice([1, 4, 1 << 16]))
    span = sorted(T0 + rng.random() * 40 for _ in range(2))
    cases: list[dict[str, Any]] = [
        {},
        {"experiment": "churn", "since": span[0], "until": span[1],
         "drop_default_rewards": True, "chunk_size": rng.choice([1, 3, 50, 65_536])},
        {"experiment": "churn", "lines": True, "contexts": True, "chunk_size": 7},
        {"experiment": "growth", "lines": True},
        {"experiment": "churn", "on_bad_line": "fail"},
    ]
    for options in cases:
        indexed = read_archive(tmp_path / "archive", **options)
        parsed = read_archive(tmp_path / "archive", use_index=False, **options)
        assert outcome(indexed) == outcome(parsed), options
        assert parsed.stats.indexed_files == 0
        if not options.get("on_bad_line") and options:
            assert indexed.stats.indexed_files == valid


def test_stale_damaged_and_foreign_indexes_are_ignored(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.json", [event(i) for i in range(20)])
    index = Path(f"{path}.index")
    index.write_bytes(build_index(path.read_bytes()))
    first = read_archive(path)
    rows = outcome(first)
    assert first.stats.indexed_files == 1 and len(rows[0]) == 1

    def read_again() -> tuple[Any, tuple[Any, ...]]:
        archive = read_archive(path)
        return archive, outcome(archive)

    # The file edited after its index was made: same size, a different byte at one end.
    data = path.read_bytes()
    path.write_bytes(data.replace(b"12:00:19.000Z", b"12:00:19.500Z"))
    archive, found = read_again()
    assert archive.stats.unindexed_files == 1 and found != rows
    path.write_bytes(data)
    assert read_again()[0].stats.indexed_files == 1
    # Appended to: another size.
    path.write_bytes(data + (to_dsjson(event(20)) + "\n").encode())
    archive, found = read_again()
    assert archive.stats.unindexed_files == 1 and found[1]["events"] == 21
    path.write_bytes(data)
    # A damaged index, another version, and bytes that are no index at all.
    raw = index.read_bytes()
    for broken in (raw[:-1] + bytes([raw[-1] ^ 1]), raw[:8] + b"\x02" + raw[9:], b"{}", b""):
        index.write_bytes(broken)
        with pytest.raises(InvalidIndexError):
            load_index(broken)
        archive, found = read_again()
        assert archive.stats.unindexed_files == 1 and found == rows
    # An index whose name is a directory: unreadable, so the file is parsed.
    index.unlink()
    index.mkdir()
    archive, found = read_again()
    assert archive.stats.unindexed_files == 1 and found == rows


def test_gzip_files_are_indexed_by_their_lines_and_checked_by_their_bytes(
        tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.json.gz", [event(i) for i in range(30)], compress=True)
    Path(f"{path}.index").write_bytes(build_index(path.read_bytes(), path.name))
    progress: list[int] = []
    archive = read_archive(path, lines=True, contexts=True, progress=progress.append)
    chunks = list(archive)
    assert archive.stats.indexed_files == 1 and sum(progress) == path.stat().st_size
    assert chunks[0].lines == gzip.decompress(path.read_bytes()).decode().splitlines()[:30]
    assert outcome(read_archive(path, lines=True, contexts=True)) == outcome(
        read_archive(path, lines=True, contexts=True, use_index=False))
    # The same lines compressed again (other bytes): the index no longer matches.
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=1))
    stale = read_archive(path)
    list(stale)
    assert stale.stats.unindexed_files == 1


def test_progress_counts_every_stored_byte_through_the_index(tmp_path: Path) -> None:
    for name in ("a.json", "b.json"):
        path = write_lines(tmp_path / name, [event(i) for i in range(10)])
        Path(f"{path}.index").write_bytes(build_index(path.read_bytes()))
    for lines in (False, True):
        progress: list[int] = []
        archive = read_archive(tmp_path, progress=progress.append, lines=lines)
        list(archive)
        assert archive.stats.indexed_files == 2
        assert sum(progress) == archive.total_bytes


def test_indexes_are_never_read_as_data(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.json", [event(i) for i in range(3)])
    Path(f"{path}.index").write_bytes(build_index(path.read_bytes()))
    for given in (tmp_path, str(tmp_path / "*"), str(tmp_path / "a.json*")):
        assert read_archive(given).files == (str(path),)
    with pytest.raises(ArchiveError, match=r"a\.json\.index: an archive file's index"):
        read_archive(tmp_path / "a.json.index")


def test_an_index_records_bad_lines_tables_and_the_file_fingerprint() -> None:
    good = [to_dsjson(event(i, policy_version=str(i % 2))) for i in range(4)]
    data = ("\n".join([good[0], "{not json", "", *good[1:]]) + "\n").encode()
    index = load_index(build_index(data))
    assert (index.size, index.lines, index.rows) == (len(data), 5, 4)
    assert index.head_crc32 == index.tail_crc32 == zlib.crc32(data)
    assert index.bad_lines[0][0] == 2 and index.bad_lines[0][1].startswith("not JSON")
    assert index.experiments == ["churn"] and index.versions == ["0", "1"]
    assert index.columns["line"].tolist() == [1, 4, 5, 6]
    starts = index.columns["offset"].tolist()
    ends = [s + n for s, n in zip(starts, index.columns["length"].tolist(), strict=True)]
    assert [data[s:e].decode() for s, e in zip(starts, ends, strict=True)] == good
    assert index.columns["event_id"].tolist() == [b'"e0"', b'"e1"', b'"e2"', b'"e3"']
    # Every column is numbers or bytes: the index loads without pickle.
    assert all(a.dtype.kind in "biufS" for a in index.columns.values())


# -- the duplicate filter ---------------------------------------------------------------


def brute_force(ids: list[bytes], size: int) -> list[bool]:
    latest: dict[bytes, int] = {}
    out = []
    for position, value in enumerate(ids):
        out.append(value in latest and position - latest[value] <= size)
        latest[value] = position
    return out


@pytest.mark.parametrize("weak_hash", [False, True])
def test_recent_ids_are_exact_however_the_batches_fall(
        monkeypatch: pytest.MonkeyPatch, weak_hash: bool) -> None:
    if weak_hash:  # every id of a length collides: the byte-by-byte path decides
        monkeypatch.setattr(archive_module, "_id_hashes", lambda ids: np.char.str_len(
            ids).astype(np.uint64))
    rng = random.Random(7)
    for size in (1, 2, 5, 50):
        ids = [b'"e%d"' % rng.randint(0, 40) for _ in range(600)]
        recent = archive_module._RecentIds(size)
        found: list[bool] = []
        at = 0
        while at < len(ids):
            step = rng.choice([0, 1, 2, 7, 30, 100])
            found += recent.repeated(np.array(ids[at:at + step], dtype=np.bytes_)).tolist()
            at += step
        assert found == brute_force(ids, size), size
