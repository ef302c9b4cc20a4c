"""Load metrics files (CSV or NDJSON) into ad_performance, seo_rankings and social_analytics.

The tables are under row level security, which refuses a plain COPY (and nothing here may
bypass it). So each batch of the file is COPied as text into a temporary staging table (the
connection's own role, no policies), then moved with one `INSERT ... SELECT ... ON CONFLICT
(<natural key>) DO UPDATE` run as `authenticated` in the shop's scope: the policies' WITH CHECK
still guards every row, and PostgreSQL does the typing, the CHECK constraints and the foreign
keys. The whole file is one transaction, so any refused row leaves nothing written; Python
holds one parsed row at a time, the database holds one batch in staging.

When a batch is refused (or moves fewer rows than it staged), `_diagnose` runs cheap queries
over that batch to name the first bad line, its column and the reason: the happy path pays for
no checks of its own.
"""

from __future__ import annotations

import csv
import datetime
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import IO, Any

from django.db import DatabaseError, connection, models, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import F, OrderBy

from config.postgresql.errors import database_unavailable
from tenancy.models import Shop
from tenancy.scope import atomic_scope, enter_scope, shop_scope
from tenancy.tables import parent_key

from .inputs import AD_PERFORMANCE_ROW_INPUTS, SEO_RANKING_INPUTS, SOCIAL_ANALYTICS_ROW_INPUTS
from .models import AdPerformance, SeoRanking, SocialAnalytics, SocialPost

FORMATS = ("csv", "ndjson")
DEFAULT_BATCH_SIZE = 50_000
MAX_BATCH_SIZE = 1_000_000
STAGING = "import_metrics_staging"
# A file may carry the shop's domain on every row (exports of several shops); it must be --shop.
SHOP_COLUMN = "shop_domain"


@dataclass(frozen=True)
class Target:
    """An importable table: its model, the columns a file may give and how the rest is filled."""

    model: type[models.Model]
    # Attribute names a row may carry: the bulk endpoint's row fields, so both take the same input.
    inputs: tuple[str, ...]
    # Column -> SQL computing it when a row leaves it out (`s` is the staging row).
    derived: dict[str, str]
    # A parent joined to each row (`p`), for a column `derived` takes from it: (table, condition).
    join: tuple[str, str] | None = None
    # SQL a typed row must satisfy beyond the table's CHECKs: (condition, column, reason).
    rules: tuple[tuple[str, str, str], ...] = ()

    @property
    def table(self) -> str:
        return self.model._meta.db_table


TARGETS: dict[str, Target] = {
    "ad_performance": Target(model=AdPerformance, inputs=AD_PERFORMANCE_ROW_INPUTS, derived={}),
    "seo_rankings": Target(
        model=SeoRanking,
        inputs=SEO_RANKING_INPUTS,
        # The UTC day of tracked_at, as the API's tracked_on_settle derives it.
        derived={"tracked_on": "(s.tracked_at::timestamptz AT TIME ZONE 'UTC')::date"},
        rules=(
            (
                "s.tracked_on IS NULL OR s.tracked_on::date = (s.tracked_at::timestamptz AT TIME ZONE 'UTC')::date",
                "tracked_on",
                "must be the UTC date of tracked_at, or left empty",
            ),
        ),
    ),
    "social_analytics": Target(
        model=SocialAnalytics,
        inputs=SOCIAL_ANALYTICS_ROW_INPUTS,
        # The composite foreign key (post, shop, platform) needs the post's platform; the join
        # under the shop's policies also drops rows naming a post of another shop.
        derived={"platform": "p.platform"},
        join=(SocialPost._meta.db_table, "p.id = s.social_post_id::bigint"),
    ),
}


class MetricsFileError(ValueError):
    """A row (or the header) of the file is not valid: where, which column and why."""

    def __init__(self, *, line: int, column: str | None, reason: str) -> None:
        self.line, self.column, self.reason = line, column, reason
        super().__init__(f"line {line}" + (f", column {column!r}" if column else "") + f": {reason}")


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    dry_run: bool

    @property
    def rows(self) -> int:
        return self.created + self.updated


