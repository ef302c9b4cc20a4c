"""Importing an archive into a shop that holds no data: all or nothing, new ids, no memberships."""

from __future__ import annotations

import contextlib
import json
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO, Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from tenancy.models import Shop, User
from tenancy.scope import atomic_scope, service_scope

from ..registry import MEMBERSHIPS_TABLE, SHOP_COLUMN, TablePlan, shop_data_plan
from .export import IMPORT_BATCH_ROWS, ArchiveError, _quote, _service_counts, schema_version
from .reading import (
    IMPORT_BATCH_BYTES,
    ImportLimits,
    ImportResult,
    Manifest,
    ManifestEntry,
    _check_directory,
    _is_int,
    _json,
    _verified_lines,
    archive_manifest,
)


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
