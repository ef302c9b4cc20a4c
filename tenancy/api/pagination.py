"""Pagination: page numbers for catalogues, cursors for time series."""

from __future__ import annotations

import datetime
import decimal
from base64 import b64decode, b64encode
from typing import Any, NamedTuple
from urllib import parse

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import Paginator as DjangoPaginator
from django.db import models
from django.db.models import Q, QuerySet
from rest_framework import exceptions
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.request import Request
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from .statements import PlannedRows


class Keyset(NamedTuple):
    """A decoded cursor: the sort key of the row at a page's edge, and the direction."""

    reverse: bool
    position: tuple[Any, ...]


class InvalidCursor(exceptions.NotFound):
    default_detail = "Invalid cursor."
    default_code = "invalid_cursor"


def page_size_of(request: Request, default: int | None) -> int | None:
    """`?page_size=` as an integer from 1 to API_MAX_PAGE_SIZE, else a 400 naming it.

    DRF ignores a page size it cannot read (`abc`, `0`) and clamps one above the maximum, so
    a client asking for 1,000 rows would silently get 500 and think it had them all.
    """
    raw = request.query_params.get("page_size")
    if raw is None:
        return default
    limit = settings.API_MAX_PAGE_SIZE
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= limit:
        raise exceptions.ValidationError(
            {"page_size": [f"A whole number from 1 to {limit} (API_MAX_PAGE_SIZE); got {raw!r}."]}, code="invalid"
        )
    return int(raw)


class FullPagePaginator(DjangoPaginator):
    """Django's paginator, slicing a whole page's bounds even for the last page (Django cuts
    them to the count): the rows are the same, and the first page of a short list is then one
    statement for every shop, whatever its count (tenancy/api/statements.py keeps it)."""

    def page(self, number: Any) -> Any:
        if self.orphans:
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        return self._get_page(self.object_list[bottom : bottom + self.per_page], number, self)  # type: ignore[attr-defined]


class PagePagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE
    # The contract says `page` is an integer; DRF's `?page=last` is not in it.
    last_page_strings = ()
    django_paginator_class = FullPagePaginator

    def get_page_size(self, request: Request) -> int | None:
        return page_size_of(request, self.page_size)

    def get_page_number(self, request: Request, paginator: Any) -> int:
        """`?page=` as a whole number from 1 (400 otherwise; past the last page is a 404).
        DRF reads an empty `?page=` as page 1 and `?page=abc` as a 404."""
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
            raise exceptions.ValidationError({"page": [f"A whole number from 1; got {raw!r}."]}, code="invalid")
        return int(raw)

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        return _bounded_page_size(super().get_schema_operation_parameters(view))