@dataclass(frozen=True)
class _Column:
    name: str
    sql_type: str  # with its modifiers, e.g. character varying(500): what input must fit
    cast_type: str  # without them: an explicit cast to varchar(n) would truncate silently
    required: bool  # NOT NULL with neither a default nor a derivation
    default: Any  # database value of the model field's default, or None


def natural_key(model: type[models.Model]) -> tuple[str, ...]:
    """Columns of the model's unique constraint (its ingestion key), the ON CONFLICT target."""
    columns = {field.name: field.column for field in model._meta.concrete_fields}
    pk = model._meta.pk.name if model._meta.pk is not None else None
    keys = []
    for constraint in model._meta.constraints:
        if isinstance(constraint, models.UniqueConstraint):
            names = list(constraint.fields) or [_field_of(e) for e in constraint.expressions]
            # A key with the id (e.g. a partitioned table's (id, date)) identifies rows, not facts.
            if pk not in names:
                keys.append(names)
    if len(keys) != 1:
        raise TypeError(f"{model.__name__} needs exactly one unique constraint without its id, has {keys}")
    return tuple(columns[name] for name in keys[0])


def _field_of(expression: Any) -> str:
    """The field an index expression such as F("date").desc() is on."""
    inner = expression.expression if isinstance(expression, OrderBy) else expression
    if not isinstance(inner, F):
        raise TypeError(f"a natural key of plain fields was expected, not {expression!r}")
    return inner.name


def required_columns(target: Target) -> tuple[str, ...]:
    """Input columns every row must give (NOT NULL, no default, not derived)."""
    fields = {f.attname: f for f in target.model._meta.concrete_fields}
    return tuple(
        name
        for name in target.inputs
        if not fields[name].null and not fields[name].has_default() and name not in target.derived
    )


def metrics_import(
    *,
    table: str,
    stream: IO[str],
    file_format: str,
    shop: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> ImportResult:
    """Upsert every row of `stream` into `table` for `shop`, all or nothing.

    Raises MetricsFileError (line, column, reason) for any invalid row and LookupError
    for an unknown table or shop. `on_batch` receives the running count of rows moved.
    """
    target = TARGETS.get(table)
    if target is None:
        raise LookupError(f"cannot import into {table!r}; importable tables: {', '.join(TARGETS)}")
    if file_format not in FORMATS:
        raise LookupError(f"unknown format {file_format!r}; expected one of {', '.join(FORMATS)}")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch size must be between 1 and {MAX_BATCH_SIZE}, not {batch_size}")
    if not Shop.objects.filter(domain=shop).exists():
        raise LookupError(f"shop {shop!r} does not exist")
    columns = _columns(target)
    reader = _csv_rows if file_format == "csv" else _ndjson_rows
    rows = reader(stream, target=target, shop=shop)
    scope = shop_scope(shop=shop, subject=None, member_role=None)
    created = updated = 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        # The run's timestamp: updated_at of every row it writes, created_at of the rows it
        # inserts. A conflict with a row carrying it is a key repeated in the file (the
        # statement itself catches repeats within one batch only), and `created_at = marker`
        # tells inserted rows from updated ones without system columns, which partitioned
        # tables cannot return.
        (marker,) = _one(cursor)
        staged = ", ".join(f"{c.name} text" for c in columns)
        cursor.execute(f"CREATE TEMP TABLE {STAGING} (line bigint NOT NULL, {staged}) ON COMMIT DROP")
        cursor.execute(f"GRANT SELECT ON {STAGING} TO {scope.role}")
        upsert, params = _upsert_sql(target, columns, shop=shop, marker=marker)
        run = _Run(target=target, columns=columns, shop=shop, marker=marker)
        while True:
            cursor.execute(f"TRUNCATE {STAGING}")
            with cursor.copy(f"COPY {STAGING} (line, {', '.join(c.name for c in columns)}) FROM STDIN") as copy:
                count = 0
                for row in islice(rows, batch_size):
                    copy.write_row(row)
                    count += 1
            if not count:
                break
            try:
                with atomic_scope(scope):
                    cursor.execute(upsert, params)
                    inserted, written = _one(cursor)
            except DatabaseError as exc:
                if database_unavailable(exc):
                    # The connection was lost, not a row refused (nor could any be diagnosed now).
                    raise
                raise _diagnose(cursor, run, exc) from exc
            if written != count:
                raise _diagnose(cursor, run, None)
            created += inserted
            updated += written - inserted
            if on_batch is not None:
                on_batch(created + updated)
        # ON COMMIT DROP alone would keep it until the outermost commit (a caller's transaction).
        cursor.execute(f"DROP TABLE {STAGING}")
        if dry_run:
            transaction.set_rollback(True)
    return ImportResult(created=created, updated=updated, dry_run=dry_run)


def _one(cursor: CursorWrapper) -> tuple[Any, ...]:
    row = cursor.fetchone()
    assert row is not None, "the statement returns one row"
    return tuple(row)


def _columns(target: Target) -> list[_Column]:
    fields = {f.attname: f for f in target.model._meta.concrete_fields}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname, format_type(atttypid, atttypmod), format_type(atttypid, NULL) FROM pg_attribute "
            "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            [target.table],
        )
        types = {name: (full, bare) for name, full, bare in cursor.fetchall()}
    required = set(required_columns(target))
    result = []
    for name in target.inputs:
        field = fields[name]
        default = field.get_db_prep_save(field.get_default(), connection) if field.has_default() else None
        full, bare = types[field.column]
        result.append(_Column(field.column, full, bare, name in required, default))
    return result


