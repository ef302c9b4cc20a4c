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

from ..filters import (
    AdCampaignFilterSet,
    AdPerformanceFilterSet,
    SeoAuditFilterSet,
    SeoRankingFilterSet,
    SocialAnalyticsFilterSet,
    SocialPostFilterSet,
)
from ..models import AdCampaign, AdPerformance, SeoAudit, SeoRanking, SocialAnalytics, SocialPost
from .serializers import (
    AdCampaignSerializer,
    AdPerformanceRowSerializer,
    AdPerformanceSerializer,
    SeoAuditRowSerializer,
    SeoAuditSerializer,
    SeoRankingRowSerializer,
    SeoRankingSerializer,
    SocialAnalyticsRowSerializer,
    SocialAnalyticsSerializer,
    SocialPostSerializer,
)


class AdCampaignViewSet(TenantViewSet):
    """Ad campaigns of the shop as defined on the ad platform."""

    queryset = AdCampaign.objects.all()
    serializer_class = AdCampaignSerializer
    filterset_class = AdCampaignFilterSet
    ordering_fields = ["campaign_name", "campaign_status", "start_date", "created_at"]
    ordering = ["campaign_name", "id"]
    search_fields = ["campaign_name"]

    @extend_schema(responses=AdPerformanceSerializer(many=True), filters=False)
    # The pagination class documents the cursor page shape nested_list returns.
    @action(detail=True, methods=["get"], pagination_class=TimeSeriesPagination)
    def performance(self, request: Request, pk: str | None = None) -> Response:
        """The campaign's daily performance, newest first (cursor pages)."""
        queryset = AdPerformance.objects.filter(campaign=self.get_object())
        return nested_list(self, queryset, AdPerformanceSerializer, ("-date", "-id"))


class AdPerformanceViewSet(BulkUpsertMixin, TenantViewSet):
    """One row per campaign and day; ratios (ctr, cpc, cpa, roas) are generated, read-only."""

    queryset = AdPerformance.objects.all()
    serializer_class = AdPerformanceSerializer
    filterset_class = AdPerformanceFilterSet
    pagination_class = TimeSeriesPagination
    ordering_fields = ["date", "roas", "created_at"]
    ordering = ["-date", "-id"]
    bulk_serializer_class = AdPerformanceRowSerializer
    bulk_conflict_fields = ("campaign_id", "date")


class SeoAuditViewSet(BulkUpsertMixin, TenantViewSet):
    """Daily crawls of the shop's storefront: Core Web Vitals, scores (0-100) and issue counts."""

    queryset = SeoAudit.objects.all()
    serializer_class = SeoAuditSerializer
    filterset_class = SeoAuditFilterSet
    pagination_class = TimeSeriesPagination
    ordering_fields = ["crawled_at"]
    ordering = ["-crawled_at", "-id"]
    bulk_serializer_class = SeoAuditRowSerializer
    bulk_conflict_fields = ("shop_id", "crawled_at")


class SeoRankingViewSet(BulkUpsertMixin, TenantViewSet):
    """One position per keyword, search engine, location and UTC day; tracked_on defaults to
    the UTC date of tracked_at."""

    queryset = SeoRanking.objects.all()
    serializer_class = SeoRankingSerializer
    filterset_class = SeoRankingFilterSet
    pagination_class = TimeSeriesPagination
    ordering_fields = ["tracked_at", "position"]
    ordering = ["-tracked_at", "-id"]
    bulk_serializer_class = SeoRankingRowSerializer
    bulk_conflict_fields = ("shop_id", "keyword", "search_engine", "location", "tracked_on")


class SocialPostViewSet(TenantViewSet):
    """Posts the shop published on social platforms; the parents of social analytics."""

    queryset = SocialPost.objects.all()
    serializer_class = SocialPostSerializer
    filterset_class = SocialPostFilterSet
    ordering_fields = ["published_at", "created_at"]
    ordering = ["-published_at", "-id"]

    # The route pages with cursors (nested_list), so its schema names the cursor paginator,
    # not the page numbers of the post list.
    @extend_schema(responses=SocialAnalyticsSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"], pagination_class=TimeSeriesPagination)
    def analytics(self, request: Request, pk: str | None = None) -> Response:
        """The post's analytics snapshots, newest measurement first (cursor pages)."""
        queryset = SocialAnalytics.objects.filter(social_post=self.get_object())
        return nested_list(self, queryset, SocialAnalyticsSerializer, ("-measured_at", "-id"))


class SocialAnalyticsViewSet(BulkUpsertMixin, TenantViewSet):
    """Snapshots of a post's reach and engagement; platform is the post's, engagement_rate is
    generated (read-only). Ordered by engagement_rate, the list holds the snapshots that have a
    rate (reach > 0)."""

    queryset = SocialAnalytics.objects.all()
    serializer_class = SocialAnalyticsSerializer
    filterset_class = SocialAnalyticsFilterSet
    pagination_class = TimeSeriesPagination
    ordering_fields = ["measured_at", "engagement_rate"]
    ordering = ["-measured_at", "-id"]
    bulk_serializer_class = SocialAnalyticsRowSerializer
    bulk_conflict_fields = ("social_post_id", "measured_at")
    bulk_parent_columns = ("platform",)

    def bulk_prepare(self, rows: list[tuple[int, dict[str, Any]]]) -> None:
        # The composite key (social_post_id, shop_domain, platform) requires the post's platform.
        parents = self.bulk_parents(rows)
        for _, row in rows:
            (row["platform"],) = parents[row["social_post_id"]]
