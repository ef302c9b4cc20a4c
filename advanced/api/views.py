"""Advanced resources: A/B experiments and their results, the knowledge base, CEO briefings."""

from __future__ import annotations

from typing import Any

from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, permissions
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from tenancy.api.pagination import TimeSeriesPagination
from tenancy.api.viewsets import TenantViewSet, nested_list
from tenancy.models import MembershipRole, ShopMembership

from ..filters import CeoBriefingFilterSet, ExperimentFilterSet, ExperimentResultFilterSet, KnowledgeDocumentFilterSet
from ..models import CeoBriefing, Experiment, ExperimentResult, KnowledgeDocument
from .serializers import (
    CeoBriefingSerializer,
    ExperimentResultSerializer,
    ExperimentSerializer,
    KnowledgeDocumentSerializer,
)

INCLUDE_EMBEDDING = OpenApiParameter(
    name="include",
    type=OpenApiTypes.STR,
    location=OpenApiParameter.QUERY,
    enum=["embedding"],
    description="`embedding` adds the 1536-float vector to the response.",
)
# The roles the ceo_briefings policy shows briefings to.
BRIEFING_ROLES = frozenset({MembershipRole.CEO, MembershipRole.OWNER})


class ExperimentViewSet(TenantViewSet):
    """A/B experiments of the shop: variants with traffic weights and one control."""

    queryset = Experiment.objects.all()
    serializer_class = ExperimentSerializer
    filterset_class = ExperimentFilterSet
    ordering_fields = ["experiment_name", "status", "started_at", "created_at"]
    ordering = ["-created_at", "-id"]

    @extend_schema(responses=ExperimentResultSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"])
    def results(self, request: Request, pk: str | None = None) -> Response:
        """The experiment's result snapshots, newest first (cursor pages)."""
        queryset = ExperimentResult.objects.filter(experiment=self.get_object())
        return nested_list(self, queryset, ExperimentResultSerializer, ("-snapshot_date", "-id"))


class ExperimentResultViewSet(TenantViewSet):
    """One variant's cumulative figures on one day; conversion_rate is generated, read-only."""

    queryset = ExperimentResult.objects.all()
    serializer_class = ExperimentResultSerializer
    filterset_class = ExperimentResultFilterSet
    pagination_class = TimeSeriesPagination
    ordering_fields = ["snapshot_date", "created_at"]
    ordering = ["-snapshot_date", "-id"]


class KnowledgeDocumentViewSet(TenantViewSet):
    """Documents the shop's AI agents retrieve; lists show current versions and no vectors."""

    # The vector is ~20 kB of text per row: never loaded for lists, only flagged.
    queryset = KnowledgeDocument.objects.defer("embedding").annotate(
        embedding_present=ExpressionWrapper(Q(embedding__isnull=False), output_field=BooleanField())
    )
    serializer_class = KnowledgeDocumentSerializer
    filterset_class = KnowledgeDocumentFilterSet
    ordering_fields = ["document_key", "title", "document_type", "updated_at", "created_at"]
    ordering = ["document_key", "-version"]

    def filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        queryset = super().filter_queryset(queryset)
        # Only lists default to current versions: an older version stays reachable by its id.
        if self.action == "list" and "is_current" not in self.request.query_params:
            queryset = queryset.filter(is_current=True)
        return queryset

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        include = self.request.query_params.get("include", "").split(",")
        context["include_embedding"] = self.action == "retrieve" and "embedding" in include
        return context

    @extend_schema(parameters=[INCLUDE_EMBEDDING])
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)


class CeoBriefingViewSet(TenantViewSet):
    """Executive briefings; only the shop's CEO and owner see or write them (row level security)."""

    queryset = CeoBriefing.objects.all()
    serializer_class = CeoBriefingSerializer
    filterset_class = CeoBriefingFilterSet
    ordering_fields = ["period_end", "rating", "created_at"]
    ordering = ["-period_end", "-id"]

    def check_role(self, request: Request) -> None:
        super().check_role(request)
        membership: ShopMembership = request.membership  # type: ignore[attr-defined]
        # The policy hides briefings from other roles (an empty list, 404 on an id) and would
        # refuse their writes with a database error; a write is refused here, before any lookup.
        if request.method not in permissions.SAFE_METHODS and membership.role not in BRIEFING_ROLES:
            raise exceptions.PermissionDenied("Only the shop's CEO or owner may write briefings.")