def _typed(column: _Column, target: Target) -> str:
    value = f"s.{column.name}::{column.cast_type}"
    if column.name in target.derived:
        return f"coalesce({value}, {target.derived[column.name]})"
    return f"coalesce({value}, %s)" if column.default is not None else value


def _projection(target: Target, columns: Sequence[_Column]) -> tuple[list[str], list[str], list[Any]]:
    """(columns, SQL expressions, parameters) of the row each staging row becomes."""
    names = ["shop_domain", "created_at", "updated_at"]
    exprs = ["%s", "%s", "%s"]
    params: list[Any] = []
    for column in columns:
        names.append(column.name)
        exprs.append(_typed(column, target))
        if column.default is not None and column.name not in target.derived:
            params.append(column.default)
    for name, sql in target.derived.items():
        if name not in names:
            names.append(name)
            exprs.append(sql)
    return names, exprs, params


def _source(target: Target, *, rules: bool = True) -> str:
    join = f" JOIN {target.join[0]} p ON {target.join[1]}" if target.join else ""
    where = " AND ".join(f"({condition})" for condition, _, _ in target.rules) if rules else ""
    return f"{STAGING} s{join}" + (f" WHERE {where}" if where else "")


def _upsert_sql(
    target: Target, columns: Sequence[_Column], *, shop: str, marker: datetime.datetime
) -> tuple[str, list[Any]]:
    names, exprs, params = _projection(target, columns)
    key = natural_key(target.model)
    kept = {*key, "shop_domain", "created_at"}
    updates = [f"{name} = EXCLUDED.{name}" for name in names if name not in kept]
    sql = (
        f"WITH written AS (INSERT INTO {target.table} ({', '.join(names)}) "
        f"SELECT {', '.join(exprs)} FROM {_source(target)} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(updates)} "
        f"WHERE {target.table}.updated_at IS DISTINCT FROM %s "
        f"RETURNING {target.table}.created_at = %s AS created) "
        "SELECT count(*) FILTER (WHERE created), count(*) FROM written"
    )
    return sql, [shop, marker, marker, *params, marker, marker]


# Reading files: each yields (line, value per column of `_columns`) with None for empty values.

Row = tuple[Any, ...]


def _check_columns(names: Sequence[str], target: Target, *, line: int) -> None:
    allowed = (*target.inputs, SHOP_COLUMN)
    for index, name in enumerate(names):
        if name in names[:index]:
            raise MetricsFileError(line=line, column=name, reason="the column appears twice")
        if name not in allowed:
            reason = f"unknown column; {target.table} takes {', '.join(allowed)}"
            raise MetricsFileError(line=line, column=name, reason=reason)
    for name in required_columns(target):
        if name not in names:
            raise MetricsFileError(line=line, column=name, reason="required column is missing")


def _check_shop(value: Any, shop: str, *, line: int) -> None:
    if value not in (None, "", shop):
        reason = f"the row belongs to shop {value!r}, not to --shop {shop!r}"
        raise MetricsFileError(line=line, column=SHOP_COLUMN, reason=reason)


