"""Growth resources: SEO audits and rankings, ad campaigns and performance, social posts and analytics."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from tenancy.api.bulk import BulkUpsertMixin
from tenancy.api.pagination import TimeSeriesPagination
from tenancy.api.viewsets import TenantViewSet, nested_list

from ..filters import AdCampaignFilterSet, AdPerformanceFilterSet
from ..models import AdCampaign, AdPerformance
from .serializers import AdCampaignSerializer, AdPerformanceRowSerializer, AdPerformanceSerializer


class AdCampaignViewSet(TenantViewSet):
    queryset = AdCampaign.objects.all()
    serializer_class = AdCampaignSerializer
    filterset_class = AdCampaignFilterSet
    ordering_fields = ["campaign_name", "campaign_status", "start_date", "created_at"]
    ordering = ["campaign_name", "id"]
    search_fields = ["campaign_name"]

    @extend_schema(responses=AdPerformanceSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"])
    def performance(self, request: Request, pk: str | None = None) -> Response:
        """The campaign's daily performance, newest first (cursor pages)."""
        queryset = AdPerformance.objects.filter(campaign=self.get_object())
        return nested_list(self, queryset, AdPerformanceSerializer, ("-date", "-id"))


class AdPerformanceViewSet(BulkUpsertMixin, TenantViewSet):
    queryset = AdPerformance.objects.all()
    serializer_class = AdPerformanceSerializer
    filterset_class = AdPerformanceFilterSet
    pagination_class = TimeSeriesPagination
    ordering_fields = ["date", "roas", "created_at"]
    ordering = ["-date", "-id"]
    bulk_serializer_class = AdPerformanceRowSerializer
    bulk_conflict_fields = ("campaign_id", "date")

    def bulk_parent_errors(self, rows: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        wanted = {row["campaign_id"] for _, row in rows}
        visible = set(AdCampaign.objects.filter(pk__in=wanted).values_list("pk", flat=True))
        return [
            {
                "index": index,
                "field": "campaign_id",
                "code": "does_not_exist",
                "message": f"Campaign {row['campaign_id']} does not exist in this shop.",
            }
            for index, row in rows
            if row["campaign_id"] not in visible
        ]
