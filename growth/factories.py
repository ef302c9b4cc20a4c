"""factory_boy factories for the growth tables; child rows copy their parent's shop."""

from __future__ import annotations

import datetime
import random
from decimal import Decimal

import factory
from django.utils import timezone

from tenancy.factories import ScopedFactory, ShopFactory

from .models import (
    AdCampaign,
    AdPerformance,
    BidStrategy,
    CampaignStatus,
    SeoAudit,
    SeoRanking,
    SocialAnalytics,
    SocialPlatform,
    SocialPost,
)


def _money(low: float, high: float) -> Decimal:
    return Decimal(str(round(random.uniform(low, high), 2)))


class SeoAuditFactory(ScopedFactory[SeoAudit]):
    class Meta:
        model = SeoAudit

    shop = factory.SubFactory(ShopFactory)
    crawled_at = factory.Sequence(lambda n: timezone.now().replace(microsecond=0) - datetime.timedelta(days=n))
    pages_crawled = factory.Faker("pyint", min_value=20, max_value=2000)
    avg_lcp = factory.LazyFunction(lambda: _money(1200, 4500))
    avg_fid = factory.LazyFunction(lambda: _money(10, 300))
    avg_cls = factory.LazyFunction(lambda: Decimal(str(round(random.uniform(0.01, 0.3), 4))))
    technical_score = factory.Faker("pyint", min_value=40, max_value=100)
    content_score = factory.Faker("pyint", min_value=40, max_value=100)
    performance_score = factory.Faker("pyint", min_value=30, max_value=100)
    critical_issues = factory.Faker("pyint", min_value=0, max_value=5)
    high_priority_issues = factory.Faker("pyint", min_value=0, max_value=25)


KEYWORDS = [
    "organic cotton t-shirt",
    "vegan leather wallet",
    "handmade ceramic mug",
    "minimalist watch",
    "bamboo toothbrush",
    "running shoes women",
    "linen bed sheets",
    "cold brew coffee maker",
    "yoga mat non slip",
    "wireless earbuds",
]


class SeoRankingFactory(ScopedFactory[SeoRanking]):
    class Meta:
        model = SeoRanking

    shop = factory.SubFactory(ShopFactory)
    keyword = factory.Iterator(KEYWORDS)
    position = factory.Faker("pyint", min_value=1, max_value=120)
    url = factory.LazyAttribute(lambda o: f"https://{o.shop.domain}/products/{o.keyword.replace(' ', '-')}")
    search_volume = factory.Faker("pyint", min_value=50, max_value=50000)
    search_engine = "google"
    location = "US"
    featured_snippet = factory.LazyAttribute(lambda o: o.position <= 3 and random.random() < 0.3)
    tracked_at = factory.Sequence(lambda n: timezone.now().replace(microsecond=0) - datetime.timedelta(days=n))
    tracked_on = factory.LazyAttribute(lambda o: o.tracked_at.astimezone(datetime.UTC).date())


class AdCampaignFactory(ScopedFactory[AdCampaign]):
    class Meta:
        model = AdCampaign

    shop = factory.SubFactory(ShopFactory)
    platform_campaign_id = factory.Sequence(lambda n: f"{9000000000 + n}")
    campaign_name = factory.Faker(
        "random_element",
        elements=["Brand - Exact", "Shopping - All Products", "Search - Generic", "PMax - Bestsellers"],
    )
    daily_budget = factory.LazyFunction(lambda: _money(20, 500))
    total_budget = factory.LazyAttribute(lambda o: (o.daily_budget * 30).quantize(Decimal("0.01")))
    bid_strategy = factory.Iterator(BidStrategy.values)
    campaign_status = CampaignStatus.ACTIVE
    start_date = factory.LazyFunction(lambda: timezone.now().date() - datetime.timedelta(days=90))
    end_date = None


class AdPerformanceFactory(ScopedFactory[AdPerformance]):
    class Meta:
        model = AdPerformance

    campaign = factory.SubFactory(AdCampaignFactory)
    shop = factory.SelfAttribute("campaign.shop")
    date = factory.Sequence(lambda n: timezone.now().date() - datetime.timedelta(days=n))
    impressions = factory.Faker("pyint", min_value=500, max_value=50000)
    clicks = factory.LazyAttribute(lambda o: int(o.impressions * random.uniform(0.01, 0.08)))
    conversions = factory.LazyAttribute(lambda o: Decimal(str(round(o.clicks * random.uniform(0.01, 0.06), 2))))
    cost = factory.LazyAttribute(lambda o: Decimal(str(round(o.clicks * random.uniform(0.3, 2.5), 2))))
    revenue = factory.LazyAttribute(lambda o: Decimal(str(round(float(o.conversions) * random.uniform(30, 120), 2))))


class SocialPostFactory(ScopedFactory[SocialPost]):
    class Meta:
        model = SocialPost

    shop = factory.SubFactory(ShopFactory)
    platform = factory.Iterator([SocialPlatform.INSTAGRAM, SocialPlatform.TIKTOK, SocialPlatform.FACEBOOK])
    platform_post_id = factory.Sequence(lambda n: f"post-{n:08d}")
    post_url = factory.LazyAttribute(lambda o: f"https://{o.platform}.example/p/{o.platform_post_id}")
    caption = factory.Faker("sentence", nb_words=12)
    published_at = factory.Sequence(lambda n: timezone.now().replace(microsecond=0) - datetime.timedelta(days=n))


class SocialAnalyticsFactory(ScopedFactory[SocialAnalytics]):
    class Meta:
        model = SocialAnalytics

    social_post = factory.SubFactory(SocialPostFactory)
    shop = factory.SelfAttribute("social_post.shop")
    platform = factory.SelfAttribute("social_post.platform")
    measured_at = factory.Sequence(lambda n: timezone.now().replace(microsecond=0) - datetime.timedelta(hours=n))
    impressions = factory.Faker("pyint", min_value=1000, max_value=100000)
    reach = factory.LazyAttribute(lambda o: int(o.impressions * random.uniform(0.5, 0.9)))
    views = factory.LazyAttribute(lambda o: int(o.impressions * random.uniform(0.3, 0.8)))
    likes = factory.LazyAttribute(lambda o: int(o.reach * random.uniform(0.01, 0.08)))
    comments = factory.LazyAttribute(lambda o: int(o.likes * random.uniform(0.02, 0.15)))
    shares = factory.LazyAttribute(lambda o: int(o.likes * random.uniform(0.01, 0.1)))