def _csv_rows(stream: IO[str], *, target: Target, shop: str) -> Iterator[Row]:
    reader = csv.reader(_lines(stream))
    header = next(reader, None)
    if header is None:
        return
    header = [name.strip() for name in header]
    _check_columns(header, target, line=1)
    positions = [header.index(name) if name in header else None for name in target.inputs]
    shop_at = header.index(SHOP_COLUMN) if SHOP_COLUMN in header else None
    width = len(header)
    line = reader.line_num + 1
    try:
        for values in reader:
            if not values:
                line = reader.line_num + 1
                continue
            if len(values) != width:
                reason = f"{len(values)} values for the header's {width} columns"
                raise MetricsFileError(line=line, column=None, reason=reason)
            if shop_at is not None:
                _check_shop(values[shop_at], shop, line=line)
            yield (line, *[values[i] or None if i is not None else None for i in positions])
            line = reader.line_num + 1
    except csv.Error as exc:
        raise MetricsFileError(line=line, column=None, reason=f"not valid CSV: {exc}") from exc


def _lines(stream: IO[str]) -> Iterator[str]:
    line = 1
    try:
        for text in stream:
            yield text
            line += 1
    except UnicodeDecodeError as exc:
        # The stream decodes ahead in blocks: the bad byte is on this line or a later one.
        raise MetricsFileError(
            line=line + 1, column=None, reason=f"not UTF-8 text here or below ({exc.reason})"
        ) from exc


def _ndjson_rows(stream: IO[str], *, target: Target, shop: str) -> Iterator[Row]:
    allowed = {*target.inputs, SHOP_COLUMN}
    required = required_columns(target)
    for line, text in enumerate(_lines(stream), start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MetricsFileError(line=line, column=None, reason=f"not JSON: {exc.msg}") from exc
        if not isinstance(record, dict):
            raise MetricsFileError(line=line, column=None, reason="expected a JSON object")
        if not allowed.issuperset(record) or not all(name in record for name in required):
            _check_columns(list(record), target, line=line)
        _check_shop(record.get(SHOP_COLUMN), shop, line=line)
        yield (line, *[_text(record.get(name), line=line, column=name) for name in target.inputs])


def _text(value: Any, *, line: int, column: str) -> str | None:
    """A JSON value as COPY text; PostgreSQL parses and checks it like a CSV cell."""
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    raise MetricsFileError(line=line, column=column, reason=f"expected a scalar, got {type(value).__name__}")


# Naming the first bad row of a refused batch.

Problem = tuple[int, str, str]  # line, column, reason


@dataclass(frozen=True)
class _Run:
    target: Target
    columns: Sequence[_Column]
    shop: str
    marker: datetime.datetime

    def typed_rows(self) -> tuple[str, list[Any]]:
        """The staged batch as the rows the upsert would write, with their line, aliased `t`."""
        names, exprs, params = _projection(self.target, self.columns)
        select = ", ".join(f"{expr} AS {name}" for expr, name in zip(exprs, names, strict=True))
        return f"(SELECT s.line, {select} FROM {_source(self.target, rules=False)}) t", [
            self.shop,
            self.marker,
            self.marker,
            *params,
        ]


def _diagnose(cursor: CursorWrapper, run: _Run, cause: DatabaseError | None) -> MetricsFileError:
    """The first problem of the staged batch, as a MetricsFileError.

    Checks run from the coarsest (a value of the wrong type) to the finest (a repeated key),
    each only when the previous ones found nothing, since e.g. a CHECK cannot be evaluated on
    a value that does not parse."""
    try:
        with transaction.atomic(), enter_scope(shop_scope(shop=run.shop, subject=None, member_role=None)):
            for check in (_bad_values, _missing_parents, _broken_rules, _repeated_keys):
                found = check(cursor, run)
                if found:
                    line, column, reason = min(found)
                    return MetricsFileError(line=line, column=column, reason=reason)
    except DatabaseError:
        # A check could not evaluate this batch (on PostgreSQL 15, a value that does not parse).
        pass
    cursor.execute(f"SELECT min(line), max(line) FROM {STAGING}")
    first, last = _one(cursor)
    # Not a problem the checks know: still an error of these lines, with the database's words.
    reason = str(cause).strip() if cause else "the database wrote fewer rows than the batch holds"
    return MetricsFileError(line=int(first), column=None, reason=f"a row of lines {first}-{last} was refused: {reason}")


def _first(cursor: CursorWrapper, sql: str, params: Sequence[Any] = ()) -> list[Problem]:
    cursor.execute(sql + " ORDER BY 1 LIMIT 1", params)
    return [(int(line), str(column), str(reason)) for line, column, reason in cursor.fetchall()]


def _bad_values(cursor: CursorWrapper, run: _Run) -> list[Problem]:
    """Empty required values, and values their column's type refuses (with PostgreSQL's reason).

    pg_input_is_valid() needs PostgreSQL 16; on 15 a type error is reported with the
    database's own message, without its line."""
    values = ", ".join(f"('{c.name}', s.{c.name}, '{c.sql_type}', {c.required})" for c in run.columns)
    typed = int(getattr(connection, "pg_version", 0) or 0) >= 160000
    invalid = "NOT pg_input_is_valid(v.val, v.typ)" if typed else "false"
    reason = "'invalid value ' || quote_literal(v.val) || ': ' || (pg_input_error_info(v.val, v.typ)).message"
    if not typed:
        reason = "''"
    return _first(
        cursor,
        f"SELECT s.line, v.col, CASE WHEN v.val IS NULL THEN 'a value is required' ELSE {reason} "
        f"END FROM {STAGING} s CROSS JOIN LATERAL (VALUES {values}) v(col, val, typ, required) "
        f"WHERE CASE WHEN v.val IS NULL THEN v.required ELSE {invalid} END",
    )


def _missing_parents(cursor: CursorWrapper, run: _Run) -> list[Problem]:
    """Rows naming a parent (the table's declared `TenantTable.parent`) the shop does not have."""
    parent = parent_key(run.target.model)
    if parent is None or parent.attname not in run.target.inputs:
        return []
    column, table = parent.field.column, parent.model._meta.db_table
    key = parent.field.target_field.column
    # Under the shop's policies another shop's parent is invisible, as it should be.
    return _first(
        cursor,
        f"SELECT s.line, %s, %s || s.{column} || ' does not exist in this shop' FROM {STAGING} s "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} p WHERE p.{key} = s.{column}::bigint)",
        [column, f"{parent.import_label} "],
    )


