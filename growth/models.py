"""Growth data: SEO audits and rankings, ad campaigns and their daily metrics,
social posts and their analytics."""

from __future__ import annotations

from typing import ClassVar

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q

from tenancy.db import choices_check, nonnegative_checks, range_checks, ratio_field
from tenancy.models import ShopScopedModel, shop_key_without_constraint
from tenancy.tables import PolicyKind, Retention, TenantTable

from .querysets import (
    AdCampaignQuerySet,
    AdPerformanceQuerySet,
    SeoAuditQuerySet,
    SeoRankingQuerySet,
    SocialAnalyticsQuerySet,
    SocialPostQuerySet,
)

SCORE_VALIDATORS = [MinValueValidator(0), MaxValueValidator(100)]


class SeoAudit(ShopScopedModel):
    """One daily crawl of a shop's storefront: Core Web Vitals, scores and issue counts."""

    tenancy: ClassVar[TenantTable] = TenantTable(policy=PolicyKind.SHOP)

    crawled_at = models.DateTimeField()
    pages_crawled = models.PositiveIntegerField(default=0)
    avg_lcp = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Largest Contentful Paint, ms.",
    )
    avg_fid = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="First Input Delay, ms.",
    )
    avg_cls = models.DecimalField(
        max_digits=6,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Cumulative Layout Shift (unitless).",
    )
    technical_score = models.PositiveSmallIntegerField(null=True, blank=True, validators=SCORE_VALIDATORS)
    content_score = models.PositiveSmallIntegerField(null=True, blank=True, validators=SCORE_VALIDATORS)
    performance_score = models.PositiveSmallIntegerField(null=True, blank=True, validators=SCORE_VALIDATORS)
    critical_issues = models.PositiveIntegerField(default=0)
    high_priority_issues = models.PositiveIntegerField(default=0)

    objects = SeoAuditQuerySet.as_manager()

    class Meta:
        db_table = "seo_audits"
        ordering = ["-crawled_at"]
        get_latest_by = "crawled_at"
        constraints = [
            # Natural key of ingestion, and the schema's "recent audits per shop" index.
            models.UniqueConstraint(F("shop"), F("crawled_at").desc(), name="seo_audits_shop_crawled_idx"),
            *nonnegative_checks(
                "pages_crawled",
                "avg_lcp",
                "avg_fid",
                "avg_cls",
                "critical_issues",
                "high_priority_issues",
            ),
            *range_checks(0, 100, "technical_score", "content_score", "performance_score"),
        ]

    def __str__(self) -> str:
        return f"{self.shop_id} audit {self.crawled_at:%Y-%m-%d %H:%M}"


class SearchEngine(models.TextChoices):
    GOOGLE = "google", "Google"
    BING = "bing", "Bing"
    YAHOO = "yahoo", "Yahoo"
    DUCKDUCKGO = "duckduckgo", "DuckDuckGo"


class SeoRanking(ShopScopedModel):
    """The position of a shop for one keyword on one search engine and location, per day."""

    tenancy: ClassVar[TenantTable] = TenantTable(
        policy=PolicyKind.SHOP, retention=Retention("tracked_on", days=365), partition_by="tracked_on"
    )

    keyword = models.CharField(max_length=500)
    position = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    url = models.URLField(max_length=2048, blank=True, default="", help_text="The page that ranked.")
    search_volume = models.PositiveIntegerField(null=True, blank=True)
    search_engine = models.CharField(max_length=16, choices=SearchEngine.choices, default=SearchEngine.GOOGLE)
    location = models.CharField(
        max_length=100,
        blank=True,
        default="",
        help_text="Market the position was measured in, e.g. 'US'.",
    )
    featured_snippet = models.BooleanField(default=False)
    tracked_at = models.DateTimeField()
    tracked_on = models.DateField(
        help_text="UTC day of tracked_at; one ranking per keyword, engine and location a day."
    )

    objects = SeoRankingQuerySet.as_manager()

    class Meta:
        db_table = "seo_rankings"
        ordering = ["-tracked_at"]
        get_latest_by = "tracked_at"
        indexes = [
            models.Index(
                fields=["shop", "keyword", "-tracked_at"],
                name="seo_rankings_keyword_hist_idx",
            ),
            models.Index(
                fields=["position"],
                condition=Q(position__lte=100),
                name="seo_rankings_top100_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["shop", "keyword", "search_engine", "location", "tracked_on"],
                name="%(app_label)s_%(class)s_daily_uniq",
            ),
            models.CheckConstraint(
                condition=Q(position__gte=1),
                name="%(app_label)s_%(class)s_position_gte_1",
            ),
            models.CheckConstraint(
                condition=~Q(keyword=""),
                name="%(app_label)s_%(class)s_keyword_not_empty",
            ),
            choices_check("search_engine", SearchEngine),
            *nonnegative_checks("search_volume"),
        ]

    def __str__(self) -> str:
        return f"{self.keyword!r} #{self.position} on {self.tracked_on}"


