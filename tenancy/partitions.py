"""Monthly range partitions of the high-volume measurement tables.

The tables whose models declare `partition_by` (tenancy/tables.py) - today `ad_performance`
(by `date`), `seo_rankings` (by `tracked_on`) and `social_analytics` (by `measured_at`, months
in UTC) - are partitioned by month (migration operation `PartitionByMonth`). Each has one
partition a month, named `<table>_pYYYY_MM`, and a DEFAULT partition, `<table>_default`, so
that a row is never refused for its date: a row of a month without a partition lands there
until `partitions_ensure` moves it.

Security: the parent carries the policies (queries, the API and every service address the
parent, and PostgreSQL applies only the parent's policies to rows reached through it). Every
partition has row level security enabled and forced, no policy and no privileges for any
scope role, so addressing a partition by name shows nothing to anyone.

`partitions_ensure` (run by `manage.py ensure_partitions`, and after every `migrate`) creates
the partitions from the start of each table's retention window up to a few months ahead, and
moves rows of those months out of the DEFAULT partition. Retention drops whole expired
partitions (see tenancy/retention.py).
"""

from __future__ import annotations

import datetime
import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from psycopg.pq import TransactionStatus

from .rls import FrozenSqlOperation
from .scope import SCOPE_ROLES, atomic_scope, service_scope
from .tables import Retention, declaration, declared_tables

DEFAULT_MONTHS_AHEAD = 3
# Roles that get nothing on a partition (they reach its rows through the parent).
_NO_PRIVILEGES = ", ".join(["PUBLIC", *sorted(SCOPE_ROLES)])
# Partition DDL waits at most this long for the parent's lock instead of queueing every
# reader behind it.
LOCK_TIMEOUT = "10s"


@dataclass(frozen=True)
class PartitionedTable:
    """A table partitioned by month on `column` (a date, or a timestamptz cut at UTC midnight)."""

    app_label: str
    model_name: str
    column: str

    @property
    def model(self) -> type[models.Model]:
        return apps.get_model(self.app_label, self.model_name)

    @property
    def table(self) -> str:
        return self.model._meta.db_table

    @property
    def timestamped(self) -> bool:
        return isinstance(self.model._meta.get_field(self.column), models.DateTimeField)

    @property
    def default_partition(self) -> str:
        return f"{self.table}_default"

    def partition(self, month: datetime.date) -> str:
        return f"{self.table}_p{month.year:04d}_{month.month:02d}"

    def bound(self, month: datetime.date) -> datetime.date | datetime.datetime:
        """The partition key value where `month` starts."""
        if self.timestamped:
            return datetime.datetime.combine(month, datetime.time.min, tzinfo=datetime.UTC)
        return month

    def stored_columns(self) -> list[str]:
        """Columns a row copy must write: every concrete column except generated ones."""
        return [
            str(field.column)
            for field in self.model._meta.concrete_fields
            if not getattr(field, "generated", False) and field.column is not None
        ]

    @property
    def retention(self) -> Retention | None:
        traits = declaration(self.model)
        return traits.retention if traits is not None else None


def partitioned_tables() -> tuple[PartitionedTable, ...]:
    """Every table whose model declares `partition_by` (tenancy/tables.py)."""
    return tuple(
        PartitionedTable(declared.app_label, declared.model.__name__, declared.traits.partition_by)
        for declared in declared_tables()
        if declared.traits.partition_by is not None
    )


def partitioned_table(table: str) -> PartitionedTable | None:
    return next((spec for spec in partitioned_tables() if spec.table == table), None)


def month_start(value: datetime.date | datetime.datetime) -> datetime.date:
    if isinstance(value, datetime.datetime):
        value = value.astimezone(datetime.UTC).date()
    return value.replace(day=1)


def next_month(month: datetime.date) -> datetime.date:
    return (month.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)


def months_between(first: datetime.date, last: datetime.date) -> list[datetime.date]:
    """Every month start from `first`'s month to `last`'s month, both included."""
    months: list[datetime.date] = []
    month = month_start(first)
    while month <= last:
        months.append(month)
        month = next_month(month)
    return months


def _quote(name: str) -> str:
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(name)


def partition_lock_down_sql(partition: str) -> list[str]:
    """Row level security on, forced, no policy, no privileges: the parent is the only way in."""
    name = _quote(partition)
    return [
        f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY",
        f"REVOKE ALL ON {name} FROM {_NO_PRIVILEGES}",
    ]