def _bounded_page_size(parameters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for parameter in parameters:
        if parameter["name"] == "page_size":
            parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": settings.API_MAX_PAGE_SIZE}
        elif parameter["name"] == "page":
            parameter["schema"] = {"type": "integer", "minimum": 1}
    return parameters


def cursor_position(queryset: QuerySet[Any], name: str, position: str) -> Any:
    """The cursor's position as a value of the ordering column `name`, or InvalidCursor.

    DRF hands the position (any text a client base64-encodes) straight to the ORM as
    `name__gt`: "garbage" for a date is a ValidationError there, a NUL a psycopg error, an
    offset beyond PostgreSQL's +-15:59 a DataError that aborts the transaction; each was a 500.
    """
    if "\x00" in position:
        raise InvalidCursor()
    try:
        field = queryset.model._meta.get_field(name)
    except FieldDoesNotExist:
        field = None
    output = getattr(field, "output_field", None) or field  # a generated column: its output field
    try:
        if isinstance(output, models.Field):
            value = output.to_python(position)
            if isinstance(value, datetime.datetime):
                # Python accepts offsets up to +-23:59, PostgreSQL up to +-15:59: compare in UTC.
                value = value.astimezone(datetime.UTC) if value.tzinfo else value.replace(tzinfo=datetime.UTC)
            elif (isinstance(value, decimal.Decimal) and not value.is_finite()) or (
                isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63
            ):
                raise InvalidCursor()
        else:
            value = position
        queryset.filter(**{f"{name}__gt": value})  # builds the lookup: the ORM's own checks of the value
    except (DjangoValidationError, ValueError, TypeError, OverflowError, ArithmeticError) as exc:
        raise InvalidCursor() from exc
    return value


class TimeSeriesPagination(CursorPagination):
    """Stable pages over rows that keep arriving: keyset cursors on the view's `ordering`.

    The cursor holds the whole sort key of the row at the page's edge (every ordering column,
    the primary key last), and the next page is the rows strictly after it in that order. DRF's
    own cursor keeps only the first column plus an offset among rows that tie on it; walking
    back through `previous` links across a tie then skipped rows (7 rows on 2 dates, pages of
    2: one row was never shown going back). The key is total, so nothing is skipped or
    repeated either way, and a row arriving or leaving between pages moves nothing else.

    A cursor cannot encode NULL, so ordering by a nullable column, such as a ratio whose
    denominator was zero, lists only rows that have a value: "top ROAS" means rows with a ROAS.
    """

    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE
    ordering = "-created_at"
    _key_terms: tuple[str, ...] | None = None

    def get_page_size(self, request: Request) -> int | None:
        return page_size_of(request, self.page_size)

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        return _bounded_page_size(super().get_schema_operation_parameters(view))

    def decode_cursor(self, request: Request) -> Keyset | None:  # type: ignore[override]
        """The request's cursor (a typed value per ordering column), or InvalidCursor."""
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        try:
            tokens = parse.parse_qs(b64decode(encoded.encode("ascii")).decode("ascii"), keep_blank_values=True)
            reverse = {"0": False, "1": True}[tokens.get("r", ["0"])[0]]
        except (ValueError, KeyError) as exc:  # not base64 / ASCII, or `r` not 0 or 1
            raise InvalidCursor() from exc
        positions = tokens.get("p", [])
        if len(positions) != len(self.key_order) or set(tokens) - {"r", "p"}:
            raise InvalidCursor()
        values = tuple(
            cursor_position(self._cursor_queryset, term.lstrip("-"), position)
            for term, position in zip(self.key_order, positions, strict=True)
        )
        return Keyset(reverse=reverse, position=values)

    def encode_cursor(self, cursor: Keyset) -> str:  # type: ignore[override]
        tokens = [("r", "1")] if cursor.reverse else []
        tokens += [("p", str(value)) for value in cursor.position]
        encoded = b64encode(parse.urlencode(tokens, doseq=True).encode("ascii")).decode("ascii")
        return replace_query_param(str(self.base_url), self.cursor_query_param, encoded)

    def key_terms(self, request: Request, queryset: QuerySet[Any], view: APIView | None) -> tuple[str, ...]:
        """The order of the pages: the view's ordering, the primary key last (a total order).
        Read once: a paginator serves one request, and rows_page asks before paginate_queryset."""
        if self._key_terms is None:
            ordering = self.get_ordering(request, queryset, view)  # type: ignore[arg-type]
            terms = [str(term) for term in (ordering if isinstance(ordering, list | tuple) else (ordering,))]
            if not any(term.lstrip("-") in {"id", "pk"} for term in terms):
                terms.append("-id" if terms[-1].startswith("-") else "id")
            self._key_terms = tuple(terms)
        return self._key_terms

    def key_columns(self, request: Request, queryset: QuerySet[Any], view: APIView | None) -> tuple[str, ...]:
        """The columns a page's rows must hold for its cursors: a `.values()` list selects them
        up front (rows_page), since adding them here would build the query a second time (7% of
        a time-series list's CPU)."""
        return tuple(term.lstrip("-") for term in self.key_terms(request, queryset, view))

    def paginate_queryset(
        self, queryset: QuerySet[Any] | PlannedRows, request: Request, view: APIView | None = None
    ) -> Any:
        self.request = request
        self.page_size = self.get_page_size(request)
        self.base_url = request.build_absolute_uri()
        planned = queryset if isinstance(queryset, PlannedRows) else None
        base = planned.queryset if planned is not None else queryset
        assert isinstance(base, QuerySet)
        terms = list(self.key_terms(request, base, view))
        self.key_order = tuple(terms)
        names = [term.lstrip("-") for term in terms]
        nullable = []
        for name in names:
            field = next((f for f in base.model._meta.concrete_fields if f.name == name), None)
            # A generated column is nullable through its output field.
            if field is not None and (field.null or getattr(getattr(field, "output_field", None), "null", False)):
                nullable.append(name)
        self._cursor_queryset = base  # for decode_cursor (positions are checked per column)
        keyset = self.decode_cursor(request)
        reverse = bool(keyset and keyset.reverse)
        order = [_flip(term) for term in terms] if reverse else terms

        def arrange(rows: QuerySet[Any]) -> QuerySet[Any]:
            for name in nullable:
                rows = rows.filter(**{f"{name}__isnull": False})
            rows = rows.order_by(*order)
            return rows if keyset is None else rows.filter(_after(order, keyset.position))

        assert self.page_size is not None
        if planned is not None:
            # Without a cursor the page is the same statement for every shop (statements.py).
            key = ("keyset", tuple(order)) if keyset is None else None
            rows = planned.rows(0, self.page_size + 1, transform=arrange, key=key)
        else:
            rows = list(arrange(base)[: self.page_size + 1])
        more = len(rows) > self.page_size
        self.page = rows[: self.page_size]
        if reverse:
            self.page.reverse()
        # Going forward, rows before the page exist when we came by a cursor; going back, rows
        # after it do (the one the cursor was taken from).
        self.has_next = keyset is not None if reverse else more
        self.has_previous = more if reverse else keyset is not None
        return self.page

    def _key(self, row: Any) -> tuple[Any, ...]:
        names = [term.lstrip("-") for term in self.key_order]
        if isinstance(row, dict):
            return tuple(row[name] for name in names)
        return tuple(getattr(row, "pk" if name == "pk" else name) for name in names)

    def get_next_link(self) -> str | None:
        if not self.has_next or not self.page:
            return None
        return self.encode_cursor(Keyset(reverse=False, position=self._key(self.page[-1])))

    def get_previous_link(self) -> str | None:
        if not self.has_previous or not self.page:
            return None
        return self.encode_cursor(Keyset(reverse=True, position=self._key(self.page[0])))


def _flip(term: str) -> str:
    return term[1:] if term.startswith("-") else f"-{term}"


def _after(order: list[str], position: tuple[Any, ...]) -> Q:
    """Rows strictly after `position` in `order`: (a, b) after (x, y) is a > x or (a = x and b > y),
    with < for descending columns."""
    condition = Q(pk__in=[])
    for index, term in enumerate(order):
        name = term.lstrip("-")
        step = Q(**{f"{name}__{'lt' if term.startswith('-') else 'gt'}": position[index]})
        for earlier, value in zip(order[:index], position[:index], strict=True):
            step &= Q(**{earlier.lstrip("-"): value})
        condition |= step
    # Implied by the above; said on its own it lets PostgreSQL range-scan the leading column's index.
    first = order[0]
    return condition & Q(**{f"{first.lstrip('-')}__{'lte' if first.startswith('-') else 'gte'}": position[0]})


class FixedOrderCursorPagination(TimeSeriesPagination):
    """Cursor pages in a fixed order, whatever the view's own ordering (nested routes)."""

    def __init__(self, ordering: tuple[str, ...]) -> None:
        self.fixed_ordering = ordering

    def get_ordering(self, request: Request, queryset: QuerySet[Any], view: APIView | None) -> tuple[str, ...]:
        return self.fixed_ordering
