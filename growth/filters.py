"""FilterSets for the growth resources: the columns the schema indexes."""

from __future__ import annotations

import django_filters

from tenancy.api.filters import TenantFilterSet, UTCDateTimeFilter

from .models import AdCampaign, AdPerformance, SeoAudit, SeoRanking, SocialAnalytics, SocialPost


class AdCampaignFilterSet(TenantFilterSet):
    class Meta:
        model = AdCampaign
        fields = {
            "campaign_status": ["exact", "in"],
            "platform": ["exact"],
            "platform_campaign_id": ["exact"],
            "bid_strategy": ["exact"],
            "start_date": ["gte", "lte"],
        }


class AdPerformanceFilterSet(TenantFilterSet):
    date_from = django_filters.DateFilter(field_name="date", lookup_expr="gte")
    date_to = django_filters.DateFilter(field_name="date", lookup_expr="lte")
    min_roas = django_filters.NumberFilter(field_name="roas", lookup_expr="gte")

    class Meta:
        model = AdPerformance
        fields = {"campaign": ["exact"]}


def score_range(field: str) -> tuple[django_filters.NumberFilter, django_filters.NumberFilter]:
    """`min_<field>` / `max_<field>`: an inclusive score range."""
    return (
        django_filters.NumberFilter(field_name=field, lookup_expr="gte", label=f"{field} at least"),
        django_filters.NumberFilter(field_name=field, lookup_expr="lte", label=f"{field} at most"),
    )


class SeoAuditFilterSet(TenantFilterSet):
    crawled_from = UTCDateTimeFilter(field_name="crawled_at", lookup_expr="gte")
    crawled_to = UTCDateTimeFilter(field_name="crawled_at", lookup_expr="lte")
    min_technical_score, max_technical_score = score_range("technical_score")
    min_content_score, max_content_score = score_range("content_score")
    min_performance_score, max_performance_score = score_range("performance_score")

    ordered_ranges = (
        ("crawled_from", "crawled_to"),
        ("min_technical_score", "max_technical_score"),
        ("min_content_score", "max_content_score"),
        ("min_performance_score", "max_performance_score"),
    )

    class Meta:
        model = SeoAudit
        fields: dict[str, list[str]] = {}


class SeoRankingFilterSet(TenantFilterSet):
    # A constant `position <= N` (N <= 100) is implied by the partial index's predicate
    # `position <= 100`, so PostgreSQL can answer "top N" from seo_rankings_top100_idx.
    position_lte = django_filters.NumberFilter(field_name="position", lookup_expr="lte")

    ordered_ranges = (("tracked_at__gte", "tracked_at__lte"), ("tracked_on__gte", "tracked_on__lte"))

    class Meta:
        model = SeoRanking
        fields = {
            "keyword": ["exact", "icontains"],
            "search_engine": ["exact"],
            "location": ["exact"],
            "featured_snippet": ["exact"],
            "tracked_at": ["gte", "lte"],
            "tracked_on": ["gte", "lte"],
        }


class SocialPostFilterSet(TenantFilterSet):
    published_from = UTCDateTimeFilter(field_name="published_at", lookup_expr="gte")
    published_to = UTCDateTimeFilter(field_name="published_at", lookup_expr="lte")

    ordered_ranges = (("published_from", "published_to"),)

    class Meta:
        model = SocialPost
        fields = {"platform": ["exact"], "platform_post_id": ["exact"]}


class SocialAnalyticsFilterSet(TenantFilterSet):
    measured_from = UTCDateTimeFilter(field_name="measured_at", lookup_expr="gte")
    measured_to = UTCDateTimeFilter(field_name="measured_at", lookup_expr="lte")
    min_engagement_rate = django_filters.NumberFilter(field_name="engagement_rate", lookup_expr="gte")

    ordered_ranges = (("measured_from", "measured_to"),)

    class Meta:
        model = SocialAnalytics
        fields = {"social_post": ["exact"], "platform": ["exact"]}
