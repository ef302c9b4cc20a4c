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
them, the rest (timestamps included) is kept as exported.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from typing import IO, Any

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from tenancy.models import MembershipRole, Shop, User
from tenancy.scope import atomic_scope, service_scope, shop_scope

from .registry import MEMBERSHIPS_TABLE, SHOP_COLUMN, TablePlan, directory_plan, shop_data_plan

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


def archive_manifest(archive: zipfile.ZipFile) -> dict[str, Any]:
    """The archive's manifest, checked: format, checksum, and every file's rows and SHA-256
    (read through once, streaming)."""
    try:
        manifest = json.loads(archive.read(MANIFEST))
    except KeyError as exc:
        raise ArchiveError(f"not a shop archive: no {MANIFEST}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{MANIFEST} is not JSON") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(f"not a shop archive: format is not {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArchiveError(f"archive format_version {manifest.get('format_version')!r}, expected {FORMAT_VERSION}")
    entries = manifest.get("tables")
    if not isinstance(entries, list) or manifest.get("checksum") != _checksum(entries):
        raise ArchiveError("the manifest's checksum does not match its tables")
    for entry in entries:
        digest, rows = hashlib.sha256(), 0
        try:
            with archive.open(str(entry["file"])) as member:
                for line in member:
                    digest.update(line)
                    rows += 1
        except KeyError as exc:
            raise ArchiveError(f"{entry.get('file')!r} is listed in the manifest but missing") from exc
        if rows != entry["rows"] or digest.hexdigest() != entry["sha256"]:
            raise ArchiveError(f"{entry['file']}: rows or SHA-256 differ from the manifest (damaged archive)")
    return manifest


def _rows(archive: zipfile.ZipFile, name: str) -> Iterator[dict[str, Any]]:
    with archive.open(name) as member:
        for number, line in enumerate(member, start=1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ArchiveError(f"{name} line {number}: not JSON") from exc
            if not isinstance(row, dict):
                raise ArchiveError(f"{name} line {number}: not an object")
            yield row


def _batches(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


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
    *,
    shop_domain: str,
    id_maps: dict[str, dict[int, int]],
    keep_map: bool,
    using: str,
) -> int:
    table = _quote(plan.table, using=using)
    columns = ", ".join(_quote(column, using=using) for column in plan.columns)
    insert = f"INSERT INTO {table} ({columns}) SELECT {columns} FROM json_populate_recordset(NULL::{table}, %s::json)"
    own_map = id_maps.setdefault(plan.table, {}) if keep_map else {}
    pending_self: list[tuple[int, str, int]] = []  # (new id, column, old referenced id)
    rows_written = 0
    for batch in _batches(_rows(archive, f"{plan.table}.ndjson"), IMPORT_BATCH_ROWS):
        ids = _new_ids(plan.table, len(batch), using=using) if "id" in plan.columns else []
        for position, row in enumerate(batch):
            row[SHOP_COLUMN] = shop_domain
            if ids:
                old, row["id"] = row.get("id"), ids[position]
                if keep_map and old is not None:
                    own_map[int(old)] = ids[position]
            for column, target in plan.references.items():
                old_ref = row.get(column)
                if old_ref is None:
                    continue
                if target == plan.table:
                    pending_self.append((row["id"], column, int(old_ref)))
                    row[column] = None
                    continue
                try:
                    row[column] = id_maps[target][int(old_ref)]
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


def _archive_users(archive: zipfile.ZipFile, plans: list[TablePlan]) -> set[str]:
    users: set[str] = set()
    for plan in plans:
        if plan.has_user:
            users.update(str(row["user_id"]) for row in _rows(archive, f"{plan.table}.ndjson") if row.get("user_id"))
    return users


@transaction.atomic
def shop_import(*, source: IO[bytes] | str, shop_domain: str, using: str = DEFAULT_DB_ALIAS) -> dict[str, int]:
    """Import the archive `source` into `shop_domain` (created if missing), which must hold no
    data; all or nothing. Returns the rows written per table."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"not a zip archive: {exc}") from exc
    with archive:
        manifest = archive_manifest(archive)
        if manifest.get("schema_version") != schema_version(using=using):
            raise ArchiveError(
                f"the archive was exported at schema {manifest.get('schema_version')}, this database is at "
                f"{schema_version(using=using)}: import it with the release that exported it"
            )
        plans = shop_data_plan(using=using)
        membership_plan = directory_plan(MEMBERSHIPS_TABLE, using=using)
        listed = [entry["table"] for entry in manifest["tables"]]
        wanted = [plan.table for plan in plans] + [MEMBERSHIPS_TABLE]
        if sorted(listed) != sorted(wanted):
            raise ArchiveError(f"the archive holds tables {sorted(listed)}, this database expects {sorted(wanted)}")
        with atomic_scope(service_scope(), using=using):
            Shop.objects.using(using).get_or_create(
                domain=shop_domain, defaults={"name": str(manifest["shop"].get("name") or shop_domain)[:200]}
            )
            Shop.objects.using(using).select_for_update().filter(domain=shop_domain).first()
            held = {
                table: count
                for table, count in _service_counts([*plans, membership_plan], shop_domain, using=using).items()
                if count
            }
            if held:
                raise ArchiveError(f"shop {shop_domain!r} is not empty: {held}")
            users = _archive_users(archive, [*plans, membership_plan])
            known = {str(pk) for pk in User.objects.using(using).filter(pk__in=users).values_list("pk", flat=True)}
            if users - known:
                raise ArchiveError(f"users of the archive do not exist here: {sorted(users - known)}")
            referenced = {target for plan in plans for target in plan.references.values()}
            id_maps: dict[str, dict[int, int]] = {}
            written = {}
            for plan in [*plans, membership_plan]:
                written[plan.table] = _insert_table(
                    archive,
                    plan,
                    shop_domain=shop_domain,
                    id_maps=id_maps,
                    keep_map=plan.table in referenced,
                    using=using,
                )
    return written


def export_filename(shop_domain: str, *, now: datetime.datetime | None = None) -> str:
    stamp = (now or timezone.now()).strftime("%Y%m%dT%H%M%SZ")
    return f"{shop_domain}-{stamp}.zip"
