"""Reads of the growth tables that other apps build on (CEO briefings): one aggregate query per
figure, for one shop and one span of UTC days (tenancy/spans.py).

Every function filters on the shop explicitly. Briefings are generated as `service_role`,
whose policies show every shop, so row level security would not keep another shop's rows
out of them; the `for_shop()` filter does.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import F, Min, OuterRef, Subquery, Sum

from tenancy.spans import Span

from .models import AdPerformance, SeoAudit, SeoRanking, SocialAnalytics

# --- Ads --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdTotals:
    spend: Decimal
    revenue: Decimal
    currencies: tuple[str, ...]


def ad_totals(*, shop_id: str, span: Span) -> AdTotals:
    """Summed cost and revenue of every campaign's days in the span, and their currencies."""
    rows = AdPerformance.objects.for_shop(shop_id).filter(date__gte=span.start, date__lte=span.end)
    totals = rows.aggregate(spend=Sum("cost", default=Decimal("0")), revenue=Sum("revenue", default=Decimal("0")))
    currencies = rows.order_by("campaign__currency").values_list("campaign__currency", flat=True).distinct()
    return AdTotals(spend=totals["spend"], revenue=totals["revenue"], currencies=tuple(currencies))


# --- SEO --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditScores:
    crawled_at: datetime.datetime
    technical: int | None
    content: int | None
    performance: int | None


def latest_audit_scores(*, shop_id: str, span: Span) -> AuditScores | None:
    """The scores of the last audit crawled in the span, if there was one."""
    row = (
        SeoAudit.objects.for_shop(shop_id)
        .filter(crawled_at__gte=span.starts_at, crawled_at__lt=span.ends_before)
        .order_by("-crawled_at")
        .values("crawled_at", "technical_score", "content_score", "performance_score")
        .first()
    )
    if row is None:
        return None
    return AuditScores(
        crawled_at=row["crawled_at"],
        technical=row["technical_score"],
        content=row["content_score"],
        performance=row["performance_score"],
    )


# (keyword, search_engine, location): a keyword is tracked separately per engine and market.
KeywordKey = tuple[str, str, str]


def best_keyword_positions(*, shop_id: str, span: Span) -> dict[KeywordKey, int]:
    """The best (lowest) position of every tracked keyword over the span."""
    rows = (
        SeoRanking.objects.for_shop(shop_id)
        .filter(tracked_on__gte=span.start, tracked_on__lte=span.end)
        .order_by()
        .values("keyword", "search_engine", "location")
        .annotate(best=Min("position"))
    )
    return {(row["keyword"], row["search_engine"], row["location"]): int(row["best"]) for row in rows}


# --- Social -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PostSnapshot:
    social_post_id: int
    platform: str
    platform_post_id: str
    post_url: str
    measured_at: datetime.datetime
    engagement_rate: Decimal | None
    reach: int
    likes: int
    comments: int
    shares: int


def top_post_snapshots(*, shop_id: str, span: Span, limit: int = 3) -> list[PostSnapshot]:
    """The best posts of the span: each post's latest snapshot measured in the span, ranked by
    engagement rate (a post with no reach has none and comes last), then reach, then id."""
    in_span = SocialAnalytics.objects.for_shop(shop_id).filter(
        measured_at__gte=span.starts_at, measured_at__lt=span.ends_before
    )
    latest = in_span.filter(social_post_id=OuterRef("social_post_id")).order_by("-measured_at").values("id")[:1]
    rows = (
        in_span.filter(id=Subquery(latest))
        .order_by(F("engagement_rate").desc(nulls_last=True), "-reach", "social_post_id")
        .values(
            "social_post_id",
            "platform",
            "social_post__platform_post_id",
            "social_post__post_url",
            "measured_at",
            "engagement_rate",
            "reach",
            "likes",
            "comments",
            "shares",
        )[:limit]
    )
    return [
        PostSnapshot(
            social_post_id=row["social_post_id"],
            platform=row["platform"],
            platform_post_id=row["social_post__platform_post_id"],
            post_url=row["social_post__post_url"],
            measured_at=row["measured_at"],
            engagement_rate=row["engagement_rate"],
            reach=row["reach"],
            likes=row["likes"],
            comments=row["comments"],
            shares=row["shares"],
        )
        for row in rows
    ]
