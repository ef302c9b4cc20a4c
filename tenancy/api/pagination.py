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
    """Stable pages over rows that keep arriving; the view's `ordering` is the cursor key."""

    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE
    ordering = "-created_at"


class FixedOrderCursorPagination(TimeSeriesPagination):
    """Cursor pages in a fixed order, whatever the view's own ordering (nested routes)."""

    def __init__(self, ordering: tuple[str, ...]) -> None:
        self.fixed_ordering = ordering

    def get_ordering(self, request: Request, queryset: QuerySet[Any], view: APIView | None) -> tuple[str, ...]:
        return self.fixed_ordering
