"""Writes shared by every tenant table: create, update and bulk upsert of rows.

Each runs in a savepoint, so a database refusal (a unique or check constraint) becomes a
`Refused` error naming the constraint, the request's transaction stays usable, and nothing
is half-written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.contrib.postgres.fields import ArrayField
from django.db import DatabaseError, IntegrityError, connection, models, transaction

from .errors import Forbidden, Refused
from .partitions import parent_index_name

_M = TypeVar("_M", bound=models.Model)

UNIQUE_VIOLATION = "23505"
FOREIGN_KEY_VIOLATION = "23503"
INSUFFICIENT_PRIVILEGE = "42501"  # also what row level security raises for a refused write

# How many rows one INSERT statement carries in a bulk upsert (bounded parameter size).
UPSERT_CHUNK = 1000


def constraint_error(exc: IntegrityError, model: type[models.Model] | None = None) -> Refused:
    """A 400 naming the constraint the database enforced (under its field, where it has one)."""
    diag = getattr(exc.__cause__, "diag", None)
    name = parent_index_name(getattr(diag, "constraint_name", None) or "")
    # By SQLSTATE, not by the server's message text (which follows lc_messages): 23505
    # unique_violation, 23503 foreign_key_violation.
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    if sqlstate == UNIQUE_VIOLATION:
        message, code = f"A row with the same key already exists ({name}).", "unique"
    elif sqlstate == FOREIGN_KEY_VIOLATION:
        message, code = f"A referenced row does not exist in this shop ({name}).", "invalid"
    else:
        message, code = f"The database refused the row ({name or exc}).", "invalid"
    key = _constraint_field(model, name) if model is not None and name else "non_field_errors"
    return Refused({key: [message]}, code=code)


def _constraint_field(model: type[models.Model], name: str) -> str:
    """The field a refused constraint is about: the last of a unique key's own fields (not
    the scope's shop or user), or the field a CHECK is named after."""
    for constraint in model._meta.constraints:
        if constraint.name != name:
            continue
        fields = [f for f in getattr(constraint, "fields", ()) if f not in {"shop", "user", "id"}]
        if fields:
            return str(getattr(model._meta.get_field(fields[-1]), "attname", fields[-1]))
        expressions = getattr(constraint, "expressions", ())
        named = [e.name for e in expressions if hasattr(e, "name") and e.name not in {"shop", "user"}]
        if named:
            return str(named[-1])
    # CHECK constraints are named %(app_label)s_%(class)s_<field>_<rule>.
    rule = name.removeprefix(f"{model._meta.app_label}_{model.__name__.lower()}_")
    by_length = sorted((f.attname for f in model._meta.concrete_fields), key=len, reverse=True)
    return next((f for f in by_length if rule.startswith(f"{f}_")), "non_field_errors")


def _raise_policy_refusal(exc: DatabaseError) -> None:
    """Forbidden when row level security refused the write (SQLSTATE 42501): the scope may not
    write it. Otherwise the caller re-raises `exc` as it is: `raise exc from exc` would replace its
    cause, psycopg's error, with itself, and with it the SQLSTATE that tells a lost database
    connection (a 503, config/postgresql/errors.py) from other errors."""
    if getattr(exc.__cause__, "sqlstate", None) == INSUFFICIENT_PRIVILEGE:
        raise Forbidden("Your role in this shop may not write this row.") from exc


def row_create(*, model: type[_M], data: dict[str, Any], actor: str | None, **owner: Any) -> _M:
    """Insert one row for the scope's shop/user; `owner` is shop_id and/or user_id."""
    instance = model(**data, **owner)
    if hasattr(instance, "created_by"):
        instance.created_by = actor
    try:
        with transaction.atomic():
            instance.save(force_insert=True)
    except IntegrityError as exc:
        raise constraint_error(exc, model) from exc
    except DatabaseError as exc:
        _raise_policy_refusal(exc)
        raise
    return instance


def row_update(*, instance: _M, data: dict[str, Any]) -> _M:
    """Apply validated changes to one row."""
    for field, value in data.items():
        setattr(instance, field, value)
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError as exc:
        raise constraint_error(exc, type(instance)) from exc
    except DatabaseError as exc:
        _raise_policy_refusal(exc)
        raise
    # The database computed the generated ratios; the instance still holds the old ones.
    generated = [f.attname for f in instance._meta.concrete_fields if getattr(f, "generated", False)]
    if generated:
        instance.refresh_from_db(fields=generated)
    return instance


