"""Admin for SEO audits and rankings, ad campaigns and their daily performance, social posts."""

from __future__ import annotations

from django.contrib import admin

from tenancy.admin import AUDIT_FIELDS, ReadOnlyTabularInline, ShopChildAdmin, ShopScopedAdmin

from .models import AdCampaign, AdPerformance, SeoAudit, SeoRanking, SocialAnalytics, SocialPost

AD_RATIOS = ("ctr", "cpc", "cpa", "roas")


@admin.register(SeoAudit)
class SeoAuditAdmin(ShopScopedAdmin):
    list_display = (
        "crawled_at",
        "shop",
        "pages_crawled",
        "technical_score",
        "content_score",
        "performance_score",
        "avg_lcp",
        "avg_fid",
        "avg_cls",
        "critical_issues",
        "high_priority_issues",
    )
    list_filter = ("shop",)
    search_fields = ("shop__domain",)
    date_hierarchy = "crawled_at"
    ordering = ("-crawled_at",)


@admin.register(SeoRanking)
class SeoRankingAdmin(ShopScopedAdmin):
    list_display = (
        "tracked_on",
        "keyword",
        "shop",
        "position",
        "search_engine",
        "location",
        "featured_snippet",
        "search_volume",
    )
    list_filter = ("search_engine", "featured_snippet", "location", "shop")
    search_fields = ("keyword", "url", "shop__domain")
    date_hierarchy = "tracked_on"
    ordering = ("-tracked_on", "keyword")


class AdPerformanceInline(ReadOnlyTabularInline):
    model = AdPerformance
    fields = ("date", "impressions", "clicks", "conversions", "cost", "revenue", *AD_RATIOS)
    readonly_fields = fields
    ordering = ("-date",)
    verbose_name_plural = "daily performance (latest 30 days)"


@admin.register(AdCampaign)
class AdCampaignAdmin(ShopScopedAdmin):
    list_display = (
        "campaign_name",
        "shop",
        "platform",
        "platform_campaign_id",
        "campaign_status",
        "bid_strategy",
        "daily_budget",
        "currency",
        "start_date",
        "end_date",
    )
    list_filter = ("campaign_status", "platform", "bid_strategy", "shop")
    search_fields = ("campaign_name", "=platform_campaign_id", "shop__domain")
    date_hierarchy = "start_date"
    ordering = ("shop__domain", "campaign_name")
    inlines = (AdPerformanceInline,)


@admin.register(AdPerformance)
class AdPerformanceAdmin(ShopChildAdmin):
    parent_field = "campaign"
    list_display = (
        "date",
        "campaign",
        "shop",
        "impressions",
        "clicks",
        "conversions",
        "cost",
        "revenue",
        *AD_RATIOS,
    )
    list_select_related = ("campaign", "shop")
    list_filter = ("campaign__platform", "shop")
    search_fields = ("campaign__campaign_name", "=campaign__platform_campaign_id", "shop__domain")
    date_hierarchy = "date"
    ordering = ("-date", "campaign__campaign_name")
    autocomplete_fields = ("campaign",)
    readonly_fields = ("shop", *AD_RATIOS, *AUDIT_FIELDS)


class SocialAnalyticsInline(ReadOnlyTabularInline):
    model = SocialAnalytics
    fields = ("measured_at", "views", "likes", "comments", "shares", "reach", "impressions", "engagement_rate")
    readonly_fields = fields
    ordering = ("-measured_at",)
    verbose_name_plural = "analytics snapshots (latest 30)"


@admin.register(SocialPost)
class SocialPostAdmin(ShopScopedAdmin):
    list_display = ("published_at", "shop", "platform", "platform_post_id", "short_caption")
    list_filter = ("platform", "shop")
    search_fields = ("caption", "=platform_post_id", "shop__domain")
    date_hierarchy = "published_at"
    ordering = ("-published_at",)
    inlines = (SocialAnalyticsInline,)

    @admin.display(description="caption")
    def short_caption(self, obj: SocialPost) -> str:
        return obj.caption if len(obj.caption) <= 80 else obj.caption[:79] + "…"


@admin.register(SocialAnalytics)
class SocialAnalyticsAdmin(ShopChildAdmin):
    parent_field = "social_post"
    # The composite key covers the platform too: (social_post_id, shop_domain, platform).
    copied_from_parent = ("shop_id", "platform")
    list_display = (
        "measured_at",
        "social_post",
        "shop",
        "platform",
        "views",
        "likes",
        "comments",
        "shares",
        "reach",
        "impressions",
        "engagement_rate",
    )
    list_select_related = ("social_post", "shop")
    list_filter = ("platform", "shop")
    search_fields = ("=social_post__platform_post_id", "shop__domain")
    date_hierarchy = "measured_at"
    ordering = ("-measured_at",)
    autocomplete_fields = ("social_post",)
    readonly_fields = ("shop", "platform", "engagement_rate", *AUDIT_FIELDS)
