"""Reading an untrusted archive: caps on lines, sizes and entries; the manifest checked field
by field; the bytes imported are the bytes checked."""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from .export import FORMAT, FORMAT_VERSION, MANIFEST, ArchiveError, _checksum

MAX_LINE_BYTES = 8 * 1024 * 1024
MAX_TOTAL_BYTES = 4 * 1024 * 1024 * 1024
# The manifest is parsed whole: a dozen entries take a few kilobytes.
MAX_MANIFEST_BYTES = 1024 * 1024
READ_BYTES = 64 * 1024
# The zip's central directory, read whole by zipfile: an export has one entry per table and
# the manifest.
MAX_ENTRIES = 1000
MAX_DIRECTORY_BYTES = 1024 * 1024
ECD_ENTRIES_TOTAL, ECD_SIZE = 4, 5  # positions in zipfile's end of central directory record
# A batch is sent as one JSON parameter: bounded by rows and by bytes of lines.
IMPORT_BATCH_BYTES = 8 * 1024 * 1024
_SHA256_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class ImportLimits:
    """What an import reads at most: the longest line, and the archive's uncompressed size."""

    max_line_bytes: int = MAX_LINE_BYTES
    max_total_bytes: int = MAX_TOTAL_BYTES


@dataclass(frozen=True)
class ManifestEntry:
    table: str
    file: str
    rows: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """The manifest of an archive, every field checked for its type."""

    shop_domain: str
    shop_name: str
    schema_version: dict[str, str]
    entries: tuple[ManifestEntry, ...]

    def entry(self, table: str) -> ManifestEntry:
        return next(entry for entry in self.entries if entry.table == table)


@dataclass(frozen=True)
class ImportResult:
    """Rows written per table, and the membership rows the archive held but the import did not
    write (an import grants no one access)."""

    written: dict[str, int]
    memberships_not_imported: int


