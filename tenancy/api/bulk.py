"""Bulk, idempotent ingestion: POST a JSON array of rows, upserted on their natural key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import models
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from tenancy.services import duplicate_keys, rows_upsert
from tenancy.tables import ParentKey, parent_key

from .errors import flatten, validation_error

BULK_RESULT = inline_serializer(
    name="BulkResult",
    fields={
        "created": serializers.IntegerField(),
        "updated": serializers.IntegerField(),
        "rows": serializers.IntegerField(),
    },
)


class BulkUpsertMixin:
    """Adds `POST <resource>/bulk/`.

    Every row is validated first; any invalid row (or two rows with the same natural key)
    rejects the whole batch with a 400 that names each bad row's index, field and reason, and
    nothing is written. Otherwise the rows are upserted in one transaction and the response
    says how many were created and updated. Re-sending a batch changes nothing.
    """

    # Validates one row; its fields are model attribute names (e.g. `campaign_id`).
    bulk_serializer_class: type[serializers.Serializer[Any]]
    # The natural key, as model attribute names, including `shop_id` where the key has it.
    bulk_conflict_fields: Sequence[str]

    # Columns of the parent rows a batch names, read by the query that checks them (a post's
    # platform, which its analytics copy; an experiment's variants).
    bulk_parent_columns: Sequence[str] = ()

    def bulk_parent(self) -> ParentKey | None:
        """The declared parent of the view's table (`TenantTable.parent`), if it has one."""
        # The mixin is used with DRF's GenericAPIView, which provides get_queryset.
        return parent_key(self.get_queryset().model)  # type: ignore[attr-defined]

    def bulk_parents(self, rows: list[tuple[int, dict[str, Any]]]) -> dict[Any, tuple[Any, ...]]:
        """The parents (`TenantTable.parent`) the batch names and the scope can see, by key,
        each with its `bulk_parent_columns`: one query, kept for the request so that the check
        and `bulk_prepare` share it. Empty for a table without a parent."""
        cached: dict[Any, tuple[Any, ...]] | None = getattr(self, "_bulk_parents", None)
        if cached is None:
            parent = self.bulk_parent()
            cached = {}
            if parent is not None:
                wanted = {row[parent.attname] for _, row in rows}
                found = parent.model._default_manager.filter(pk__in=wanted)
                cached = {pk: tuple(values) for pk, *values in found.values_list("pk", *self.bulk_parent_columns)}
            self._bulk_parents = cached
        return cached

    def bulk_parent_errors(self, rows: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Errors for rows whose parent is not a row of this shop (one query per batch)."""
        parent = self.bulk_parent()
        if parent is None:
            return []
        visible = self.bulk_parents(rows)
        return [
            {
                "index": index,
                "field": parent.attname,
                "code": "does_not_exist",
                "message": parent.api_message(row[parent.attname]),
            }
            for index, row in rows
            if row[parent.attname] not in visible
        ]

    def bulk_prepare(self, rows: list[tuple[int, dict[str, Any]]]) -> None:
        """Fill denormalized columns (e.g. a child's copy of its parent's platform)."""

    @extend_schema(
        # The request is an array of the view's rows (TenantAutoSchema.get_request_serializer).
        responses={200: BULK_RESULT, 400: OpenApiResponse(description="Invalid batch; nothing written.")},
        description=(
            "Upsert up to API_BULK_MAX_ROWS (10,000) rows on their natural key, all or nothing. "
            "Each row replaces the stored row with the same key."
        ),
    )
    @action(detail=False, methods=["post"], url_path="bulk")
    def bulk(self, request: Request) -> Response:
        data = request.data
        if not isinstance(data, list):
            raise validation_error([{"field": None, "code": "not_a_list", "message": "Expected a JSON array of rows."}])
        limit = settings.API_BULK_MAX_ROWS
        if not data or len(data) > limit:
            message = f"A batch holds 1 to {limit} rows; got {len(data)}."
            raise validation_error([{"field": None, "code": "batch_size", "message": message}])
        child = self.bulk_serializer_class(context={"request": request, "view": self})
        errors: list[dict[str, Any]] = []
        rows: list[tuple[int, dict[str, Any]]] = []
        owner: dict[str, Any] = self.owner(request)
        for index, item in enumerate(data):
            try:
                rows.append((index, {**child.run_validation(item), **owner}))
            except serializers.ValidationError as exc:
                errors.extend(flatten(exc.detail, index=index))
        model: type[models.Model] = self.get_queryset().model
        # A key column a row leaves out takes its default in the database; compare keys the same way.
        for _, row in rows:
            for name in self.bulk_conflict_fields:
                if name not in row:
                    row[name] = model._meta.get_field(name).get_default()
        errors.extend(self.bulk_parent_errors(rows))
        for index, first in duplicate_keys(rows, self.bulk_conflict_fields).items():
            errors.append(
                {
                    "index": index,
                    "field": None,
                    "code": "duplicate_key",
                    "message": f"Same natural key ({', '.join(self.bulk_conflict_fields)}) as row {first}.",
                }
            )
        if errors:
            raise validation_error(sorted(errors, key=lambda e: (e.get("index", -1), e.get("field") or "")))
        self.bulk_prepare(rows)
        result = rows_upsert(
            model=model,
            rows=[row for _, row in rows],
            conflict_fields=self.bulk_conflict_fields,
            actor=str(request.user.pk),
        )
        return Response({"created": result.created, "updated": result.updated, "rows": result.rows}, status.HTTP_200_OK)