class AdPlatform(models.TextChoices):
    GOOGLE_ADS = "google_ads", "Google Ads"
    MICROSOFT_ADS = "microsoft_ads", "Microsoft Ads"
    META_ADS = "meta_ads", "Meta Ads"


class BidStrategy(models.TextChoices):
    MANUAL_CPC = "manual_cpc", "Manual CPC"
    MAXIMIZE_CLICKS = "maximize_clicks", "Maximize clicks"
    MAXIMIZE_CONVERSIONS = "maximize_conversions", "Maximize conversions"
    MAXIMIZE_CONVERSION_VALUE = "maximize_conversion_value", "Maximize conversion value"
    TARGET_CPA = "target_cpa", "Target CPA"
    TARGET_ROAS = "target_roas", "Target ROAS"


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    ENDED = "ended", "Ended"
    REMOVED = "removed", "Removed"


class AdCampaign(ShopScopedModel):
    """A paid-search campaign of a shop as defined on the ad platform."""

    tenancy: ClassVar[TenantTable] = TenantTable(policy=PolicyKind.SHOP)

    platform = models.CharField(max_length=20, choices=AdPlatform.choices, default=AdPlatform.GOOGLE_ADS)
    platform_campaign_id = models.CharField(max_length=100, help_text="The campaign's id on the ad platform.")
    campaign_name = models.CharField(max_length=255)
    daily_budget = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    total_budget = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, default="USD", help_text="ISO 4217 code.")
    bid_strategy = models.CharField(max_length=32, choices=BidStrategy.choices, default=BidStrategy.MANUAL_CPC)
    campaign_status = models.CharField(max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT)
    start_date = models.DateField(null=True, blank=True)
    end_date = models.DateField(null=True, blank=True)

    objects = AdCampaignQuerySet.as_manager()

    class Meta:
        db_table = "ad_campaigns"
        ordering = ["campaign_name"]
        indexes = [
            models.Index(fields=["shop", "campaign_status"], name="ad_campaigns_shop_status_idx"),
            models.Index(fields=["platform_campaign_id"], name="ad_campaigns_platform_id_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["shop", "platform", "platform_campaign_id"],
                name="%(app_label)s_%(class)s_platform_id_uniq",
            ),
            # Target of the composite foreign key from ad_performance.
            models.UniqueConstraint(fields=["id", "shop"], name="%(app_label)s_%(class)s_id_shop_uniq"),
            choices_check("platform", AdPlatform),
            choices_check("bid_strategy", BidStrategy),
            choices_check("campaign_status", CampaignStatus),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(start_date__isnull=True) | Q(end_date__gte=F("start_date")),
                name="%(app_label)s_%(class)s_end_after_start",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z]{3}$"),
                name="%(app_label)s_%(class)s_currency_iso",
            ),
            *nonnegative_checks("daily_budget", "total_budget"),
        ]

    def __str__(self) -> str:
        return self.campaign_name


