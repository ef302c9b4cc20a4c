"""Pagination: page numbers for catalogues, cursors for time series."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.request import Request
from rest_framework.views import APIView


class PagePagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE


class TimeSeriesPagination(CursorPagination):
    """Stable pages over rows that keep arriving; the view's `ordering` is the cursor key.

    A cursor cannot encode NULL (DRF would write "None" into the next link), so ordering by a
    nullable column, such as a ratio whose denominator was zero, lists only rows that have a
    value: "top ROAS" means rows with a ROAS.
    """

    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE
    ordering = "-created_at"

    def paginate_queryset(self, queryset: QuerySet[Any], request: Request, view: APIView | None = None) -> Any:
        ordering = self.get_ordering(request, queryset, view)  # type: ignore[arg-type]
        terms = ordering if isinstance(ordering, list | tuple) else (ordering,)
        selected = (*queryset.query.values_select, *queryset.query.annotation_select)
        if queryset.query.values_select and str(terms[0]).lstrip("-") not in selected:
            # A page of `.values()` rows: the cursor is read from each row's first ordering field.
            queryset = queryset.values(*selected, str(terms[0]).lstrip("-"))
        for term in terms:
            name = str(term).lstrip("-")
            field = next((f for f in queryset.model._meta.concrete_fields if f.name == name), None)
            # A generated column is nullable through its output field.
            if field is not None and (field.null or getattr(getattr(field, "output_field", None), "null", False)):
                queryset = queryset.filter(**{f"{name}__isnull": False})
        return super().paginate_queryset(queryset, request, view)


class FixedOrderCursorPagination(TimeSeriesPagination):
    """Cursor pages in a fixed order, whatever the view's own ordering (nested routes)."""

    def __init__(self, ordering: tuple[str, ...]) -> None:
        self.fixed_ordering = ordering

    def get_ordering(self, request: Request, queryset: QuerySet[Any], view: APIView | None) -> tuple[str, ...]:
        return self.fixed_ordering