def _json(data: bytes, *, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        # ValueError: not JSON, or not UTF-8; RecursionError: nested deeper than the parser goes.
        raise ArchiveError(f"{what}: not JSON") from exc


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _manifest_entry(raw: Any, position: int) -> ManifestEntry:
    where = f"{MANIFEST}: tables[{position}]"
    if not isinstance(raw, dict):
        raise ArchiveError(f"{where} is not an object")
    missing = sorted({"table", "file", "rows", "sha256"} - set(raw))
    if missing:
        raise ArchiveError(f"{where} lacks {', '.join(missing)}")
    table, file, rows, sha256 = raw["table"], raw["file"], raw["rows"], raw["sha256"]
    if not isinstance(table, str) or not table:
        raise ArchiveError(f"{where}.table is not a table name")
    # The import reads `<table>.ndjson`: a manifest naming another file would have its checksum
    # verified on a file that is never imported.
    if file != f"{table}.ndjson":
        raise ArchiveError(f"{where}.file is {file!r}, the archive's file of {table!r} is '{table}.ndjson'")
    if not _is_int(rows) or rows < 0:
        raise ArchiveError(f"{where}.rows is not a row count")
    if not isinstance(sha256, str) or len(sha256) != 64 or not set(sha256) <= _SHA256_HEX:
        raise ArchiveError(f"{where}.sha256 is not a SHA-256")
    return ManifestEntry(table=table, file=file, rows=rows, sha256=sha256)


def _parse_manifest(data: bytes) -> Manifest:
    manifest = _json(data, what=MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(f"not a shop archive: format is not {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArchiveError(f"archive format_version {manifest.get('format_version')!r}, expected {FORMAT_VERSION}")
    shop = manifest.get("shop")
    if not isinstance(shop, dict) or not isinstance(shop.get("domain"), str):
        raise ArchiveError(f"{MANIFEST}: shop is not an object with a domain")
    name = shop.get("name")
    if name is not None and not isinstance(name, str):
        raise ArchiveError(f"{MANIFEST}: shop.name is not text")
    version = manifest.get("schema_version")
    if not isinstance(version, dict) or not all(isinstance(value, str) for value in version.values()):
        raise ArchiveError(f"{MANIFEST}: schema_version is not an object of migration names")
    raw_entries = manifest.get("tables")
    if not isinstance(raw_entries, list):
        raise ArchiveError(f"{MANIFEST}: tables is not a list")
    entries = tuple(_manifest_entry(raw, position) for position, raw in enumerate(raw_entries))
    tables = [entry.table for entry in entries]
    if len(set(tables)) != len(tables):
        raise ArchiveError(f"{MANIFEST}: a table is listed twice")
    if manifest.get("checksum") != _checksum(raw_entries):
        raise ArchiveError("the manifest's checksum does not match its tables")
    return Manifest(shop_domain=shop["domain"], shop_name=name or "", schema_version=version, entries=entries)


def _check_member(info: zipfile.ZipInfo) -> None:
    if info.flag_bits & 0x1:
        raise ArchiveError(f"{info.filename} is encrypted")
    # What export writes. Other methods (bzip2, lzma) decompress without an output bound in
    # zipfile: a few kilobytes could expand to gigabytes in one call.
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ArchiveError(f"{info.filename} is compressed with method {info.compress_type}, not deflate")


def _read_manifest(archive: zipfile.ZipFile) -> Manifest:
    try:
        info = archive.getinfo(MANIFEST)
    except KeyError as exc:
        raise ArchiveError(f"not a shop archive: no {MANIFEST}") from exc
    _check_member(info)
    if info.file_size > MAX_MANIFEST_BYTES:
        raise ArchiveError(f"{MANIFEST} is {info.file_size} bytes, more than a manifest's {MAX_MANIFEST_BYTES}")
    try:
        with archive.open(info) as member:
            data = member.read(MAX_MANIFEST_BYTES + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise ArchiveError(f"{MANIFEST} is damaged: {exc}") from exc
    return _parse_manifest(data)


def _check_layout(archive: zipfile.ZipFile, manifest: Manifest, *, limits: ImportLimits) -> None:
    """The zip holds exactly the manifest and the files it lists, each once, in a form this
    reader bounds, and expands to no more than the total cap (sizes from the central
    directory; zipfile never returns more than a member's recorded size)."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        # zipfile opens the last entry of a name: a checksum could be verified on another one.
        raise ArchiveError(f"the zip holds a name twice: {sorted(n for n, c in Counter(names).items() if c > 1)}")
    expected = {MANIFEST} | {entry.file for entry in manifest.entries}
    if set(names) != expected:
        extra, missing = sorted(set(names) - expected), sorted(expected - set(names))
        raise ArchiveError(f"the zip's files differ from the manifest: extra {extra}, missing {missing}")
    for info in infos:
        _check_member(info)
    total = sum(info.file_size for info in infos)
    if total > limits.max_total_bytes:
        raise ArchiveError(
            f"the archive expands to {total} bytes, more than the {limits.max_total_bytes} bytes an import reads "
            "(max_total_bytes; import_shop --max-total-bytes raises it for an archive you trust)"
        )


def _verified_lines(archive: zipfile.ZipFile, entry: ManifestEntry, *, limits: ImportLimits) -> Iterator[bytes]:
    """The lines of `entry`'s file, read in pieces of READ_BYTES, refused as soon as one is
    longer than the line cap; once the file is read, its rows and SHA-256 are compared with
    the manifest. Every pass of the import reads through here, so what is checked is what is
    imported (a failure after rows were written rolls the import back)."""
    digest, rows, size = hashlib.sha256(), 0, 0
    pending: list[bytes] = []
    pending_size = 0

    def too_long() -> ArchiveError:
        return ArchiveError(
            f"{entry.file} line {rows + 1} is longer than the {limits.max_line_bytes} bytes a line may hold "
            "(max_line_bytes; import_shop --max-line-bytes raises it for an archive you trust)"
        )

    try:
        with archive.open(entry.file) as member:
            while chunk := member.read(READ_BYTES):
                size += len(chunk)
                if size > limits.max_total_bytes:
                    raise ArchiveError(f"{entry.file} expands to more than {limits.max_total_bytes} bytes")
                digest.update(chunk)
                start = 0
                while (end := chunk.find(b"\n", start)) >= 0:
                    if pending_size + end + 1 - start > limits.max_line_bytes:
                        raise too_long()
                    line = b"".join([*pending, chunk[start : end + 1]]) if pending else chunk[start : end + 1]
                    pending, pending_size = [], 0
                    rows += 1
                    yield line
                    start = end + 1
                if start < len(chunk):
                    pending.append(chunk[start:])
                    pending_size += len(chunk) - start
                    if pending_size > limits.max_line_bytes:
                        raise too_long()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise ArchiveError(f"{entry.file} is damaged: {exc}") from exc
    if pending:
        rows += 1
        yield b"".join(pending)
    if rows != entry.rows or digest.hexdigest() != entry.sha256:
        raise ArchiveError(f"{entry.file}: rows or SHA-256 differ from the manifest (damaged archive)")


def _check_directory(file: IO[bytes]) -> None:
    """Refuse a zip whose central directory is larger than a shop archive's before zipfile
    reads it: zipfile keeps an object of about 500 bytes per entry, so a directory of a million
    empty entries (a 100 MB file) would take half a gigabyte. The counts come from zipfile's own
    reader of the end of central directory record (ZIP64 included), so they are the ones
    zipfile then uses; a file without the record is left to zipfile, which refuses it."""
    end_record = getattr(zipfile, "_EndRecData", None)
    if end_record is None:  # a Python whose zipfile no longer has it: zipfile's own limits only
        return
    try:
        record = end_record(file)
        file.seek(0)
    except (OSError, ValueError, struct.error) as exc:
        raise ArchiveError(f"not a zip archive: {exc}") from exc
    if record is None:
        return
    entries, directory_size = record[ECD_ENTRIES_TOTAL], record[ECD_SIZE]
    if entries > MAX_ENTRIES or directory_size > MAX_DIRECTORY_BYTES:
        raise ArchiveError(
            f"the zip lists {entries} entries in {directory_size} bytes; a shop archive has at most "
            f"{MAX_ENTRIES} entries in {MAX_DIRECTORY_BYTES} bytes"
        )


def archive_manifest(archive: zipfile.ZipFile, *, limits: ImportLimits | None = None) -> Manifest:
    """The archive's manifest, checked: its fields, its checksum, the zip's layout and sizes,
    and every file's rows and SHA-256 (read through once, streaming, under the line cap)."""
    limits = limits or ImportLimits()
    manifest = _read_manifest(archive)
    _check_layout(archive, manifest, limits=limits)
    for entry in manifest.entries:
        for _ in _verified_lines(archive, entry, limits=limits):
            pass
    return manifest
