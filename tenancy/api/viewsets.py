"""The ViewSet every tenant resource derives from: scope, ownership and the service writes."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import QuerySet
from rest_framework import viewsets
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.viewsets import GenericViewSet

from tenancy.services import row_create, row_update

from .pagination import FixedOrderCursorPagination, TimeSeriesPagination
from .rows import row_plan
from .scoping import TenantScopedViewMixin
from .statements import PlannedRows


def rows_page(
    queryset: QuerySet[Any],
    serializer_class: type[BaseSerializer[Any]],
    paginator: BasePagination | None,
    view: GenericViewSet,
) -> Response:
    """A list response: `.values()` rows through the serializer's row plan when it has one
    (no model instances, see tenancy/api/rows.py), else the serializer itself."""
    plan = row_plan(serializer_class)
    if plan is not None and not getattr(queryset, "_prefetch_related_lookups", ()):
        keys: tuple[str, ...] = ()
        if isinstance(paginator, TimeSeriesPagination):
            keys = paginator.key_columns(view.request, queryset, view)
        planned = PlannedRows(queryset, plan, also=keys)
        # The paginators slice and count PlannedRows as they would the planned queryset.
        rows: Any = planned
        page: list[Any] | None = (
            None if paginator is None else paginator.paginate_queryset(rows, view.request, view=view)
        )
        data = plan.represent(planned.rows(0, None) if page is None else page)
    else:
        page = None if paginator is None else paginator.paginate_queryset(queryset, view.request, view=view)
        rows = queryset if page is None else page
        data = serializer_class(rows, many=True, context=view.get_serializer_context()).data
    return Response(data) if paginator is None or page is None else paginator.get_paginated_response(data)


class RowListMixin:
    """`list` through `rows_page`: the same JSON as ListModelMixin, without model instances."""

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        view: GenericViewSet = self  # type: ignore[assignment]
        queryset = view.filter_queryset(view.get_queryset())
        return rows_page(queryset, view.get_serializer_class(), view.paginator, view)


class TenantViewSet(RowListMixin, TenantScopedViewMixin, viewsets.ModelViewSet):
    """CRUD on one tenant table for the scope's shop (and user, for per-user tables).

    Row level security decides what the queryset can see; `owner_fields` says which of the
    scope's values a new row takes (`shop`, `user`), never the request body.
    """

    owner_fields: tuple[str, ...] = ("shop",)
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def owner(self, request: Request) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if "shop" in self.owner_fields:
            values["shop_id"] = self.tenant.required_shop
        if "user" in self.owner_fields:
            values["user_id"] = request.user.pk
        return values

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        model: type[models.Model] = serializer.Meta.model  # type: ignore[attr-defined]
        serializer.instance = row_create(
            model=model,
            data=dict(serializer.validated_data),
            actor=str(self.request.user.pk),
            **self.owner(self.request),
        )

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        assert serializer.instance is not None
        serializer.instance = row_update(instance=serializer.instance, data=dict(serializer.validated_data))


def nested_list(
    view: GenericViewSet,
    queryset: QuerySet[Any],
    serializer_class: type[BaseSerializer[Any]],
    ordering: tuple[str, ...],
) -> Response:
    """A cursor-paginated list of a parent's children (a campaign's performance, ...)."""
    return rows_page(queryset, serializer_class, FixedOrderCursorPagination(ordering), view)
