"""Demo data of the growth tables (`manage.py seed_demo`, runner in tenancy/demo.py): daily
SEO audits and keyword rankings, ad campaigns with their daily delivery, social posts with
their analytics snapshots."""

from __future__ import annotations

import datetime
import math
from decimal import Decimal

from tenancy.demo import DemoStep, ShopContext, at, money

from .factories import (
    KEYWORDS,
    AdCampaignFactory,
    AdPerformanceFactory,
    SeoAuditFactory,
    SeoRankingFactory,
    SocialAnalyticsFactory,
    SocialPostFactory,
)
from .models import (
    AdCampaign,
    AdPerformance,
    AdPlatform,
    BidStrategy,
    CampaignStatus,
    SeoAudit,
    SeoRanking,
    SocialAnalytics,
    SocialPlatform,
    SocialPost,
)


def _seed_seo_audits(ctx: ShopContext) -> None:
    if SeoAudit.objects.filter(shop=ctx.shop).exists():
        return
    rng = ctx.rng("seo_audits")
    lcp = rng.uniform(2600, 4200)
    technical, content = rng.uniform(55, 75), rng.uniform(50, 75)
    audits: list[SeoAudit] = []
    for day in ctx.days:
        # The shop works through its issues: pages get faster and scores drift upwards.
        lcp = max(900.0, lcp * rng.uniform(0.97, 1.01))
        technical = min(100.0, technical + rng.uniform(-1.0, 1.6))
        content = min(100.0, content + rng.uniform(-1.0, 1.2))
        audits.append(
            SeoAuditFactory.build(
                shop=ctx.shop,
                crawled_at=at(day, 2, ctx.index % 60),
                avg_lcp=money(lcp),
                # Lighthouse-like: the score falls as LCP rises past a second.
                performance_score=max(0, min(100, round(100 - (lcp - 1000) / 40))),
                technical_score=round(technical),
                content_score=round(content),
                critical_issues=max(0, round((100 - technical) / 12 + rng.uniform(-1, 1))),
                high_priority_issues=max(0, round((100 - content) / 3 + rng.uniform(-2, 2))),
            )
        )
    SeoAudit.objects.bulk_create(audits)


def _seed_seo_rankings(ctx: ShopContext) -> None:
    if SeoRanking.objects.filter(shop=ctx.shop).exists():
        return
    rng = ctx.rng("seo_rankings")
    rankings: list[SeoRanking] = []
    for keyword in KEYWORDS:
        volume = rng.choice([90, 320, 880, 1600, 2900, 6600, 12100, 27100])
        position = rng.randint(2, 70)
        for day in ctx.days:
            # A random walk that improves slowly, as rankings do after an SEO push.
            position = max(1, min(120, position + rng.choice([-3, -2, -1, -1, 0, 0, 0, 1, 2])))
            tracked_at = at(day, 5, rng.randint(0, 59))
            rankings.append(
                SeoRankingFactory.build(
                    shop=ctx.shop,
                    keyword=keyword,
                    position=position,
                    search_volume=volume,
                    featured_snippet=position <= 3 and rng.random() < 0.4,
                    tracked_at=tracked_at,
                    tracked_on=day,
                )
            )
    SeoRanking.objects.bulk_create(rankings)


# (name, platform, bid strategy, cost per click range, click-through rate range)
CAMPAIGNS = [
    ("Brand - Exact", AdPlatform.GOOGLE_ADS, BidStrategy.TARGET_CPA, (0.25, 0.6), (0.08, 0.16)),
    ("Shopping - All Products", AdPlatform.GOOGLE_ADS, BidStrategy.MAXIMIZE_CONVERSION_VALUE, (0.4, 1.1), (0.01, 0.03)),
    ("Search - Generic", AdPlatform.MICROSOFT_ADS, BidStrategy.MANUAL_CPC, (0.8, 2.2), (0.02, 0.05)),
    ("Retargeting - Cart Abandoners", AdPlatform.META_ADS, BidStrategy.TARGET_ROAS, (0.5, 1.4), (0.008, 0.02)),
]