def _broken_rules(cursor: CursorWrapper, run: _Run) -> list[Problem]:
    """Rows breaking a CHECK constraint of the table (its own definition, evaluated on the
    typed row) or a rule of the target."""
    typed, params = run.typed_rows()
    cursor.execute(
        "SELECT pg_get_constraintdef(c.oid), (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.conrelid "
        "AND a.attnum = c.conkey[1]) FROM pg_constraint c WHERE c.conrelid = %s::regclass AND c.contype = 'c'",
        [run.target.table],
    )
    found: list[Problem] = []
    for definition, column in cursor.fetchall():
        condition = definition.removeprefix("CHECK ").replace("%", "%%")
        found += _first(
            cursor,
            f"SELECT t.line, %s, %s FROM {typed} WHERE NOT {condition}",
            [column, f"must satisfy {definition}", *params],
        )
    for condition, column, reason in run.target.rules:
        found += _first(cursor, f"SELECT s.line, %s, %s FROM {STAGING} s WHERE NOT ({condition})", [column, reason])
    return found


def _repeated_keys(cursor: CursorWrapper, run: _Run) -> list[Problem]:
    typed, params = run.typed_rows()
    names = natural_key(run.target.model)
    key = ", ".join(names)
    label = f"same natural key ({key}) as "
    within = _first(
        cursor,
        f"SELECT line, %s, %s || first FROM (SELECT t.line, min(t.line) OVER (PARTITION BY {key}) AS first "
        f"FROM {typed}) d WHERE line > first",
        [names[-1], f"{label}line ", *params],
    )
    earlier = _first(
        cursor,
        f"SELECT t.line, %s, %s FROM {typed} JOIN {run.target.table} r USING ({key}) WHERE r.updated_at = %s",
        [names[-1], f"{label}an earlier line", *params, run.marker],
    )
    return within + earlier
