"""Data retention: delete measurements older than the schema's retention period, every shop.

Each model declares its retention next to its fields (`tenancy.tables.Retention`);
`retention_rules()` collects the declarations (the schema's "Data Retention" section). A row is expired when its date is
more than `days` days before `today` (UTC days): with `today` 2026-06-30 and 365 days, a
ranking tracked on 2025-06-30 is kept and one tracked on 2025-06-29 is deleted. Timestamps
(`measured_at`) are compared with the start (00:00 UTC) of the first day kept.

Deleting runs as `service_role`, across shops on purpose. On the monthly partitioned tables
(tenancy/partitions.py) a month whose every row is expired goes at once: its partition is
dropped (no row-by-row delete, nothing left for VACUUM). What remains (the expired days of the
month that straddles the cut-off, and old rows in a DEFAULT partition) is deleted in bounded
batches of `DELETE ... WHERE (id, key) IN (SELECT id, key ... LIMIT n)`, each in its own
transaction: locks are held for one batch only, and concurrent ingestion of recent rows is
never blocked for long.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, models

from .partitions import monthly_partitions, next_month, partition_drop, partition_row_count, partitioned_table
from .scope import atomic_scope, service_scope
from .tables import Retention, declared_tables

DEFAULT_BATCH_SIZE = 5_000
MAX_BATCH_SIZE = 100_000

# (table, rows removed so far, rows expired when the table was counted)
RetentionProgress = Callable[[str, int, int], None]
# (partition dropped, or that would be dropped; its rows)
PartitionDropped = Callable[[str, int], None]


@dataclass(frozen=True)
class RetentionRule:
    """How long one table's rows are kept; `days` None means forever."""

    model: type[models.Model]
    column: str | None
    days: int | None

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    def cutoff(self, today: datetime.date) -> datetime.date | datetime.datetime:
        """The first date (or instant) kept; rows before it are expired."""
        assert self.days is not None and self.column is not None
        first_kept = Retention(self.column, self.days).first_kept(today)
        if isinstance(self.model._meta.get_field(self.column), models.DateTimeField):
            return datetime.datetime.combine(first_kept, datetime.time.min, tzinfo=datetime.UTC)
        return first_kept


def retention_rules() -> tuple[RetentionRule, ...]:
    """Every table whose model declares a retention (kept forever included), in the app
    registry's order."""
    return tuple(
        RetentionRule(declared.model, declared.traits.retention.column, declared.traits.retention.days)
        for declared in declared_tables()
        if declared.traits.retention is not None
    )


def retention_rule(table: str) -> RetentionRule | None:
    return next((rule for rule in retention_rules() if rule.table == table), None)


def delete_statements(rule: RetentionRule) -> tuple[str, str]:
    """(count statement, delete-one-batch statement) of a rule; names are quoted identifiers
    from the models, values are bound parameters (`cutoff`, and `batch` for the delete)."""
    assert rule.column is not None
    quote = connection.ops.quote_name
    table = quote(rule.table)
    field = rule.model._meta.get_field(rule.column)
    assert isinstance(field, models.Field) and field.column is not None
    column = quote(field.column)
    pk = quote(rule.model._meta.pk.column)
    count = f"SELECT count(*) FROM {table} WHERE {column} < %(cutoff)s"
    # On a partitioned table both conditions on the key matter: the sub-select's prunes the
    # search for a batch, the outer one the partitions the DELETE joins against (without it
    # every batch scanned every partition: 2.85 s instead of ~0.4 s for a month of 1M rows).
    delete = (
        f"DELETE FROM {table} WHERE {column} < %(cutoff)s AND ({pk}, {column}) IN "
        f"(SELECT {pk}, {column} FROM {table} WHERE {column} < %(cutoff)s LIMIT %(batch)s)"
    )
    return count, delete


def expired_rows_purge(
    *,
    today: datetime.date,
    dry_run: bool,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: RetentionProgress | None = None,
    dropped: PartitionDropped | None = None,
) -> dict[str, int]:
    """Delete (or with `dry_run`, only count) the expired rows of every shop.

    Returns table -> rows removed (or that would be removed) for each table with a retention
    period. Not decorated with `transaction.atomic` on purpose: each batch commits on its own.
    """
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}, not {batch_size}")
    report = progress or (lambda _table, _done, _total: None)
    removed: dict[str, int] = {}
    for rule in retention_rules():
        if rule.days is None:
            continue
        count_sql, delete_sql = delete_statements(rule)
        cutoff = rule.cutoff(today)
        with atomic_scope(service_scope()), connection.cursor() as cursor:
            cursor.execute(count_sql, {"cutoff": cutoff})
            row = cursor.fetchone()
        expired = int(row[0]) if row else 0
        done = 0
        report(rule.table, done, expired)
        spec = partitioned_table(rule.table)
        if spec is not None:
            for month, name in sorted(monthly_partitions(spec).items()):
                if spec.bound(next_month(month)) > cutoff:
                    continue
                rows = partition_row_count(spec, month)
                if not dry_run:
                    partition_drop(spec, month)
                    done += rows
                    report(rule.table, done, expired)
                if dropped is not None:
                    dropped(name, rows)
        if not dry_run:
            while True:
                with atomic_scope(service_scope()), connection.cursor() as cursor:
                    cursor.execute(delete_sql, {"cutoff": cutoff, "batch": batch_size})
                    deleted = cursor.rowcount
                done += deleted
                report(rule.table, done, expired)
                if deleted < batch_size:
                    break
        removed[rule.table] = expired if dry_run else done
    return removed
