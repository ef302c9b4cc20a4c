"""The rows of a planned list (tenancy/api/rows.py), their SQL compiled once per shape.

Row level security does the tenancy, so the first page of a list without filters is the same
statement for every shop: `SELECT <the plan's columns> FROM ad_campaigns ORDER BY 5, 1 LIMIT 3`,
without a parameter. The ORM built and compiled it on every request all the same: `.values()`
with the plan's casts, the paginator's `order_by` and slice, then the compiler (0.74-1.24 ms of
the ~5-6.5 ms of CPU a list request cost in process, and the count's compile besides).

`PlannedRows` stands for such a list in the paginators. When the view's queryset is *bare*
(the model's rows in an order: no filter, annotation, join, distinct or slice of its own), the
SQL of a slice depends only on the model, the plan, the order and the bounds; it is compiled
through the ORM the first time and kept, with the names and converters `ValuesIterable` would
use. Anything else (a filter from the query string, a cursor's position) goes through the ORM
as before. A compiled statement that carries parameters is never kept: only SQL that names no
value of a request can be shared between requests.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.models import QuerySet
from django.db.models.query import ModelIterable

from .rows import RowPlan

Transform = Callable[[QuerySet[Any]], QuerySet[Any]]


@dataclass(frozen=True)
class Statement:
    """A compiled, parameterless SELECT and how its rows become the dicts `.values()` gives."""

    sql: str
    names: tuple[str, ...]
    # (position, the field's converters, the expression they are called with): from the compiler.
    converters: tuple[tuple[int, tuple[Callable[..., Any], ...], Any], ...]

    def rows(self, using: str) -> list[dict[str, Any]]:
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(self.sql)
            fetched = cursor.fetchall()
        names, width = self.names, len(self.names)
        if self.converters:
            converted = []
            for row in fetched:
                values = list(row)
                for position, converters, expression in self.converters:
                    value = values[position]
                    for converter in converters:
                        value = converter(value, expression, connection)
                    values[position] = value
                converted.append(values)
            return [dict(zip(names, values[:width], strict=True)) for values in converted]
        return [dict(zip(names, row[:width], strict=True)) for row in fetched]


def compile_values(queryset: QuerySet[Any]) -> Statement | None:
    """`queryset` (a `.values()` query) compiled, or None when its SQL carries parameters or a
    shape this module does not reproduce (then the ORM runs it)."""
    query = queryset.query
    compiler = query.get_compiler(using=queryset.db)
    sql, params = compiler.as_sql()
    if params or compiler.has_extra_select or not sql:
        return None
    fields = [selected[0] for selected in compiler.select[: compiler.col_count]]
    if compiler.has_composite_fields(fields):
        return None
    # The names ValuesIterable gives the columns, in the order the SELECT lists them.
    names = (
        tuple(query.selected)
        if query.selected
        else (*query.extra_select, *query.values_select, *query.annotation_select)
    )
    converters = tuple(
        (position, tuple(functions), expression)
        for position, (functions, expression) in compiler.get_converters(fields).items()
    )
    return Statement(sql=sql, names=names, converters=converters)


def counted(queryset: QuerySet[Any]) -> tuple[int, str | None]:
    """`queryset.count()`, and the statement that counted when it carried no parameter.

    The statement is taken from the connection as the ORM sends it (an execute wrapper), so
    what is kept is exactly what `count()` runs: for a bare queryset, `SELECT COUNT(*) AS
    "__count" FROM <table>`."""
    seen: list[tuple[str, Any]] = []

    def capture(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append((sql, params))
        return execute(sql, params, many, context)

    with connections[queryset.db].execute_wrapper(capture):
        total = queryset.count()
    if len(seen) == 1 and not seen[0][1]:
        return total, seen[0][0]
    return total, None


def is_bare(queryset: QuerySet[Any]) -> bool:
    """True when the queryset's SQL is fixed by its model and order alone: all the model's rows
    (row level security decides whose), no filter, annotation, join, grouping, distinct,
    `extra`, slice, lock or `.values()` of its own."""
    query = queryset.query
    return (
        queryset._iterable_class is ModelIterable
        and not getattr(queryset, "_fields", None)
        and not getattr(queryset, "_prefetch_related_lookups", None)
        and not query.where.children
        and not query.annotations
        and not query.extra
        and not query.extra_tables
        and not query.extra_order_by
        and query.select_related is False
        and not query.distinct
        and not query.distinct_fields
        and query.combinator is None
        and not query.select
        and not query.values_select
        and query.default_cols
        and query.group_by is None
        and not query.select_for_update
        and query.low_mark == 0
        and query.high_mark is None
        and len(query.alias_map) <= 1
    )


# Shapes kept per process: a key per (plan, order, bounds) a client asks for. A long walk
# through page numbers adds one per page; the oldest go first.
MAX_STATEMENTS = 1024
_statements: OrderedDict[Hashable, Statement | None] = OrderedDict()
# A bare queryset's count: one statement per model.
_counts: dict[Hashable, str] = {}


_UNKNOWN: Any = object()


def _remember(key: Hashable, statement: Statement | None) -> None:
    _statements[key] = statement
    if len(_statements) > MAX_STATEMENTS:
        with contextlib.suppress(KeyError):  # emptied meanwhile by another thread
            _statements.popitem(last=False)


class PlannedRows:
    """A planned list as the paginators see it: sliced, counted, ordered by a transform.

    Only the first request of each shape builds the `.values()` queryset; later ones of a bare
    queryset run the kept SQL."""

    def __init__(self, queryset: QuerySet[Any], plan: RowPlan, *, also: tuple[str, ...] = ()) -> None:
        self.queryset = queryset  # the view's rows, before the plan's columns
        self.plan = plan
        self.also = also
        self.bare = is_bare(queryset)
        query = queryset.query
        # Everything a bare queryset's SQL depends on besides a transform and the bounds.
        self._shape = (
            queryset.db,
            queryset.model,
            id(plan),
            also,
            tuple(str(term) for term in query.order_by),
            query.default_ordering,
            query.standard_ordering,
        )

    @property
    def ordered(self) -> bool:
        return self.queryset.ordered

    def planned(self) -> QuerySet[Any]:
        """The rows as `.values()` dicts through the ORM."""
        return self.plan.select(self.queryset, also=self.also)

    def rows(
        self, start: int, stop: int | None, *, transform: Transform | None = None, key: Hashable = None
    ) -> list[dict[str, Any]]:
        """Rows `start` to `stop` of `transform(rows)`; `key` names the transform (a fixed
        function of the model and `key`, never of a request's values)."""

        def build() -> QuerySet[Any]:
            planned = self.planned()
            if transform is not None:
                planned = transform(planned)
            return planned[start:stop]

        if not self.bare or (transform is not None and key is None):
            return list(build())
        shape = (self._shape, key, start, stop)
        statement = _statements.get(shape, _UNKNOWN)
        if statement is _UNKNOWN:
            statement = compile_values(build())
            _remember(shape, statement)
        else:
            with contextlib.suppress(KeyError):  # dropped meanwhile by another thread (gthread)
                _statements.move_to_end(shape)
        if statement is None:
            return list(build())
        return statement.rows(self.queryset.db)

    def __getitem__(self, bounds: slice) -> list[dict[str, Any]]:
        if not isinstance(bounds, slice) or bounds.step is not None:
            raise TypeError("PlannedRows are read a page (a slice without step) at a time.")
        return self.rows(bounds.start or 0, bounds.stop)

    def __len__(self) -> int:
        return self.count()

    def count(self) -> int:
        """The rows, counted without the plan's columns and casts (counting the planned query
        wrapped them all in a subquery: 18% of a short list's CPU)."""
        if not self.bare:
            return self.queryset.count()
        shape = (self.queryset.db, self.queryset.model, "count")
        sql = _counts.get(shape)
        if sql is None:
            total, sql = counted(self.queryset)
            if sql is not None:
                _counts[shape] = sql
            return total
        with connections[self.queryset.db].cursor() as cursor:
            cursor.execute(sql)
            return int(cursor.fetchone()[0])

    def __iter__(self) -> Any:
        return iter(self.rows(0, None))