@dataclass(frozen=True)
class UpsertResult:
    """How a bulk upsert changed the table."""

    created: int
    updated: int

    @property
    def rows(self) -> int:
        return self.created + self.updated


def rows_upsert(
    *,
    model: type[models.Model],
    rows: Sequence[dict[str, Any]],
    conflict_fields: Sequence[str],
    actor: str | None,
) -> UpsertResult:
    """Insert or replace `rows` (attribute name -> value) on their natural key, all or nothing.

    One `INSERT ... SELECT * FROM unnest(<one array per column>) ON CONFLICT (key) DO UPDATE
    ... RETURNING <inserted?>` per chunk: the policies of the scope apply to both the insert and
    the update. One array parameter per column keeps the statement's text the same for any
    number of rows, so psycopg parses it once and PostgreSQL reuses its prepared plan; a
    VALUES list of 25 rows x 9 columns was a new 225-parameter statement to convert every time
    (13% of a bulk request's CPU). Array columns cannot go through unnest (it flattens them).
    An inserted row is told from an updated one by `created_at = statement_timestamp()` (its database default, which an
    update leaves as it was); `xmax = 0`, the usual trick, is refused on partitioned tables
    ("cannot retrieve a system column in this context").
    """
    if not rows:
        return UpsertResult(created=0, updated=0)
    fields = {f.attname: f for f in model._meta.concrete_fields}
    unknown = sorted({name for row in rows for name in row} - set(fields))
    if unknown:
        raise ValueError(f"{model.__name__} has no fields {unknown}")
    # Every stored column but the key, generated columns and database-defaulted timestamps;
    # a value a row leaves out takes the model field's default, as the ORM would.
    insert_cols = [
        name
        for name, field in fields.items()
        if not field.primary_key
        and not getattr(field, "generated", False)
        and (field.db_default is models.NOT_PROVIDED or any(name in row for row in rows))
    ]
    key_cols = [fields[name].column for name in conflict_fields]
    # A row replaces the stored row with the same key (full-row semantics, like PUT); who
    # created it and when stay as they were.
    updatable = [
        name for name in insert_cols if name not in conflict_fields and name not in {"created_by", "created_at"}
    ]
    assignments = [f"{fields[name].column} = EXCLUDED.{fields[name].column}" for name in updatable]
    if "updated_at" in fields:
        assignments.append("updated_at = now()")
    if "created_at" in insert_cols or "created_at" not in fields:
        raise ValueError(f"{model.__name__} needs a database-defaulted created_at that rows do not set")
    arrays = [name for name in insert_cols if isinstance(fields[name], ArrayField)]
    if arrays:
        raise ValueError(f"{model.__name__}: array columns {arrays} cannot be upserted in bulk")
    table = model._meta.db_table
    column_sql = ", ".join(fields[name].column for name in insert_cols)
    unnest = ", ".join(f"%s::{fields[name].db_type(connection)}[]" for name in insert_cols)
    sql = (
        f"INSERT INTO {table} ({column_sql}) SELECT * FROM unnest({unnest}) "
        f"ON CONFLICT ({', '.join(key_cols)}) DO UPDATE SET {', '.join(assignments)} "
        f"RETURNING ({fields['created_at'].column} = statement_timestamp())"
    )
    created = updated = 0
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            for start in range(0, len(rows), UPSERT_CHUNK):
                chunk = rows[start : start + UPSERT_CHUNK]
                columns: list[list[Any]] = [[] for _ in insert_cols]
                for row in chunk:
                    for values, name in zip(columns, insert_cols, strict=True):
                        if name in row:
                            value = row[name]
                        elif name == "created_by":
                            value = actor
                        else:
                            value = fields[name].get_default()
                        values.append(fields[name].get_db_prep_save(value, connection))
                cursor.execute(sql, columns)
                flags = [bool(inserted) for (inserted,) in cursor.fetchall()]
                created += sum(flags)
                updated += len(flags) - sum(flags)
    except IntegrityError as exc:
        raise constraint_error(exc, model) from exc
    except DatabaseError as exc:
        _raise_policy_refusal(exc)
        raise
    return UpsertResult(created=created, updated=updated)


def duplicate_keys(rows: Iterable[tuple[int, dict[str, Any]]], key: Sequence[str]) -> dict[int, int]:
    """Row index -> index of the earlier row with the same natural key, within one batch."""
    seen: dict[tuple[Any, ...], int] = {}
    duplicates: dict[int, int] = {}
    for index, row in rows:
        value = tuple(row.get(name) for name in key)
        if value in seen:
            duplicates[index] = seen[value]
        else:
            seen[value] = index
    return duplicates
