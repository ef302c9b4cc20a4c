"""Chainable read filters for the growth tables."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from django.db import models
from django.db.models import DateField, DecimalField, F, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce, NullIf

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


_Q = TypeVar("_Q", bound=models.QuerySet[Any])

MONEY: DecimalField[Any, Any] = DecimalField(max_digits=14, decimal_places=2)


def last_days_of_data(queryset: _Q, *, field: str, days: int) -> _Q:
    """The rows of the last `days` days that have data, counted back from the newest row's day.

    Anchored at the newest row rather than today, so a campaign that ended or a keyword no
    longer tracked still shows its final stretch. The newest day is a scalar subquery on the
    same filter: one statement, served by the (parent, date DESC) indexes.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    newest = queryset.order_by(f"-{field}").values(field)[:1]
    first_day = Subquery(newest, output_field=DateField()) - Value(datetime.timedelta(days=days - 1))
    return queryset.filter(**{f"{field}__gte": first_day})


class RankingPoint(TypedDict):
    tracked_on: datetime.date
    search_engine: str
    location: str
    position: int


class SeoAuditQuerySet(ShopQuerySet["SeoAudit"]):
    def crawled_between(self, start: datetime.datetime, end: datetime.datetime) -> SeoAuditQuerySet:
        return self.filter(crawled_at__gte=start, crawled_at__lt=end)


class SeoRankingQuerySet(ShopQuerySet["SeoRanking"]):
    def top(self, limit: int = 100) -> SeoRankingQuerySet:
        """Rankings at or above `limit`; `limit <= 100` is served by the partial index."""
        return self.filter(position__lte=limit)

    def for_keyword(self, keyword: str) -> SeoRankingQuerySet:
        return self.filter(keyword=keyword)

    def position_history(self, *, days: int = 90) -> models.QuerySet[SeoRanking, RankingPoint]:
        """Position per day, search engine and location over the last `days` days of data.

        Filter to one shop and keyword first (`for_keyword(...).filter(shop_id=...)`): the rows
        of several keywords would share a (day, engine, location) and be indistinguishable.
        """
        return (
            last_days_of_data(self, field="tracked_on", days=days)
            .order_by("tracked_on", "search_engine", "location")
            .values("tracked_on", "search_engine", "location", "position")
        )


class AdCampaignQuerySet(ShopQuerySet["AdCampaign"]):
    def active(self) -> AdCampaignQuerySet:
        return self.filter(campaign_status="active")

    def with_totals_since(self, since: datetime.date) -> AdCampaignQuerySet:
        """Annotate `spend_since`, `revenue_since` (0 without data) and `roas_since` (NULL
        without spend): totals of the campaign's performance from `since` on.

        Correlated subqueries rather than a join with GROUP BY: PostgreSQL evaluates them only
        for the rows a page returns (above the sort and below the LIMIT in the plan, unless the
        list is sorted by one of them), each an index range scan on (campaign_id, date DESC),
        and the admin's COUNT(*) stays a plain count.
        """
        from .models import AdPerformance

        def total(column: str) -> Coalesce:
            per_campaign = (
                AdPerformance.objects.filter(campaign=OuterRef("pk"), date__gte=since)
                .order_by()
                .values("campaign")
                .annotate(total=Sum(column))
                .values("total")
            )
            return Coalesce(Subquery(per_campaign, output_field=MONEY), Value(0), output_field=MONEY)

        return self.annotate(spend_since=total("cost"), revenue_since=total("revenue")).annotate(
            roas_since=F("revenue_since") / NullIf(F("spend_since"), Value(0), output_field=MONEY)
        )


class AdPerformanceQuerySet(ShopQuerySet["AdPerformance"]):
    def between(self, start: datetime.date, end: datetime.date) -> AdPerformanceQuerySet:
        return self.filter(date__gte=start, date__lte=end)

    def best_roas(self) -> AdPerformanceQuerySet:
        return self.order_by(models.F("roas").desc(nulls_last=True))

    def daily_totals(self, *, days: int = 90) -> models.QuerySet[AdPerformance, dict[str, Any]]:
        """`total_cost`, `total_revenue` and `total_roas` per `date`, oldest first, over the last
        `days` days of data.

        Filter to a campaign first (`filter(campaign=...)`); over several campaigns the totals
        add up per day and ROAS is that day's total revenue over total cost. `total_roas` is
        NULL on a day without cost, like the generated column.
        """
        return (
            last_days_of_data(self, field="date", days=days)
            .order_by("date")
            .values("date")
            .annotate(total_cost=Sum("cost"), total_revenue=Sum("revenue"))
            .annotate(total_roas=F("total_revenue") / NullIf(F("total_cost"), Value(0), output_field=MONEY))
        )


class SocialPostQuerySet(ShopQuerySet["SocialPost"]):
    pass


class SocialAnalyticsQuerySet(ShopQuerySet["SocialAnalytics"]):
    def best_engagement(self) -> SocialAnalyticsQuerySet:
        return self.order_by(models.F("engagement_rate").desc(nulls_last=True))