class AdPerformance(ShopScopedModel):
    """One day of a campaign's delivery and results; ratios are generated from the inputs."""

    tenancy: ClassVar[TenantTable] = TenantTable(
        policy=PolicyKind.SHOP, retention=Retention("date", days=730), partition_by="date", parent="campaign"
    )

    # The composite key to the campaign (campaign_id, shop_domain) proves the shop.
    shop = shop_key_without_constraint()
    campaign = models.ForeignKey(
        AdCampaign,
        on_delete=models.CASCADE,
        related_name="performance",
        # The database enforces (campaign_id, shop_domain) -> ad_campaigns instead (migration).
        db_constraint=False,
        db_index=False,
    )
    date = models.DateField()
    impressions = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    conversions = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        default=0,
        help_text="Fractional with data-driven attribution.",
    )
    cost = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    revenue = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    ctr = ratio_field("clicks", "impressions", help_text="clicks / impressions")
    cpc = ratio_field("cost", "clicks", help_text="cost / clicks")
    cpa = ratio_field("cost", "conversions", help_text="cost / conversions")
    roas = ratio_field("revenue", "cost", help_text="revenue / cost")

    objects = AdPerformanceQuerySet.as_manager()

    class Meta:
        db_table = "ad_performance"
        ordering = ["-date"]
        get_latest_by = "date"
        verbose_name_plural = "ad performance"
        indexes = [
            models.Index(F("roas").desc(nulls_last=True), name="ad_performance_roas_idx"),
            # A shop's newest rows first: the API list under RLS (bench: a full scan without it).
            models.Index(fields=["shop", "-date", "-id"], name="ad_performance_shop_date_idx"),
        ]
        constraints = [
            # Natural key of ingestion, and the schema's "campaign history" index.
            models.UniqueConstraint(F("campaign"), F("date").desc(), name="ad_performance_campaign_date_idx"),
            *nonnegative_checks("impressions", "clicks", "conversions", "cost", "revenue"),
            # A click is a click on a served ad (ctr <= 1). Not `conversions <= clicks`: view-through
            # conversions have no click, and "every" counting credits one click with several
            # purchases (docs/api.md, Data integrity).
            models.CheckConstraint(
                condition=Q(clicks__lte=F("impressions")),
                name="%(app_label)s_%(class)s_clicks_lte_impressions",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} on {self.date}"


class SocialPlatform(models.TextChoices):
    INSTAGRAM = "instagram", "Instagram"
    FACEBOOK = "facebook", "Facebook"
    TIKTOK = "tiktok", "TikTok"
    X = "x", "X"
    LINKEDIN = "linkedin", "LinkedIn"
    PINTEREST = "pinterest", "Pinterest"
    YOUTUBE = "youtube", "YouTube"


class SocialPost(ShopScopedModel):
    """A post a shop published on a social platform; the parent of its analytics."""

    tenancy: ClassVar[TenantTable] = TenantTable(policy=PolicyKind.SHOP)

    platform = models.CharField(max_length=16, choices=SocialPlatform.choices)
    platform_post_id = models.CharField(max_length=200, help_text="The post's id on the platform.")
    post_url = models.URLField(max_length=2048, blank=True, default="")
    # Facebook's limit, the longest of the platforms (Instagram 2,200, LinkedIn 3,000); the API
    # refuses more (the field's max_length), the database does not check it.
    caption = models.TextField(blank=True, default="", max_length=63_206)
    published_at = models.DateTimeField(null=True, blank=True)

    objects = SocialPostQuerySet.as_manager()

    class Meta:
        db_table = "social_posts"
        ordering = ["-published_at"]
        indexes = [
            models.Index(fields=["shop", "-published_at"], name="social_posts_shop_pub_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["shop", "platform", "platform_post_id"],
                name="%(app_label)s_%(class)s_platform_id_uniq",
            ),
            # Target of the composite foreign key from social_analytics (platform is copied too).
            models.UniqueConstraint(
                fields=["id", "shop", "platform"],
                name="%(app_label)s_%(class)s_id_shop_platform_uniq",
            ),
            choices_check("platform", SocialPlatform),
        ]

    def __str__(self) -> str:
        return f"{self.get_platform_display()} {self.platform_post_id}"


class SocialAnalytics(ShopScopedModel):
    """A snapshot of a social post's reach and engagement at one moment."""

    tenancy: ClassVar[TenantTable] = TenantTable(
        policy=PolicyKind.SHOP,
        retention=Retention("measured_at", days=365),
        partition_by="measured_at",
        parent="social_post",
    )

    # The composite key to the post (social_post_id, shop_domain, platform) proves the shop.
    shop = shop_key_without_constraint()
    social_post = models.ForeignKey(
        SocialPost,
        on_delete=models.CASCADE,
        related_name="analytics",
        # The database enforces (social_post_id, shop_domain, platform) -> social_posts (migration).
        db_constraint=False,
        db_index=False,
    )
    platform = models.CharField(max_length=16, choices=SocialPlatform.choices)
    measured_at = models.DateTimeField()
    views = models.PositiveIntegerField(default=0)
    likes = models.PositiveIntegerField(default=0)
    comments = models.PositiveIntegerField(default=0)
    shares = models.PositiveIntegerField(default=0)
    reach = models.PositiveIntegerField(default=0)
    impressions = models.PositiveIntegerField(default=0)
    engagement_rate = ratio_field(
        ("likes", "comments", "shares"),
        "reach",
        help_text="(likes + comments + shares) / reach",
    )

    objects = SocialAnalyticsQuerySet.as_manager()

    class Meta:
        db_table = "social_analytics"
        ordering = ["-measured_at"]
        get_latest_by = "measured_at"
        verbose_name_plural = "social analytics"
        indexes = [
            models.Index(
                F("engagement_rate").desc(nulls_last=True),
                name="social_analytics_engage_idx",
            ),
        ]
        constraints = [
            # Natural key of ingestion, and the schema's "post metrics over time" index.
            models.UniqueConstraint(
                F("social_post"),
                F("measured_at").desc(),
                name="social_analytics_post_measured_idx",
            ),
            choices_check("platform", SocialPlatform),
            *nonnegative_checks("views", "likes", "comments", "shares", "reach", "impressions"),
        ]

    def __str__(self) -> str:
        return f"{self.social_post_id} at {self.measured_at:%Y-%m-%d %H:%M}"
