"""Export a shop to an archive and import an archive into an empty shop.

The archive is a zip file: one NDJSON file per table of the shop's data (`<table>.ndjson`,
one `row_to_json` object a line, parents before children, rows by id) plus the shop's
memberships, and `manifest.json` (format, schema version, per table its row count and the
SHA-256 of its file, a checksum over those entries). It is produced in pieces as rows are
read through a server-side cursor, so memory stays flat whatever the shop's size.

Export reads under the shop's own policies: each table is read in a `shop_scope` of the shop
(as an owner, the role the CEO briefings policy asks for), tables whose policies also match
the user (onboarding progress) once per user of the shop. Every table's count is checked
against what `service_role` counts for the shop, so a policy that hid rows (or showed
another shop's) fails the export instead of producing a short archive.

Import writes as `service_role`, all or nothing, into a shop that holds no data yet: ids are
new (taken from each table's sequence), references among the shop's tables are rewritten to
them, the rest (timestamps and `created_by` included) is kept as exported. The archive is
untrusted: lines and the uncompressed size are capped and read in pieces, the bytes imported
are the bytes checked against the manifest, and the memberships it lists are not imported
(an import grants no one access; `shop_import`).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import struct
import uuid
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from tenancy.models import MembershipRole, Shop, User
from tenancy.scope import atomic_scope, service_scope, shop_scope

from .registry import MEMBERSHIPS_TABLE, SHOP_COLUMN, TablePlan, shop_data_plan

FORMAT = "growth-shop-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Rows fetched from the server-side cursor at a time, and bytes buffered before a piece of
# the archive is handed on.
FETCH_ROWS = 2_000
CHUNK_BYTES = 256 * 1024
IMPORT_BATCH_ROWS = 1_000


class ArchiveError(ValueError):
    """An export that cannot be completed, or an archive that cannot be imported."""


def _quote(name: str, *, using: str) -> str:
    return connections[using].ops.quote_name(name)


def schema_version(*, using: str = DEFAULT_DB_ALIAS) -> dict[str, str]:
    """The newest applied migration of each app that owns a table of the archive."""
    tables = {plan.table for plan in shop_data_plan(using=using)} | {MEMBERSHIPS_TABLE}
    labels = sorted({model._meta.app_label for model in apps.get_models() if model._meta.db_table in tables})
    applied = MigrationRecorder(connections[using]).applied_migrations()
    return {label: max((name for app, name in applied if app == label), default="") for label in labels}


def _checksum(entries: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(entries, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class _Sink(io.RawIOBase):
    """A write-only, unseekable file that collects what zipfile writes until it is taken."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self.size += len(chunk)
        return len(chunk)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts, self.size = [], 0
        return data


def _service_counts(plans: list[TablePlan], shop_domain: str, *, using: str) -> dict[str, int]:
    counts = {}
    with atomic_scope(service_scope(), using=using), connections[using].cursor() as cursor:
        for plan in plans:
            cursor.execute(
                f"SELECT count(*) FROM {_quote(plan.table, using=using)} WHERE {SHOP_COLUMN} = %s", [shop_domain]
            )
            row = cursor.fetchone()
            counts[plan.table] = int(row[0]) if row else 0
    return counts


def _users_of(plan: TablePlan, shop_domain: str, *, using: str) -> list[str]:
    with atomic_scope(service_scope(), using=using), connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT user_id::text FROM {_quote(plan.table, using=using)} WHERE {SHOP_COLUMN} = %s ORDER BY 1",
            [shop_domain],
        )
        return [str(user_id) for (user_id,) in cursor.fetchall()]


def _lines(table: str, shop_domain: str, *, order: str, using: str) -> Iterator[bytes]:
    """The shop's rows of `table` as NDJSON lines, through a server-side cursor, in the scope
    the caller entered. The WHERE repeats the policy: a wrong policy then shows fewer rows,
    never another shop's (and the count check fails)."""
    sql = f"SELECT row_to_json(t)::text FROM {_quote(table, using=using)} t WHERE t.{SHOP_COLUMN} = %s ORDER BY {order}"
    with connections[using].chunked_cursor() as cursor:
        cursor.execute(sql, [shop_domain])
        while rows := cursor.fetchmany(FETCH_ROWS):
            for (text,) in rows:
                yield text.encode() + b"\n"