def _seed_ads(ctx: ShopContext) -> None:
    if AdCampaign.objects.filter(shop=ctx.shop).exists():
        return
    rng = ctx.rng("ads")
    specs = CAMPAIGNS[: rng.choice([3, 4])]
    campaigns: list[AdCampaign] = []
    for number, (name, platform, strategy, _, _) in enumerate(specs, start=1):
        start_date = ctx.start - datetime.timedelta(days=rng.randint(0, 60))
        daily_budget = money(rng.choice([25, 40, 60, 80, 120, 150, 250]))
        campaigns.append(
            AdCampaignFactory.build(
                shop=ctx.shop,
                platform=platform,
                platform_campaign_id=str(9_100_000_000 + ctx.index * 1000 + number),
                campaign_name=name,
                daily_budget=daily_budget,
                # A lifetime cap comfortably above what the campaign has spent so far.
                total_budget=daily_budget * ((ctx.end - start_date).days + 90),
                bid_strategy=strategy,
                campaign_status=CampaignStatus.ACTIVE,
                start_date=start_date,
                end_date=None,
            )
        )
    # The last campaign of a four-campaign shop was paused two days ago: it stops delivering.
    paused_from = ctx.end + datetime.timedelta(days=1)
    if len(campaigns) == 4:
        campaigns[-1].campaign_status = CampaignStatus.PAUSED
        paused_from = ctx.end - datetime.timedelta(days=1)
    AdCampaign.objects.bulk_create(campaigns)

    rows: list[AdPerformance] = []
    for campaign, (_, _, _, cpc_range, ctr_range) in zip(campaigns, specs, strict=True):
        assert campaign.daily_budget is not None
        budget = float(campaign.daily_budget)
        for day in ctx.days:
            if campaign is campaigns[-1] and day >= paused_from:
                rows.append(AdPerformanceFactory.build(campaign=campaign, shop=ctx.shop, date=day, impressions=0))
                continue
            weekend = 0.8 if day.weekday() >= 5 else 1.0
            # Platforms pace spend to the daily budget: spend never exceeds it.
            spend = budget * rng.uniform(0.7, 1.0) * weekend
            cpc = rng.uniform(*cpc_range)
            clicks = max(1, int(spend / cpc))
            conversions = round(clicks * rng.uniform(0.015, 0.06), 2)
            rows.append(
                AdPerformanceFactory.build(
                    campaign=campaign,
                    shop=ctx.shop,
                    date=day,
                    impressions=int(clicks / rng.uniform(*ctr_range)),
                    clicks=clicks,
                    cost=money(min(spend, clicks * cpc)),
                    conversions=Decimal(str(conversions)),
                    revenue=money(conversions * rng.uniform(35, 95)),
                )
            )
    AdPerformance.objects.bulk_create(rows)


POST_PLATFORMS = [SocialPlatform.INSTAGRAM, SocialPlatform.TIKTOK, SocialPlatform.FACEBOOK, SocialPlatform.PINTEREST]
# Hours after publishing at which the platform reports were fetched.
SNAPSHOT_HOURS = [1, 6, 24, 72, 168]


def _seed_social(ctx: ShopContext) -> None:
    if SocialPost.objects.filter(shop=ctx.shop).exists():
        return
    rng = ctx.rng("social")
    days = ctx.days
    count = 10
    posts: list[SocialPost] = []
    for number in range(count):
        platform = POST_PLATFORMS[number % len(POST_PLATFORMS)]
        post_id = f"{ctx.prefix}-{number + 1:03d}"
        posts.append(
            SocialPostFactory.build(
                shop=ctx.shop,
                platform=platform,
                platform_post_id=post_id,
                post_url=f"https://www.{platform}.com/p/{post_id}",
                # Spread over the period; published by 16:00, so even yesterday's posts have
                # their 1 h and 6 h snapshots by now.
                published_at=at(days[number * len(days) // count], rng.randint(8, 16), rng.randint(0, 59)),
            )
        )
    SocialPost.objects.bulk_create(posts)

    snapshots: list[SocialAnalytics] = []
    for post in posts:
        assert post.published_at is not None
        impressions = rng.randint(1500, 60000) * (3 if post.platform == SocialPlatform.TIKTOK else 1)
        reach = int(impressions * rng.uniform(0.55, 0.9))
        likes = int(reach * rng.uniform(0.01, 0.07))
        final = {
            "impressions": impressions,
            "reach": reach,
            "views": int(impressions * rng.uniform(0.3, 0.8)),
            "likes": likes,
            "comments": int(likes * rng.uniform(0.03, 0.15)),
            "shares": int(likes * rng.uniform(0.02, 0.12)),
        }
        for hours in SNAPSHOT_HOURS:
            measured_at = post.published_at + datetime.timedelta(hours=hours)
            if measured_at > ctx.now:
                break
            # Cumulative counters that saturate over a few days, so snapshots only ever grow.
            share = 1 - math.exp(-hours / 30)
            snapshots.append(
                SocialAnalyticsFactory.build(
                    social_post=post,
                    shop=ctx.shop,
                    platform=post.platform,
                    measured_at=measured_at,
                    **{name: int(value * share) for name, value in final.items()},
                )
            )
    SocialAnalytics.objects.bulk_create(snapshots)


DEMO_STEPS = [
    DemoStep("seo audits", _seed_seo_audits),
    DemoStep("seo rankings", _seed_seo_rankings),
    DemoStep("ad campaigns and performance", _seed_ads),
    DemoStep("social posts and analytics", _seed_social),
]
