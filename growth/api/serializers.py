"""Serializers of the growth resources."""

from __future__ import annotations

import datetime
from typing import Any

from rest_framework import serializers

from tenancy.api.serializers import AUDIT_FIELDS, StrictModelSerializer, TenantModelSerializer

from ..inputs import (
    AD_PERFORMANCE_ROW_INPUTS,
    SEO_RANKING_INPUTS,
    SOCIAL_ANALYTICS_COUNTERS,
    SOCIAL_ANALYTICS_ROW_INPUTS,
)
from ..models import AdCampaign, AdPerformance, SeoAudit, SeoRanking, SocialAnalytics, SocialPost

RATIOS = ("ctr", "cpc", "cpa", "roas")


class AdCampaignSerializer(TenantModelSerializer):
    class Meta(TenantModelSerializer.Meta):
        model = AdCampaign
        fields = (
            "id",
            "shop_domain",
            "platform",
            "platform_campaign_id",
            "campaign_name",
            "daily_budget",
            "total_budget",
            "currency",
            "bid_strategy",
            "campaign_status",
            "start_date",
            "end_date",
            *AUDIT_FIELDS,
        )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start = attrs.get("start_date", getattr(self.instance, "start_date", None))
        end = attrs.get("end_date", getattr(self.instance, "end_date", None))
        if start and end and end < start:
            raise serializers.ValidationError({"end_date": ["Must not be before start_date."]})
        return attrs


def clicks_within_impressions(attrs: dict[str, Any], instance: AdPerformance | None = None) -> None:
    """400 naming `clicks` when a day has more clicks than impressions (the table's CHECK
    ad_performance clicks_lte_impressions, said first with the field's name)."""
    clicks = attrs.get("clicks", getattr(instance, "clicks", 0))
    impressions = attrs.get("impressions", getattr(instance, "impressions", 0))
    if clicks is not None and impressions is not None and clicks > impressions:
        raise serializers.ValidationError(
            {"clicks": [f"Must not exceed impressions ({impressions}): a click is a click on a served ad."]},
            code="clicks_exceed_impressions",
        )


class AdPerformanceSerializer(TenantModelSerializer):
    # Only campaigns the scope can see (its shop's) are valid choices.
    campaign = serializers.PrimaryKeyRelatedField(queryset=AdCampaign.objects.all())

    class Meta(TenantModelSerializer.Meta):
        model = AdPerformance
        fields = (
            "id",
            "shop_domain",
            "campaign",
            "date",
            "impressions",
            "clicks",
            "conversions",
            "cost",
            "revenue",
            *RATIOS,
            *AUDIT_FIELDS,
        )
        read_only_fields = (*TenantModelSerializer.Meta.read_only_fields, *RATIOS)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        clicks_within_impressions(attrs, self.instance)
        return attrs


class AdPerformanceRowSerializer(StrictModelSerializer):
    """One bulk row: the parent by id (checked per batch, not per row)."""

    campaign_id = serializers.IntegerField(min_value=1)

    class Meta:
        model = AdPerformance
        fields = AD_PERFORMANCE_ROW_INPUTS
        # The batch checks its natural key itself; per-row unique validators would query.
        validators: list[Any] = []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        clicks_within_impressions(attrs)
        return attrs


SEO_AUDIT_INPUTS = (
    "crawled_at",
    "pages_crawled",
    "avg_lcp",
    "avg_fid",
    "avg_cls",
    "technical_score",
    "content_score",
    "performance_score",
    "critical_issues",
    "high_priority_issues",
)


class SeoAuditSerializer(TenantModelSerializer):
    class Meta(TenantModelSerializer.Meta):
        model = SeoAudit
        fields = ("id", "shop_domain", *SEO_AUDIT_INPUTS, *AUDIT_FIELDS)


class SeoAuditRowSerializer(StrictModelSerializer):
    """One bulk row; its natural key is (shop, crawled_at)."""

    class Meta:
        model = SeoAudit
        fields = SEO_AUDIT_INPUTS
        # The batch checks its natural key itself; per-row unique validators would query.
        validators: list[Any] = []


# tracked_on is derived from tracked_at when left out (see tracked_on_settle).
TRACKED_ON_OPTIONAL = {"tracked_on": {"required": False}}