def _table_lines(plan: TablePlan, shop_domain: str, *, using: str) -> Iterator[bytes]:
    if not plan.has_user:
        with atomic_scope(shop_scope(shop=shop_domain, subject=None, member_role=MembershipRole.OWNER), using=using):
            yield from _lines(plan.table, shop_domain, order="t.id", using=using)
        return
    # The policies match the user too: read each user's rows as that user.
    for user_id in _users_of(plan, shop_domain, using=using):
        scope = shop_scope(shop=shop_domain, subject=user_id, member_role=MembershipRole.OWNER)
        with atomic_scope(scope, using=using):
            yield from _lines(plan.table, shop_domain, order="t.user_id, t.id", using=using)


def _membership_lines(shop_domain: str, *, using: str) -> Iterator[bytes]:
    # A directory table without row level security: read as the login role.
    yield from _lines(MEMBERSHIPS_TABLE, shop_domain, order="t.user_id", using=using)


def shop_export_chunks(*, shop_domain: str, using: str = DEFAULT_DB_ALIAS) -> Iterator[bytes]:
    """The archive of `shop_domain`, in pieces of about CHUNK_BYTES.

    Runs in a transaction of its own (REPEATABLE READ when it is the outermost one, so that
    every table is read from one snapshot); raises ArchiveError for an unknown shop or when a
    table's rows under the shop's policies differ from the shop's rows."""
    connection = connections[using]
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=using):
        if outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        shop = Shop.objects.using(using).filter(domain=shop_domain).first()
        if shop is None:
            raise ArchiveError(f"no shop {shop_domain!r}")
        plans = shop_data_plan(using=using)
        expected = _service_counts(plans, shop_domain, using=using)
        sink = _Sink()
        entries: list[dict[str, Any]] = []
        with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
            sources: list[tuple[str, Iterator[bytes], int | None]] = [
                (plan.table, _table_lines(plan, shop_domain, using=using), expected[plan.table]) for plan in plans
            ]
            sources.append((MEMBERSHIPS_TABLE, _membership_lines(shop_domain, using=using), None))
            for table, lines, count in sources:
                digest, rows = hashlib.sha256(), 0
                with archive.open(f"{table}.ndjson", mode="w", force_zip64=True) as member:
                    for line in lines:
                        member.write(line)
                        digest.update(line)
                        rows += 1
                        if sink.size >= CHUNK_BYTES:
                            yield sink.take()
                if count is not None and rows != count:
                    raise ArchiveError(
                        f"{table}: {rows} rows read under the shop's policies, {count} rows belong to the shop"
                    )
                entries.append({"table": table, "file": f"{table}.ndjson", "rows": rows, "sha256": digest.hexdigest()})
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "shop": {"domain": shop.domain, "name": shop.name},
                "schema_version": schema_version(using=using),
                "exported_at": timezone.now().isoformat(),
                "tables": entries,
                "checksum": _checksum(entries),
            }
            archive.writestr(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
        yield sink.take()


def shop_export_write(*, shop_domain: str, target: IO[bytes], using: str = DEFAULT_DB_ALIAS) -> int:
    """Write the archive of `shop_domain` to `target`; returns its size in bytes."""
    size = 0
    for chunk in shop_export_chunks(shop_domain=shop_domain, using=using):
        target.write(chunk)
        size += len(chunk)
    return size


# --- Import -------------------------------------------------------------------------------
# An archive is untrusted input: an owner downloads their shop's archive from the API, and
# whoever hands one to `import_shop` may have edited it. So the import reads nothing it has
# not bounded, checks the bytes it actually reads (not a file the manifest merely names), and
# turns every malformed archive into one ArchiveError before anything is written.

# Caps (docs/operations.md). A line is one row: the largest legitimate ones are knowledge
# documents (100,000 characters, their search vector and embeddings: estimated at most about
# 2 MB). A line is parsed whole, which costs up to about 25 times its length in Python objects
# (an 8 MiB line of empty arrays: 202 MiB), so 8 MiB bounds one row's parse near 200 MiB. The
# total bounds what a small, highly compressed zip may expand to (time and the three passes
# over it, not memory: every read is streamed). `import_shop --max-line-bytes` and
# `--max-total-bytes` raise them for an archive one trusts.
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


def _rows(
    archive: zipfile.ZipFile, entry: ManifestEntry, *, limits: ImportLimits
) -> Iterator[tuple[dict[str, Any], int]]:
    """(row, size of its line) of `entry`'s file."""
    for number, line in enumerate(_verified_lines(archive, entry, limits=limits), start=1):
        row = _json(line, what=f"{entry.file} line {number}")
        if not isinstance(row, dict):
            raise ArchiveError(f"{entry.file} line {number}: not an object")
        yield row, len(line)


def _batches(rows: Iterator[tuple[dict[str, Any], int]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for row, line_size in rows:
        batch.append(row)
        size += line_size
        if len(batch) >= IMPORT_BATCH_ROWS or size >= IMPORT_BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _row_id(value: Any, *, where: str) -> int:
    if not _is_int(value):
        raise ArchiveError(f"{where} = {str(value)[:40]!r} is not an id")
    return int(value)


def _new_ids(table: str, count: int, *, using: str) -> list[int]:
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [_quote(table, using=using), count],
        )
        return sorted(int(value) for (value,) in cursor.fetchall())


def _insert_table(
    archive: zipfile.ZipFile,
    plan: TablePlan,
    entry: ManifestEntry,
    *,
    shop_domain: str,
    id_maps: dict[str, dict[int, int]],
    keep_map: bool,
    limits: ImportLimits,
    using: str,
) -> int:
    table = _quote(plan.table, using=using)
    columns = ", ".join(_quote(column, using=using) for column in plan.columns)
    insert = f"INSERT INTO {table} ({columns}) SELECT {columns} FROM json_populate_recordset(NULL::{table}, %s::json)"
    own_map = id_maps.setdefault(plan.table, {}) if keep_map else {}
    pending_self: list[tuple[int, str, int]] = []  # (new id, column, old referenced id)
    rows_written = 0
    for batch in _batches(_rows(archive, entry, limits=limits)):
        ids = _new_ids(plan.table, len(batch), using=using) if "id" in plan.columns else []
        for position, row in enumerate(batch):
            row[SHOP_COLUMN] = shop_domain
            if ids:
                old, row["id"] = row.get("id"), ids[position]
                if keep_map and old is not None:
                    own_map[_row_id(old, where=f"{plan.table}.id")] = ids[position]
            for column, target in plan.references.items():
                old_ref = row.get(column)
                if old_ref is None:
                    continue
                old_ref = _row_id(old_ref, where=f"{plan.table}.{column}")
                if target == plan.table:
                    pending_self.append((row["id"], column, old_ref))
                    row[column] = None
                    continue
                try:
                    row[column] = id_maps[target][old_ref]
                except KeyError as exc:
                    raise ArchiveError(
                        f"{plan.table}.{column} = {old_ref} names no row of {target} in the archive"
                    ) from exc
        with connections[using].cursor() as cursor:
            cursor.execute(insert, [json.dumps(batch)])
        rows_written += len(batch)
    for column in {column for _, column, _ in pending_self}:
        pairs = [(new_id, own_map.get(old_ref)) for new_id, c, old_ref in pending_self if c == column]
        if any(new_ref is None for _, new_ref in pairs):
            raise ArchiveError(f"{plan.table}.{column} names a row that is not in the archive")
        with connections[using].cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS t SET {_quote(column, using=using)} = v.ref "
                "FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, ref) WHERE t.id = v.id",
                [[p[0] for p in pairs], [p[1] for p in pairs]],
            )
    return rows_written


def _archive_users(
    archive: zipfile.ZipFile, plans: list[TablePlan], manifest: Manifest, *, limits: ImportLimits
) -> set[uuid.UUID]:
    users: set[uuid.UUID] = set()
    for plan in plans:
        if not plan.has_user:
            continue
        for row, _ in _rows(archive, manifest.entry(plan.table), limits=limits):
            if row.get("user_id") is None:
                continue
            try:
                users.add(uuid.UUID(str(row["user_id"])))
            except ValueError as exc:
                raise ArchiveError(f"{plan.table}.user_id = {str(row['user_id'])[:40]!r} is not a user id") from exc
    return users


@transaction.atomic
def shop_import(
    *,
    source: IO[bytes] | str,
    shop_domain: str,
    limits: ImportLimits | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> ImportResult:
    """Import the archive `source` into `shop_domain` (created if missing), which must hold no
    data; all or nothing. Raises ArchiveError for any archive it will not import.

    The shop's data is imported; its memberships are not: an archive is a file anyone may have
    edited, and a membership row in it would give whoever it names access to the shop (an
    existing superuser became an owner that way). Access to the imported shop is granted as to
    any shop: by staff in the admin, or by a session token's first use (the first user of a
    shop without an owner becomes its owner). `created_by` is kept as exported: it records who
    wrote a row where it was exported, is not verified, and nothing reads it to grant access.
    `user_id` of the user tables must name existing users; such a row gives its user nothing
    either without a membership."""
    limits = limits or ImportLimits()
    with contextlib.ExitStack() as stack:
        try:
            file = stack.enter_context(open(source, "rb")) if isinstance(source, str) else source
        except FileNotFoundError as exc:
            raise ArchiveError(f"no such file: {source}") from exc
        except OSError as exc:
            raise ArchiveError(f"cannot read {source}: {exc}") from exc
        _check_directory(file)
        try:
            archive = stack.enter_context(zipfile.ZipFile(file))
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as exc:
            raise ArchiveError(f"not a zip archive: {exc}") from exc
        return _import_archive(archive, shop_domain=shop_domain, limits=limits, using=using)


def _import_archive(archive: zipfile.ZipFile, *, shop_domain: str, limits: ImportLimits, using: str) -> ImportResult:
    """The import itself, once the zip is open (shop_import's transaction)."""
    manifest = archive_manifest(archive, limits=limits)
    if manifest.schema_version != schema_version(using=using):
        raise ArchiveError(
            f"the archive was exported at schema {manifest.schema_version}, this database is at "
            f"{schema_version(using=using)}: import it with the release that exported it"
        )
    plans = shop_data_plan(using=using)
    listed = [entry.table for entry in manifest.entries]
    wanted = [plan.table for plan in plans] + [MEMBERSHIPS_TABLE]
    if sorted(listed) != sorted(wanted):
        raise ArchiveError(f"the archive holds tables {sorted(listed)}, this database expects {sorted(wanted)}")
    with atomic_scope(service_scope(), using=using):
        Shop.objects.using(using).get_or_create(
            domain=shop_domain, defaults={"name": (manifest.shop_name or shop_domain)[:200]}
        )
        Shop.objects.using(using).select_for_update().filter(domain=shop_domain).first()
        # Memberships are not written, so a shop whose members exist (staff granted an owner
        # before the restore) is still empty.
        held = {table: count for table, count in _service_counts(plans, shop_domain, using=using).items() if count}
        if held:
            raise ArchiveError(f"shop {shop_domain!r} is not empty: {held}")
        users = _archive_users(archive, plans, manifest, limits=limits)
        known = set(User.objects.using(using).filter(pk__in=users).values_list("pk", flat=True))
        if users - known:
            raise ArchiveError(f"users of the archive do not exist here: {sorted(str(u) for u in users - known)}")
        referenced = {target for plan in plans for target in plan.references.values()}
        id_maps: dict[str, dict[int, int]] = {}
        written = {}
        for plan in plans:
            written[plan.table] = _insert_table(
                archive,
                plan,
                manifest.entry(plan.table),
                shop_domain=shop_domain,
                id_maps=id_maps,
                keep_map=plan.table in referenced,
                limits=limits,
                using=using,
            )
    return ImportResult(written=written, memberships_not_imported=manifest.entry(MEMBERSHIPS_TABLE).rows)


def export_filename(shop_domain: str, *, now: datetime.datetime | None = None) -> str:
    stamp = (now or timezone.now()).strftime("%Y%m%dT%H%M%SZ")
    return f"{shop_domain}-{stamp}.zip"