def partition_create_sql(spec: PartitionedTable, month: datetime.date) -> list[str]:
    low, high = spec.bound(month), spec.bound(next_month(month))
    return [
        f"CREATE TABLE IF NOT EXISTS {_quote(spec.partition(month))} PARTITION OF {_quote(spec.table)} "
        f"FOR VALUES FROM ('{low.isoformat()}') TO ('{high.isoformat()}')",
        *partition_lock_down_sql(spec.partition(month)),
    ]


_PARTITION_NAME = re.compile(r"_p(\d{4})_(\d{2})$")


def monthly_partitions(spec: PartitionedTable, *, using: str = DEFAULT_DB_ALIAS) -> dict[datetime.date, str]:
    """month -> partition name, of the monthly partitions attached to the table now."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [spec.table],
        )
        names = [str(row[0]) for row in cursor.fetchall()]
    found: dict[datetime.date, str] = {}
    for name in names:
        match = _PARTITION_NAME.search(name)
        if name.startswith(spec.table) and match:
            found[datetime.date(int(match[1]), int(match[2]), 1)] = name
    return found


def is_partitioned(spec: PartitionedTable, *, using: str = DEFAULT_DB_ALIAS) -> bool:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)", [spec.table])
        row = cursor.fetchone()
    return bool(row and row[0])


def default_rows_condition(spec: PartitionedTable, months: list[datetime.date]) -> tuple[str, list[Any]]:
    """A WHERE condition on the key for the ranges no monthly partition covers, so that a
    query through the parent is pruned to the DEFAULT partition alone (a `tableoid` test is
    not pruned: it would read every partition). `months`: the monthly partitions attached."""
    key = _quote(spec.column)
    if not months:
        return "true", []
    ranges: list[str] = [f"{key} < %s"]
    params: list[Any] = [spec.bound(months[0])]
    for month, following in itertools.pairwise(months):
        if next_month(month) != following:
            ranges.append(f"({key} >= %s AND {key} < %s)")
            params += [spec.bound(next_month(month)), spec.bound(following)]
    ranges.append(f"{key} >= %s")
    params.append(spec.bound(next_month(months[-1])))
    return " OR ".join(ranges), params


def _default_months(spec: PartitionedTable, months: list[datetime.date], *, using: str) -> list[datetime.date]:
    """Months that have rows in the DEFAULT partition, read through the parent (the partition
    itself shows nothing: no policy) with a condition that prunes to that partition."""
    column = _quote(spec.column)
    if spec.timestamped:
        month_of = f"date_trunc('month', {column} AT TIME ZONE 'UTC')::date"
    else:
        month_of = f"date_trunc('month', {column})::date"
    condition, params = default_rows_condition(spec, months)
    with atomic_scope(service_scope(), using=using), connections[using].cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT {month_of} FROM {_quote(spec.table)} WHERE {condition}", params)
        return sorted(row[0] for row in cursor.fetchall())


@dataclass
class EnsureReport:
    """What `partitions_ensure` did (or would do) to one table."""

    table: str
    first_month: datetime.date
    last_month: datetime.date
    created: list[str]
    moved_rows: int
    left_in_default: list[datetime.date]


def partitions_ensure(
    *,
    today: datetime.date,
    months_ahead: int = DEFAULT_MONTHS_AHEAD,
    since: datetime.date | None = None,
    dry_run: bool = False,
    using: str = DEFAULT_DB_ALIAS,
    progress: Callable[[str], None] | None = None,
) -> list[EnsureReport]:
    """Create every monthly partition from the start of the retention window (or `since`) to
    `months_ahead` months after `today`, and move rows of those months out of the DEFAULT
    partition. Idempotent; one transaction per table, under an advisory lock so that two runs
    (a deploy's migrate and the daily job) do not race.

    Rows in the DEFAULT partition outside that range stay there: older ones are expired (the
    retention purge deletes them), far-future ones are most likely wrong and kept for review.
    """
    if months_ahead < 0:
        raise ValueError(f"months_ahead must be 0 or more, not {months_ahead}")
    say = progress or (lambda _message: None)
    reports: list[EnsureReport] = []
    last = month_start(today)
    for _ in range(months_ahead):
        last = next_month(last)
    for spec in partitioned_tables():
        if not is_partitioned(spec, using=using):
            # Not migrated that far (or migrated back): nothing to partition.
            continue
        retention = spec.retention
        if since is not None:
            first = month_start(since)
        elif retention is not None and retention.expires:
            first = month_start(retention.first_kept(today))
        else:
            first = month_start(today)
        wanted = months_between(first, last)
        with transaction.atomic(using=using):
            _lock(spec, using=using)
            existing = monthly_partitions(spec, using=using)
            in_default = _default_months(spec, sorted(existing), using=using)
            missing = [month for month in wanted if month not in existing]
            to_move = [month for month in in_default if first <= month <= last]
            report = EnsureReport(
                table=spec.table,
                first_month=first,
                last_month=last,
                created=[spec.partition(month) for month in missing],
                moved_rows=0,
                left_in_default=[month for month in in_default if month not in to_move],
            )
            if not dry_run:
                report.moved_rows = _create(spec, missing, to_move, using=using)
        for name in report.created:
            say(f"{spec.table}: {'would create' if dry_run else 'created'} {name}")
        if report.moved_rows:
            say(f"{spec.table}: moved {report.moved_rows} rows out of {spec.default_partition}")
        reports.append(report)
    return reports


def _lock(spec: PartitionedTable, *, using: str) -> None:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('partitions:' || %s))", [spec.table])
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        # ALTER/DROP TABLE refuse to run while deferred foreign key checks of rows written
        # earlier in the same transaction are pending (only when called inside a caller's
        # transaction, as tests do): run those checks now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _create(
    spec: PartitionedTable, missing: Sequence[datetime.date], to_move: Sequence[datetime.date], *, using: str
) -> int:
    """Create `missing` partitions; rows of `to_move` months leave the DEFAULT partition.

    PostgreSQL refuses to create a partition whose range has rows in the DEFAULT partition,
    so those months go through a detached DEFAULT partition: create the partitions, copy the
    rows through the parent, delete them from the old DEFAULT, attach it again. It runs as the
    table owner, which is subject to the forced row level security like everyone else; FORCE
    is lifted inside this transaction only, which holds the parent's ACCESS EXCLUSIVE lock
    from the DETACH to the COMMIT, so no other session can see the difference.
    """
    parent, default = _quote(spec.table), _quote(spec.default_partition)
    moved = 0
    with connections[using].cursor() as cursor:
        if to_move:
            cursor.execute(f"ALTER TABLE {parent} DETACH PARTITION {default}")
        for month in missing:
            for statement in partition_create_sql(spec, month):
                cursor.execute(statement)
        if to_move:
            columns = ", ".join(_quote(column) for column in spec.stored_columns())
            key = _quote(spec.column)
            cursor.execute(f"ALTER TABLE {parent} NO FORCE ROW LEVEL SECURITY")
            cursor.execute(f"ALTER TABLE {default} NO FORCE ROW LEVEL SECURITY")
            for month in to_move:
                low, high = spec.bound(month), spec.bound(next_month(month))
                in_month = f"{key} >= %s AND {key} < %s"
                cursor.execute(
                    f"INSERT INTO {parent} ({columns}) SELECT {columns} FROM {default} WHERE {in_month}", [low, high]
                )
                moved += cursor.rowcount
                cursor.execute(f"DELETE FROM {default} WHERE {in_month}", [low, high])
            cursor.execute(f"ALTER TABLE {parent} FORCE ROW LEVEL SECURITY")
            cursor.execute(f"ALTER TABLE {default} FORCE ROW LEVEL SECURITY")
            cursor.execute(f"ALTER TABLE {parent} ATTACH PARTITION {default} DEFAULT")
    return moved


def partition_drop(spec: PartitionedTable, month: datetime.date, *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Drop one month's partition and its rows (retention), in its own short transaction."""
    with transaction.atomic(using=using):
        _lock(spec, using=using)
        with connections[using].cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {_quote(spec.partition(month))}")


def partition_row_count(spec: PartitionedTable, month: datetime.date, *, using: str = DEFAULT_DB_ALIAS) -> int:
    """Rows of one month, counted through the parent (pruned to the month's partition)."""
    key = _quote(spec.column)
    with atomic_scope(service_scope(), using=using), connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {_quote(spec.table)} WHERE {key} >= %s AND {key} < %s",
            [spec.bound(month), spec.bound(next_month(month))],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def parent_index_name(name: str, *, using: str = DEFAULT_DB_ALIAS) -> str:
    """The parent table's index (or constraint) a partition's index belongs to, else `name`.

    A duplicate key is reported under the partition's own index
    (`ad_performance_p2026_11_campaign_id_date_idx`); error messages and field mapping want the
    declared name (`ad_performance_campaign_date_idx`). Callers run this after the failed
    statement's savepoint was rolled back; in an aborted transaction it returns `name`.
    """
    connection = connections[using]
    raw = connection.connection
    if not name or raw is None or raw.info.transaction_status == TransactionStatus.INERROR:
        return name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT parent.relname FROM pg_class child "
            "JOIN pg_inherits i ON i.inhrelid = child.oid JOIN pg_class parent ON parent.oid = i.inhparent "
            "WHERE child.relname = %s AND child.relkind = 'i'",
            [name],
        )
        row = cursor.fetchone()
    return str(row[0]) if row else name


