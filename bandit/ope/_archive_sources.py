"""Where archive files come from: local files, directories, globs and ``s3://bucket/prefix``.

``resolve`` turns the caller's paths into ``Source`` objects, sorted by file name:
the archiver names files ``<experiment>-<UTC yyyymmddTHHMMSS>-<seq>.json``, so a
name sort is a time sort within an experiment. Files of other names sort by name
too; equal names (the same file name in two directories or prefixes) by their
full path. ``Source.blocks`` streams a file as byte blocks that end on a line
break, decompressing gzip (``.gz`` suffix or the gzip magic bytes) on the way, so
memory stays flat whatever the file's size.

An archive file's index (``_index``) is the file beside it named ``<file>.index``;
directories are searched for archive suffixes only, and globs and S3 prefixes skip
index files, so an index is never read as data. ``Source.index`` reads it (None when
there is none) and ``Source.read_range`` reads the byte ranges that check it.
"""

from __future__ import annotations

import glob
import mmap
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlsplit

from .._errors import EvaluationError

ARCHIVE_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")
"""The file names a directory is searched for (an explicit file or S3 key may have any name)."""

INDEX_SUFFIX = ".index"
"""The suffix of an archive file's index: ``churn-20240501T120000-000001.json.index``."""

READ_BYTES = 4 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_GLOB_CHARACTERS = frozenset("*?[")


class ArchiveError(EvaluationError):
    """An archive that cannot be read: the message names the path, ``file:line`` or experiment."""


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Source:
    """One archive file: its name as shown to the user, its stored size, how to open it,
    how to read a byte range of it and its index (None: it has none)."""

    name: str
    size: int
    opener: Callable[[], _Readable]
    ranger: Callable[[int, int], bytes]
    indexer: Callable[[], bytes | mmap.mmap | None]

    def blocks(self, progress: Callable[[int], None] | None = None) -> Iterator[bytes]:
        """The file's (decompressed) bytes as blocks of whole lines; the last ends with ``\\n``.

        ``progress`` is called with the stored bytes read since its previous call.
        """
        stream = self.opener()
        try:
            yield from line_blocks(_read(stream, progress), self.name)
        finally:
            stream.close()

    def read_range(self, start: int, size: int) -> bytes:
        """``size`` stored bytes from ``start`` (fewer at the end of the file)."""
        return self.ranger(start, size)

    def index(self) -> bytes | mmap.mmap | None:
        """The file's index as stored (bytes, or mapped), or None when it has none."""
        return self.indexer()


def line_blocks(stored: Iterable[bytes], name: str) -> Iterator[bytes]:
    """Stored bytes (gzip: ``.gz`` in ``name`` or the magic bytes) as blocks of whole lines,
    decompressed; the last block ends with ``\\n``."""
    raw = iter(stored)
    first = next(raw, b"")
    gzipped = name.endswith(".gz") or first.startswith(_GZIP_MAGIC)
    data = _prepend(first, raw)
    yield from _whole_lines(_gunzip(data, name) if gzipped else data)


def _read(stream: _Readable, progress: Callable[[int], None] | None) -> Iterator[bytes]:
    while block := stream.read(READ_BYTES):
        if progress is not None:
            progress(len(block))
        yield block


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _gunzip(blocks: Iterable[bytes], name: str) -> Iterator[bytes]:
    """Decompress a gzip stream, members one after another (as ``cat a.gz b.gz`` makes)."""
    decompressor = zlib.decompressobj(wbits=31)
    fed = False
    try:
        for block in blocks:
            while block:
                fed = True
                yield decompressor.decompress(block)
                if not decompressor.eof:
                    break
                block = decompressor.unused_data
                decompressor = zlib.decompressobj(wbits=31)
                fed = False
    except zlib.error as exc:
        raise ArchiveError(f"{name}: not valid gzip data ({exc})") from None
    if fed and not decompressor.eof:
        raise ArchiveError(f"{name}: the gzip data is truncated")


def _whole_lines(blocks: Iterable[bytes]) -> Iterator[bytes]:
    carry = b""
    for block in blocks:
        cut = block.rfind(b"\n")
        if cut < 0:
            carry += block
            continue
        yield carry + block[:cut + 1]
        carry = block[cut + 1:]
    if carry:
        yield carry + b"\n"


def resolve(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
            s3_client: Any | None) -> list[Source]:
    """Every archive file the paths name, sorted by file name; ``ArchiveError`` if none."""
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if not items:
        raise ArchiveError("no archive path given")
    found: dict[str, Source] = {}
    client = s3_client
    for item in items:
        text = os.fspath(item)
        if text.startswith("s3:"):
            if client is None:
                client = _default_s3_client()
            sources = _s3_sources(text, client)
        else:
            sources = _local_sources(text)
        for source in sources:
            found.setdefault(source.name, source)
    return sorted(found.values(), key=lambda s: (_base_name(s.name), s.name))


