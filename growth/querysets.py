"""Chainable read filters for the growth tables."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from django.db import models

from tenancy.querysets import ShopQuerySet

if TYPE_CHECKING:
    # Named in string type arguments below, which ruff does not count as uses.
    from .models import (  # noqa: F401
        AdCampaign,
        AdPerformance,
        SeoAudit,
        SeoRanking,
        SocialAnalytics,
        SocialPost,
    )


class SeoAuditQuerySet(ShopQuerySet["SeoAudit"]):
    def crawled_between(self, start: datetime.datetime, end: datetime.datetime) -> SeoAuditQuerySet:
        return self.filter(crawled_at__gte=start, crawled_at__lt=end)


class SeoRankingQuerySet(ShopQuerySet["SeoRanking"]):
    def top(self, limit: int = 100) -> SeoRankingQuerySet:
        """Rankings at or above `limit`; `limit <= 100` is served by the partial index."""
        return self.filter(position__lte=limit)

    def for_keyword(self, keyword: str) -> SeoRankingQuerySet:
        return self.filter(keyword=keyword)


class AdCampaignQuerySet(ShopQuerySet["AdCampaign"]):
    def active(self) -> AdCampaignQuerySet:
        return self.filter(campaign_status="active")


class AdPerformanceQuerySet(ShopQuerySet["AdPerformance"]):
    def between(self, start: datetime.date, end: datetime.date) -> AdPerformanceQuerySet:
        return self.filter(date__gte=start, date__lte=end)

    def best_roas(self) -> AdPerformanceQuerySet:
        return self.order_by(models.F("roas").desc(nulls_last=True))


class SocialPostQuerySet(ShopQuerySet["SocialPost"]):
    pass


class SocialAnalyticsQuerySet(ShopQuerySet["SocialAnalytics"]):
    def best_engagement(self) -> SocialAnalyticsQuerySet:
        return self.order_by(models.F("engagement_rate").desc(nulls_last=True))