# --- The migration operation ----------------------------------------------------------------


class PartitionByMonth(FrozenSqlOperation):
    """Turn a plain table into one range-partitioned by month on `column`, keeping its name,
    rows, columns, CHECK constraints, indexes, foreign keys and policies; backwards turns it
    into a plain table again.

    The table is rebuilt (PostgreSQL cannot partition a table in place): the old one is
    renamed, a partitioned copy with a DEFAULT partition takes its name and its rows, and the
    old one is dropped; `partitions_ensure` (run after every migrate) then moves the rows into
    monthly partitions. `id` keeps its values and gets a sequence default instead of an
    identity (identity columns on partitioned tables need PostgreSQL 17). Every name and
    statement is frozen in the migration: `indexes` are the CREATE INDEX / ADD CONSTRAINT
    statements of the partitioned table, `plain_indexes` those of the plain one, `secure` the
    row level security statements both need.
    """

    def __init__(
        self,
        table: str,
        column: str,
        columns: list[str],
        indexes: list[str],
        plain_indexes: list[str],
        secure: list[str],
    ) -> None:
        self.table = table
        self.column = column
        self.columns = columns
        self.indexes = indexes
        self.plain_indexes = plain_indexes
        self.secure = secure

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return (
            self.__class__.__qualname__,
            [],
            {
                "table": self.table,
                "column": self.column,
                "columns": self.columns,
                "indexes": self.indexes,
                "plain_indexes": self.plain_indexes,
                "secure": self.secure,
            },
        )

    def _rebuild(self, *, partitioned: bool) -> list[str]:
        table, old = self.table, f"{self.table}_rebuilt"
        seq = f"{table}_id_seq"
        columns = ", ".join(f'"{column}"' for column in self.columns)
        like = "INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMMENTS"
        statements = [
            f"ALTER TABLE {table} RENAME TO {old}",
            f"ALTER SEQUENCE {seq} RENAME TO {old}_id_seq",
            # The owner reads the old rows: the copy must see every shop's.
            f"ALTER TABLE {old} NO FORCE ROW LEVEL SECURITY",
        ]
        if partitioned:
            statements += [
                f'CREATE TABLE {table} (LIKE {old} {like}) PARTITION BY RANGE ("{self.column}")',
                f"CREATE SEQUENCE {seq} AS bigint OWNED BY {table}.id",
                f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT nextval('{seq}')",
                f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT",
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {old}",
                f"SELECT setval('{seq}', coalesce((SELECT max(id) FROM {old}), 0) + 1, false)",
                f"DROP TABLE {old}",
                *self.indexes,
                # Tenants insert through the parent; the sequence default needs USAGE.
                f"GRANT USAGE, SELECT ON SEQUENCE {seq} TO authenticated",
                f"ALTER TABLE {table}_default ENABLE ROW LEVEL SECURITY",
                f"ALTER TABLE {table}_default FORCE ROW LEVEL SECURITY",
                f"REVOKE ALL ON {table}_default FROM {_NO_PRIVILEGES}",
            ]
        else:
            statements += [
                f"ALTER TABLE {old} ALTER COLUMN id DROP DEFAULT",
                f"CREATE TABLE {table} (LIKE {old} {like})",
                f"ALTER TABLE {table} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY",
                f"INSERT INTO {table} ({columns}) OVERRIDING SYSTEM VALUE SELECT {columns} FROM {old}",
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"coalesce((SELECT max(id) FROM {old}), 0) + 1, false)",
                # Drops the partitions and the old sequence with it.
                f"DROP TABLE {old}",
                *self.plain_indexes,
            ]
        return statements + self.secure

    def forwards_sql(self) -> list[str]:
        return self._rebuild(partitioned=True)

    def backwards_sql(self) -> list[str]:
        return self._rebuild(partitioned=False)

    def describe(self) -> str:
        return f"Partition {self.table} by month on {self.column}"

    @property
    def migration_name_fragment(self) -> str:
        return f"partition_{self.table}"
