"""The ViewSet every tenant resource derives from: scope, ownership and the service writes."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import QuerySet
from rest_framework import viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.viewsets import GenericViewSet

from tenancy.services import row_create, row_update

from .pagination import FixedOrderCursorPagination
from .scoping import TenantScopedViewMixin


class TenantViewSet(TenantScopedViewMixin, viewsets.ModelViewSet):
    """CRUD on one tenant table for the scope's shop (and user, for per-user tables).

    Row level security decides what the queryset can see; `owner_fields` says which of the
    scope's values a new row takes (`shop`, `user`), never the request body.
    """

    owner_fields: tuple[str, ...] = ("shop",)
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def owner(self, request: Request) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if "shop" in self.owner_fields:
            values["shop_id"] = request.membership.shop_id  # type: ignore[attr-defined]
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
    paginator = FixedOrderCursorPagination(ordering)
    page = paginator.paginate_queryset(queryset, view.request, view=view)
    serializer = serializer_class(page, many=True, context=view.get_serializer_context())
    return paginator.get_paginated_response(serializer.data)


class TenantReadOnlyViewSet(TenantScopedViewMixin, viewsets.ReadOnlyModelViewSet):
    """List and retrieve only (rows written by jobs, e.g. generated briefings)."""
