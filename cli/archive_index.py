"""``bandit-router archive-index``: indexes for archive files that have none.

The archiver writes ``<file>.index`` beside every file it writes; files written
before it did (or whose index failed) are parsed on every replay, ~10× slower. This
command writes the missing or stale indexes of local archive files (the paths as
``replay`` takes them: files, directories, globs), each under a hidden temporary
name, then renamed into place. A file whose index is valid is left alone unless
``--force``; ``--check`` writes nothing and only reports.

Exit status: 0; 1 when a file could not be indexed (or, with ``--check``, when one
lacks a valid index); 2 for a bad argument (a missing path, an S3 URL), one line on
stderr.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bandit.ope import (
    INDEX_SUFFIX,
    ArchiveError,
    InvalidIndexError,
    build_index,
    load_index,
    read_archive,
)


class ArchiveIndexUsageError(ValueError):
    """A bad argument of ``archive-index``; the message names it."""


def run(paths: Sequence[str], *, force: bool = False, check: bool = False,
        echo: Callable[[str], None] = print) -> int:
    """Index every archive file ``paths`` name; the exit status (see the module docstring)."""
    remote = [path for path in paths if path.startswith("s3:")]
    if remote:
        raise ArchiveIndexUsageError(f"{remote[0]}: archive-index reads local files only; "
                                     "copy the files or index them where they are written")
    files = read_archive(paths).files  # ArchiveError for a missing path: exit 2
    counts = {"indexed": 0, "up to date": 0, "missing": 0, "failed": 0}
    for name in files:
        path = Path(name)
        try:
            data = path.read_bytes()
            if not force and _valid(path, data):
                counts["up to date"] += 1
                continue
            if check:
                counts["missing"] += 1
                echo(f"no valid index: {path}")
                continue
            index = build_index(data, str(path))
            _write(Path(f"{path}{INDEX_SUFFIX}"), index)
        except (ArchiveError, OSError) as exc:
            counts["failed"] += 1
            print(f"bandit-router: error: {_reason(path, exc)}", file=sys.stderr)
            continue
        counts["indexed"] += 1
        echo(f"indexed: {path} ({len(data) / 1e6:,.1f} MB, index {len(index) / 1e6:,.1f} MB)")
    echo(", ".join(f"{count:,} {what}" for what, count in counts.items() if count)
         + f" ({len(files):,} archive files)")
    return 1 if counts["failed"] or counts["missing"] else 0


def _valid(path: Path, data: bytes) -> bool:
    try:
        raw = Path(f"{path}{INDEX_SUFFIX}").read_bytes()
        return load_index(raw).matches(len(data), lambda start, size: data[start:start + size])
    except (OSError, InvalidIndexError):
        return False


def _write(target: Path, data: bytes) -> None:
    """``data`` as ``target``, whole or not at all (a hidden temporary, then renamed)."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with temporary.open("xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _reason(path: Path, exc: Exception) -> str:
    if isinstance(exc, OSError):
        return f"{path}: {exc.strerror or exc}"
    text = str(exc)
    return text if text.startswith(str(path)) else f"{path}: {text}"
