"""``bandit-router archive-index`` from the outside: indexes written, checked, used by replay."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

from bandit.ope import load_index
from tests.cli.test_replay_cli import ENV, SCRIPT, write_archive


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *map(str, args)],  # noqa: S603
                          capture_output=True, text=True, env=ENV, timeout=120, check=False)


def test_indexes_missing_and_stale_files_then_replay_reads_them(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "archive", n=2000)
    first, second = sorted(archive.glob("*.json"))
    packed = archive / "exp-20260901T020000-0003.json.gz"
    renamed = second.read_bytes().replace(b'"EventId":"e', b'"EventId":"g')  # no duplicates
    packed.write_bytes(gzip.compress(renamed))

    checked = run("archive-index", "--check", archive)
    assert checked.returncode == 1, checked.stderr
    assert checked.stdout.splitlines()[-1] == "3 missing (3 archive files)"

    written = run("archive-index", archive)
    assert written.returncode == 0, written.stderr
    assert written.stdout.splitlines()[-1] == "3 indexed (3 archive files)"
    for path in (first, second, packed):
        index = load_index(Path(f"{path}.index").read_bytes())
        assert index.size == path.stat().st_size and index.rows == 1000
    assert run("archive-index", str(archive / "*")).stdout.splitlines()[-1] == (
        "3 up to date (3 archive files)")

    # A file changed after its index: stale, so rewritten.
    first.write_bytes(first.read_bytes() + first.read_bytes().splitlines(keepends=True)[0])
    again = run("archive-index", archive)
    lines = again.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"indexed: {first} (0.5 MB, index ")
    assert lines[1] == "1 indexed, 2 up to date (3 archive files)"

    replayed = subprocess.run([str(SCRIPT), "replay", str(archive), "--policy", "static",  # noqa: S603
                               "--json"], capture_output=True, text=True, env=ENV, timeout=120,
                              check=False)
    assert replayed.returncode == 0, replayed.stderr
    document = json.loads(replayed.stdout)
    assert document["archive"]["files"] == document["archive"]["indexed_files"] == 3
    assert document["audit"]["excluded"]["duplicate"] == 1  # the line added to the first file


def test_bad_arguments_and_unreadable_files(tmp_path: Path) -> None:
    for args, message in (
            (["archive-index", tmp_path / "nope"], "nope: no such file or directory"),
            (["archive-index", "s3://logs/x"], "archive-index reads local files only"),
            (["archive-index", "--check", "--force", tmp_path], "cannot be combined")):
        failed = run(*args)
        assert failed.returncode == 2
        (line,) = failed.stderr.splitlines()
        assert line.startswith("bandit-router: error: ") and message in line
    broken = tmp_path / "a.json.gz"
    broken.write_bytes(b"\x1f\x8b not gzip at all")
    (tmp_path / "b.json").write_text("{}\n")
    failed = run("archive-index", tmp_path)
    assert failed.returncode == 1
    (line,) = failed.stderr.splitlines()
    assert line.startswith(f"bandit-router: error: {broken}: not valid gzip data (")
    assert failed.stdout.splitlines()[-1] == "1 indexed, 1 failed (2 archive files)"
    assert Path(f"{tmp_path / 'b.json'}.index").exists()
