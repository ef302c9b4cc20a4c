"""Writing a shop's archive: NDJSON per table read under the shop's own policies, and the manifest."""

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

from tenancy.models import MembershipRole, Shop
from tenancy.scope import atomic_scope, service_scope, shop_scope

from ..registry import MEMBERSHIPS_TABLE, SHOP_COLUMN, TablePlan, shop_data_plan

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


def export_filename(shop_domain: str, *, now: datetime.datetime | None = None) -> str:
    stamp = (now or timezone.now()).strftime("%Y%m%dT%H%M%SZ")
    return f"{shop_domain}-{stamp}.zip"