def _base_name(name: str) -> str:
    return name.rsplit("/", 1)[-1].rsplit(os.sep, 1)[-1]


def _local_sources(text: str) -> list[Source]:
    path = Path(text)
    if path.is_file():
        if text.endswith(INDEX_SUFFIX):
            raise ArchiveError(f"{text}: an archive file's index, not an archive file")
        return [_file_source(path)]
    if path.is_dir():
        files = _directory_files(path)
        if not files:
            raise ArchiveError(f"{text}: the directory holds no archive files "
                               f"({', '.join('*' + s for s in ARCHIVE_SUFFIXES)})")
        return [_file_source(f) for f in files]
    if _GLOB_CHARACTERS.intersection(text):
        matches = sorted(glob.glob(text, recursive=True))
        if not matches:
            raise ArchiveError(f"{text}: no file matches this pattern")
        sources: list[Source] = []
        for match in matches:
            matched = Path(match)
            if matched.is_dir():
                sources += [_file_source(f) for f in _directory_files(matched)]
            elif matched.is_file() and not match.endswith(INDEX_SUFFIX):
                sources.append(_file_source(matched))
        if not sources:
            raise ArchiveError(f"{text}: the pattern matches no archive file")
        return sources
    raise ArchiveError(f"{text}: no such file or directory")


def _directory_files(directory: Path) -> list[Path]:
    """Regular files ending in an archive suffix; hidden files and directories are skipped
    (the archiver writes its temporary files hidden)."""
    files: list[Path] = []
    for root, directories, names in os.walk(directory):
        directories[:] = [d for d in directories if not d.startswith(".")]
        for name in names:
            if name.startswith(".") or not name.endswith(ARCHIVE_SUFFIXES):
                continue
            candidate = Path(root, name)
            if candidate.is_file():
                files.append(candidate)
    return files


def _file_source(path: Path) -> Source:
    def opener() -> BinaryIO:
        try:
            return path.open("rb")
        except OSError as exc:
            raise ArchiveError(f"{path}: cannot open: {exc.strerror or exc}") from None

    def ranger(start: int, size: int) -> bytes:
        with opener() as stream:
            stream.seek(start)
            return stream.read(size)

    def indexer() -> bytes | mmap.mmap | None:
        try:
            with open(f"{path}{INDEX_SUFFIX}", "rb") as file:
                # Mapped, not copied: the columns are views of the page cache. Indexes are
                # written whole under a temporary name, then renamed: never changed in place.
                if os.fstat(file.fileno()).st_size == 0:
                    return b""
                return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError:
            return None

    return Source(str(path), path.stat().st_size, opener, ranger, indexer)


def _default_s3_client() -> Any:
    import boto3

    # The default chain: AWS_ENDPOINT_URL(_S3), profiles, instance roles.
    return boto3.client("s3")


def _s3_sources(url: str, client: Any) -> list[Source]:
    from botocore.exceptions import BotoCoreError, ClientError

    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ArchiveError(f"{url}: not an S3 URL; expected s3://bucket/prefix")
    bucket = parts.netloc
    prefix = parts.path.strip("/")
    # A prefix is a folder, as the archiver writes it: s3://b/runs is not s3://b/runs2.
    prefix = f"{prefix}/" if prefix else ""
    sizes: dict[str, int] = {}
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                      Prefix=prefix):
            for item in page.get("Contents", []):
                key = str(item["Key"])
                if not key.endswith("/"):  # folder markers
                    sizes[key] = int(item["Size"])
    except (BotoCoreError, ClientError) as exc:
        raise ArchiveError(f"{url}: cannot list the objects: {exc}") from None
    # The index of each key, when listed beside it: never read as data.
    sources = [_s3_source(client, bucket, key, size, key + INDEX_SUFFIX in sizes)
               for key, size in sizes.items() if not key.endswith(INDEX_SUFFIX)]
    if not sources:
        raise ArchiveError(f"{url}: no objects under this prefix")
    return sources


def _s3_source(client: Any, bucket: str, key: str, size: int, indexed: bool) -> Source:
    def get(name: str, **options: str) -> _Readable:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body: _Readable = client.get_object(Bucket=bucket, Key=name, **options)["Body"]
        except (BotoCoreError, ClientError) as exc:
            raise ArchiveError(f"s3://{bucket}/{name}: cannot read: {exc}") from None
        return body

    def opener() -> _Readable:
        return get(key)

    def ranger(start: int, length: int) -> bytes:
        if length <= 0 or start >= size:
            return b""
        body = get(key, Range=f"bytes={start}-{min(start + length, size) - 1}")
        try:
            return body.read()
        finally:
            body.close()

    def indexer() -> bytes | None:
        if not indexed:
            return None
        body = get(key + INDEX_SUFFIX)
        try:
            return body.read()
        finally:
            body.close()

    return Source(f"s3://{bucket}/{key}", size, opener, ranger, indexer)