def tracked_on_settle(attrs: dict[str, Any], instance: SeoRanking | None) -> dict[str, Any]:
    """`tracked_on` is the UTC day of `tracked_at`: filled in when left out, refused when it differs.

    It is stored (not computed) because the daily natural key is unique on it; deriving it
    here keeps the key and the timestamp from disagreeing.
    """
    tracked_at: datetime.datetime | None = attrs.get("tracked_at", getattr(instance, "tracked_at", None))
    if tracked_at is None:
        return attrs
    day = tracked_at.astimezone(datetime.UTC).date()
    given: datetime.date | None = attrs.get("tracked_on")
    if given is None:
        if "tracked_at" in attrs:
            attrs["tracked_on"] = day
    elif given != day:
        raise serializers.ValidationError(
            {"tracked_on": [f"Must be the UTC date of tracked_at ({day.isoformat()}), or left out."]},
            code="invalid",
        )
    return attrs


class SeoRankingSerializer(TenantModelSerializer):
    class Meta(TenantModelSerializer.Meta):
        model = SeoRanking
        fields = ("id", "shop_domain", *SEO_RANKING_INPUTS, *AUDIT_FIELDS)
        extra_kwargs = TRACKED_ON_OPTIONAL

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return tracked_on_settle(attrs, self.instance)


# Natural-key columns a bulk row may leave out, with the defaults the table stores for them.
RANKING_KEY_DEFAULTS = {
    field.attname: field.get_default()
    for field in SeoRanking._meta.concrete_fields
    if field.attname in {"search_engine", "location"}
}


class SeoRankingRowSerializer(StrictModelSerializer):
    """One bulk row; its natural key is (shop, keyword, search_engine, location, tracked_on)."""

    class Meta:
        model = SeoRanking
        fields = SEO_RANKING_INPUTS
        extra_kwargs = TRACKED_ON_OPTIONAL
        validators: list[Any] = []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Key columns a row leaves out are stored with their defaults; fill them in now so
        # that the batch's duplicate-key check compares what will be stored ("google" and a
        # missing engine are the same key).
        for name, default in RANKING_KEY_DEFAULTS.items():
            attrs.setdefault(name, default)
        return tracked_on_settle(attrs, None)


class SocialPostSerializer(TenantModelSerializer):
    class Meta(TenantModelSerializer.Meta):
        model = SocialPost
        fields = (
            "id",
            "shop_domain",
            "platform",
            "platform_post_id",
            "post_url",
            "caption",
            "published_at",
            *AUDIT_FIELDS,
        )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        post: SocialPost | None = self.instance
        platform = attrs.get("platform")
        if post is not None and platform is not None and platform != post.platform and post.analytics.exists():
            # Analytics copy the platform under a composite foreign key (no ON UPDATE
            # CASCADE): the database would refuse the change with an unhelpful message.
            raise serializers.ValidationError(
                {"platform": ["Cannot change the platform of a post that has analytics."]}, code="invalid"
            )
        return attrs


class SocialAnalyticsSerializer(TenantModelSerializer):
    # Only posts the scope can see (its shop's) are valid choices.
    social_post = serializers.PrimaryKeyRelatedField(queryset=SocialPost.objects.all())
    # Output only, and a plain string in the schema: as a second enum field named `platform`
    # (besides the post's) it would collide with ad campaigns' `platform` in enum naming.
    platform = serializers.CharField(read_only=True, help_text="The post's platform, copied from the post.")

    class Meta(TenantModelSerializer.Meta):
        model = SocialAnalytics
        fields = (
            "id",
            "shop_domain",
            "social_post",
            "platform",
            "measured_at",
            *SOCIAL_ANALYTICS_COUNTERS,
            "engagement_rate",
            *AUDIT_FIELDS,
        )
        read_only_fields = (*TenantModelSerializer.Meta.read_only_fields, "engagement_rate")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        post: SocialPost | None = attrs.get("social_post")
        if post is not None:
            # The post's platform, so that the composite key (post, shop, platform) holds.
            attrs["platform"] = post.platform
        return attrs


class SocialAnalyticsRowSerializer(StrictModelSerializer):
    """One bulk row: the post by id (checked per batch, not per row); platform comes from it."""

    social_post_id = serializers.IntegerField(min_value=1)

    class Meta:
        model = SocialAnalytics
        fields = SOCIAL_ANALYTICS_ROW_INPUTS
        validators: list[Any] = []
