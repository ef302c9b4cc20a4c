"""`manage.py generate_briefings`: every figure of a briefing against hand-computed values.

The fixture gives shop alpha a week (2025-03-03..09) and the week before (2025-02-24..
03-02) of ads, SEO audits and rankings, social snapshots, experiments and onboarding, plus
rows just outside both weeks that must not count. Shop beta has loud figures on the same
days that would change every number if they leaked into alpha's briefing.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from advanced.briefings.llm import TEMPLATE_MODEL
from advanced.briefings.services import BriefingError, briefing_generate, briefing_period
from advanced.experiments.factories import ExperimentFactory, two_variants
from advanced.models import CeoBriefing, ExperimentStatus
from growth.factories import (
    AdCampaignFactory,
    AdPerformanceFactory,
    SeoAuditFactory,
    SeoRankingFactory,
    SocialAnalyticsFactory,
    SocialPostFactory,
)
from onboarding.factories import OnboardingProgressFactory
from tenancy.factories import ShopFactory, UserFactory
from tenancy.models import Shop
from tenancy.scope import atomic_scope, service_scope

pytestmark = pytest.mark.django_db

ALPHA = "alpha-brief.myshopify.com"
BETA = "beta-brief.myshopify.com"
PERIOD_END = "2025-03-09"


def at(day: str, hour: int = 12, minute: int = 0) -> datetime.datetime:
    return datetime.datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=datetime.UTC)


def ad_day(campaign: Any, day: str, cost: str, revenue: str) -> None:
    AdPerformanceFactory(
        campaign=campaign,
        date=datetime.date.fromisoformat(day),
        cost=Decimal(cost),
        revenue=Decimal(revenue),
    )


def audit(shop: Shop, when: datetime.datetime, technical: int, content: int, performance: int) -> None:
    SeoAuditFactory(
        shop=shop,
        crawled_at=when,
        technical_score=technical,
        content_score=content,
        performance_score=performance,
    )


def ranking(shop: Shop, keyword: str, day: str, position: int, engine: str = "google") -> None:
    when = at(day, 6)
    SeoRankingFactory(
        shop=shop,
        keyword=keyword,
        search_engine=engine,
        location="US",
        position=position,
        tracked_at=when,
        tracked_on=when.date(),
    )


def snapshot(post: Any, when: datetime.datetime, likes: int, comments: int, shares: int, reach: int) -> None:
    SocialAnalyticsFactory(
        social_post=post,
        measured_at=when,
        likes=likes,
        comments=comments,
        shares=shares,
        reach=reach,
        impressions=reach * 2,
        views=reach,
    )


def step(shop: Shop, user: Any, key: str, order: int, completed_at: datetime.datetime | None, status: str) -> None:
    OnboardingProgressFactory(
        shop=shop,
        user=user,
        step_key=key,
        step_order=order,
        status=status,
        started_at=None if completed_at is None else completed_at - datetime.timedelta(minutes=5),
        completed_at=completed_at,
    )


def experiment(shop: Shop, key: str, name: str, ended: datetime.datetime | None, **fields: Any) -> Any:
    return ExperimentFactory(
        shop=shop,
        experiment_key=key,
        experiment_name=name,
        variants=two_variants(),
        started_at=at("2025-02-01"),
        ended_at=ended,
        **fields,
    )


@pytest.fixture
def alpha() -> dict[str, int]:
    """Shop alpha's data; returns the ids the expected figures name."""
    shop = ShopFactory(domain=ALPHA)
    # Ads: spend 100 + 200 + 50.50 = 350.50 and revenue 450 + 700 + 150.25 = 1300.25 this week;
    # 150 + 100 = 250.00 and 400 + 350 = 750.00 the week before.
    search = AdCampaignFactory(shop=shop, currency="USD")
    shopping = AdCampaignFactory(shop=shop, currency="USD")
    ad_day(search, "2025-03-03", "100.00", "450.00")
    ad_day(search, "2025-03-05", "200.00", "700.00")
    ad_day(shopping, "2025-03-09", "50.50", "150.25")
    ad_day(search, "2025-02-25", "150.00", "400.00")
    ad_day(shopping, "2025-03-02", "100.00", "350.00")
    ad_day(shopping, "2025-03-10", "999.00", "999.00")  # after the period
    ad_day(shopping, "2025-02-23", "888.00", "1.00")  # before the previous period

    # SEO audits: the latest of each week counts (80/65/44 against 72/65/55).
    audit(shop, at("2025-02-26", 10), 70, 60, 50)
    audit(shop, at("2025-03-01", 10), 72, 65, 55)
    audit(shop, at("2025-03-04", 10), 75, 65, 40)
    audit(shop, at("2025-03-08", 12), 80, 65, 44)
    audit(shop, at("2025-03-10", 1), 99, 99, 99)  # after the period

    # Rankings, best position per week: linen 12 -> 7 (enters), bamboo 8 -> 11 (leaves),
    # yoga 3 -> 2 (stays in), earbuds 25 (never in). linen on bing is 5 in both weeks: a
    # keyword is tracked per engine and location, so bing's rank must not hide google's entry.
    ranking(shop, "linen bed sheets", "2025-02-28", 14)
    ranking(shop, "linen bed sheets", "2025-03-01", 12)
    ranking(shop, "linen bed sheets", "2025-03-04", 9)
    ranking(shop, "linen bed sheets", "2025-03-07", 7)
    ranking(shop, "linen bed sheets", "2025-03-01", 5, engine="bing")
    ranking(shop, "linen bed sheets", "2025-03-04", 5, engine="bing")
    ranking(shop, "bamboo toothbrush", "2025-02-27", 8)
    ranking(shop, "bamboo toothbrush", "2025-03-05", 13)
    ranking(shop, "bamboo toothbrush", "2025-03-08", 11)
    ranking(shop, "yoga mat non slip", "2025-02-27", 3)
    ranking(shop, "yoga mat non slip", "2025-03-05", 2)
    ranking(shop, "wireless earbuds", "2025-03-05", 25)
    ranking(shop, "linen bed sheets", "2025-03-10", 1)  # after the period

    # Social: the latest snapshot of each post within the week, by engagement then reach.
    # tt-2 150/2000 = 0.075; ig-1 (latest) 100/2000 = 0.05; fb-3 50/1000 = 0.05 with less
    # reach; ig-4 10/1000 = 0.01 is fourth; x-5 was only measured the week before.
    ig1 = SocialPostFactory(shop=shop, platform="instagram", platform_post_id="ig-1")
    tt2 = SocialPostFactory(shop=shop, platform="tiktok", platform_post_id="tt-2")
    fb3 = SocialPostFactory(shop=shop, platform="facebook", platform_post_id="fb-3")
    ig4 = SocialPostFactory(shop=shop, platform="instagram", platform_post_id="ig-4")
    x5 = SocialPostFactory(shop=shop, platform="x", platform_post_id="x-5")
    snapshot(ig1, at("2025-03-04", 10), 50, 5, 5, 1000)  # 0.06, but not the latest
    snapshot(ig1, at("2025-03-08", 10), 80, 10, 10, 2000)
    snapshot(ig1, at("2025-03-10", 10), 900, 0, 0, 1000)  # after the period
    snapshot(tt2, at("2025-03-06"), 100, 20, 30, 2000)
    snapshot(fb3, at("2025-03-07"), 40, 5, 5, 1000)
    snapshot(ig4, at("2025-03-05"), 10, 0, 0, 1000)
    snapshot(x5, at("2025-03-01"), 500, 0, 0, 1000)

    # Experiments: two completed in the week (one winner, one without), one completed the
    # week before, one still running.
    winner = experiment(
        shop,
        "checkout-button",
        "Checkout button colour",
        at("2025-03-06", 15),
        status=ExperimentStatus.COMPLETED,
        winning_variant="treatment",
        confidence_level=Decimal("0.9731"),
    )
    no_winner = experiment(
        shop,
        "bundle-discount",
        "Bundle discount",
        at("2025-03-07", 9),
        status=ExperimentStatus.COMPLETED,
        winning_variant=None,
        confidence_level=Decimal("0.6200"),
    )
    experiment(
        shop,
        "free-shipping",
        "Free shipping banner",
        at("2025-02-28"),
        status=ExperimentStatus.COMPLETED,
        winning_variant="control",
        confidence_level=Decimal("0.9900"),
    )
    experiment(shop, "product-layout", "Product page layout", None, status=ExperimentStatus.RUNNING)

    # Onboarding: 6 (user, step) rows; completed by the end of the week: 02-20, 03-04 and
    # 03-09 23:30 (3 of 6 = 50.0 %), of which 2 within the week; 03-10 is after it.
    owner, member = UserFactory(username="alpha-brief-owner"), UserFactory(username="alpha-brief-member")
    step(shop, owner, "connect-store", 0, at("2025-02-20"), "completed")
    step(shop, owner, "import-products", 1, at("2025-03-04"), "completed")
    step(shop, owner, "connect-google-ads", 2, at("2025-03-09", 23, 30), "completed")
    step(shop, owner, "connect-social", 3, None, "in_progress")
    step(shop, member, "connect-store", 0, at("2025-03-10", 8), "completed")
    step(shop, member, "invite-team", 5, None, "not_started")
    return {
        "ig1": ig1.id,
        "tt2": tt2.id,
        "fb3": fb3.id,
        "winner": winner.id,
        "no_winner": no_winner.id,
    }


@pytest.fixture
def beta() -> None:
    """Shop beta: figures on alpha's days that would change every one of alpha's numbers."""
    shop = ShopFactory(domain=BETA)
    campaign = AdCampaignFactory(shop=shop, currency="EUR")
    ad_day(campaign, "2025-03-04", "10000.00", "1.00")
    ad_day(campaign, "2025-02-25", "5.00", "90000.00")
    audit(shop, at("2025-03-09", 1), 10, 10, 10)
    ranking(shop, "bamboo toothbrush", "2025-03-05", 1)
    ranking(shop, "linen bed sheets", "2025-02-28", 1)
    post = SocialPostFactory(shop=shop, platform="tiktok", platform_post_id="beta-viral")
    snapshot(post, at("2025-03-05"), 900, 50, 50, 1000)
    experiment(
        shop,
        "beta-test",
        "Beta pricing",
        at("2025-03-05"),
        status=ExperimentStatus.COMPLETED,
        winning_variant="control",
        confidence_level=Decimal("0.9999"),
    )
    user = UserFactory(username="beta-brief-owner")
    for order, key in enumerate(["connect-store", "import-products", "invite-team"]):
        step(shop, user, key, order, at("2025-03-05"), "completed")


def expected_key_metrics(ids: dict[str, int]) -> dict[str, Any]:
    return {
        "version": 1,
        "period": {
            "type": "weekly",
            "start": "2025-03-03",
            "end": "2025-03-09",
            "days": 7,
            "previous_start": "2025-02-24",
            "previous_end": "2025-03-02",
            "previous_days": 7,
        },
        "ads": {
            "currencies": ["USD"],
            # 100.50 / 250.00 = 40.2 %
            "spend": {"current": "350.50", "previous": "250.00", "change": "100.50", "change_pct": 40.2},
            # 550.25 / 750.00 = 73.366... %
            "revenue": {"current": "1300.25", "previous": "750.00", "change": "550.25", "change_pct": 73.4},
            # 1300.25 / 350.50 = 3.7097...; 750 / 250 = 3; (3.7097 - 3) / 3 = 23.656... %
            "roas": {"current": 3.71, "previous": 3.0, "change": 0.71, "change_pct": 23.7},
        },
        "seo": {
            "latest_audit_at": "2025-03-08T12:00:00+00:00",
            "previous_audit_at": "2025-03-01T10:00:00+00:00",
            "scores": {
                # 8 / 72 = 11.11 %; -11 / 55 = -20 %
                "technical": {"current": 80, "previous": 72, "change": 8, "change_pct": 11.1, "trend": "up"},
                "content": {"current": 65, "previous": 65, "change": 0, "change_pct": 0.0, "trend": "flat"},
                "performance": {"current": 44, "previous": 55, "change": -11, "change_pct": -20.0, "trend": "down"},
            },
            "keywords_entered_top10": [
                {
                    "keyword": "linen bed sheets",
                    "search_engine": "google",
                    "location": "US",
                    "best_position": 7,
                    "previous_best_position": 12,
                }
            ],
            "keywords_left_top10": [
                {
                    "keyword": "bamboo toothbrush",
                    "search_engine": "google",
                    "location": "US",
                    "best_position": 11,
                    "previous_best_position": 8,
                }
            ],
        },
        "social": {
            "top_posts": [
                {
                    "social_post_id": ids["tt2"],
                    "platform": "tiktok",
                    "platform_post_id": "tt-2",
                    "post_url": "https://tiktok.example/p/tt-2",
                    "measured_at": "2025-03-06T12:00:00+00:00",
                    "engagement_rate": 0.075,
                    "reach": 2000,
                    "likes": 100,
                    "comments": 20,
                    "shares": 30,
                },
                {
                    "social_post_id": ids["ig1"],
                    "platform": "instagram",
                    "platform_post_id": "ig-1",
                    "post_url": "https://instagram.example/p/ig-1",
                    "measured_at": "2025-03-08T10:00:00+00:00",
                    "engagement_rate": 0.05,
                    "reach": 2000,
                    "likes": 80,
                    "comments": 10,
                    "shares": 10,
                },
                {
                    "social_post_id": ids["fb3"],
                    "platform": "facebook",
                    "platform_post_id": "fb-3",
                    "post_url": "https://facebook.example/p/fb-3",
                    "measured_at": "2025-03-07T12:00:00+00:00",
                    "engagement_rate": 0.05,
                    "reach": 1000,
                    "likes": 40,
                    "comments": 5,
                    "shares": 5,
                },
            ]
        },
        "experiments": {
            "concluded": [
                {
                    "experiment_id": ids["winner"],
                    "experiment_key": "checkout-button",
                    "experiment_name": "Checkout button colour",
                    "ended_at": "2025-03-06T15:00:00+00:00",
                    "winning_variant": "treatment",
                    "winning_variant_name": "New page",
                    "confidence_level": 0.9731,
                },
                {
                    "experiment_id": ids["no_winner"],
                    "experiment_key": "bundle-discount",
                    "experiment_name": "Bundle discount",
                    "ended_at": "2025-03-07T09:00:00+00:00",
                    "winning_variant": None,
                    "winning_variant_name": None,
                    "confidence_level": 0.62,
                },
            ]
        },
        "onboarding": {"steps_total": 6, "steps_completed": 3, "completion_pct": 50.0, "completed_in_period": 2},
    }


# Score = |percent change| for movements, fixed for events (winner 60, keyword in 40, out 30,
# no winner 15, onboarding 10); the content score did not move, so it is no insight.
EXPECTED_INSIGHTS = [
    {
        "rank": 1,
        "kind": "ads_movement",
        "title": "Ad revenue up 73.4%",
        "detail": "USD 1,300.25 against USD 750.00 in the previous period.",
        "metric": "ads.revenue",
        "change": 73.4,
        "score": 73.4,
    },
    {
        "rank": 2,
        "kind": "experiment_winner",
        "title": 'Experiment "Checkout button colour": "treatment" (New page) won',
        "detail": "Completed on 2025-03-06 at 97.3% confidence.",
        "metric": "experiments.concluded",
        "change": None,
        "score": 60.0,
    },
    {
        "rank": 3,
        "kind": "ads_movement",
        "title": "Ad spend up 40.2%",
        "detail": "USD 350.50 against USD 250.00 in the previous period.",
        "metric": "ads.spend",
        "change": 40.2,
        "score": 40.2,
    },
    {
        "rank": 4,
        "kind": "keyword_entered_top10",
        "title": '"linen bed sheets" entered the top 10',
        "detail": "Best position #7 on google US, from #12 in the previous period.",
        "metric": "seo.keywords_entered_top10",
        "change": 5,
        "score": 40.0,
    },
    {
        "rank": 5,
        "kind": "keyword_left_top10",
        "title": '"bamboo toothbrush" left the top 10',
        "detail": "Best position #11 on google US, from #8 in the previous period.",
        "metric": "seo.keywords_left_top10",
        "change": -3,
        "score": 30.0,
    },
    {
        "rank": 6,
        "kind": "ads_movement",
        "title": "ROAS up 23.7%",
        "detail": "3.71 against 3.00 in the previous period.",
        "metric": "ads.roas",
        "change": 23.7,
        "score": 23.7,
    },
    {
        "rank": 7,
        "kind": "seo_score_movement",
        "title": "Performance SEO score down 11 points",
        "detail": "44 at the latest audit against 55 in the previous period.",
        "metric": "seo.scores.performance",
        "change": -11,
        "score": 20.0,
    },
    {
        "rank": 8,
        "kind": "experiment_no_winner",
        "title": 'Experiment "Bundle discount" ended without a winner',
        "detail": "Completed on 2025-03-07.",
        "metric": "experiments.concluded",
        "change": None,
        "score": 15.0,
    },
    {
        "rank": 9,
        "kind": "seo_score_movement",
        "title": "Technical SEO score up 8 points",
        "detail": "80 at the latest audit against 72 in the previous period.",
        "metric": "seo.scores.technical",
        "change": 8,
        "score": 11.1,
    },
    {
        "rank": 10,
        "kind": "onboarding_progress",
        "title": "2 onboarding steps completed",
        "detail": "50.0% of the shop's onboarding steps are complete (3 of 6).",
        "metric": "onboarding.completed_in_period",
        "change": 2,
        "score": 10.0,
    },
]

EXPECTED_SUMMARY = (
    "Weekly briefing for alpha-brief.myshopify.com from 2025-03-03 to 2025-03-09. "
    "Ad spend was USD 350.50 (+40.2% on the previous period) and ad revenue USD 1,300.25 (+73.4%), "
    "a ROAS of 3.71 (previous 3.00). "
    "Latest SEO scores: technical 80 (up from 72), content 65 (unchanged), performance 44 (down from 55). "
    '1 keyword entered the top 10: "linen bed sheets" (#7, google US); '
    '1 left it: "bamboo toothbrush" (google US). '
    "The best social post was tiktok post tt-2 with 7.50% engagement on a reach of 2,000. "
    'Experiment "Checkout button colour" concluded: "treatment" (New page) won at 97.3% confidence. '
    'Experiment "Bundle discount" concluded without a winner. '
    "Onboarding is 50.0% complete (3 of 6 steps), 2 completed in this period. "
    "Largest movement: Ad revenue up 73.4%."
)


def generate(*args: str) -> str:
    out = StringIO()
    call_command("generate_briefings", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def weekly(*extra: str) -> str:
    return generate("--type", "weekly", "--period-end", PERIOD_END, *extra)


def briefings(**filters: Any) -> list[CeoBriefing]:
    with atomic_scope(service_scope()):
        return list(CeoBriefing.objects.filter(**filters).order_by("shop_id"))


# --- Figures ----------------------------------------------------------------------------


def test_every_key_metric_equals_the_hand_computed_figure(alpha: dict[str, int], beta: None) -> None:
    weekly("--shop", ALPHA)

    [briefing] = briefings(shop_id=ALPHA)
    assert (briefing.period_start, briefing.period_end) == (datetime.date(2025, 3, 3), datetime.date(2025, 3, 9))
    assert briefing.briefing_type == "weekly"
    assert briefing.key_metrics == expected_key_metrics(alpha)


def test_insights_are_ranked_by_documented_score(alpha: dict[str, int], beta: None) -> None:
    weekly("--shop", ALPHA)

    [briefing] = briefings(shop_id=ALPHA)
    assert briefing.insights == EXPECTED_INSIGHTS


def test_template_summary_states_the_real_figures(alpha: dict[str, int], beta: None) -> None:
    weekly("--shop", ALPHA)

    [briefing] = briefings(shop_id=ALPHA)
    assert briefing.executive_summary == EXPECTED_SUMMARY
    assert (briefing.generation_model, briefing.generation_tokens) == (TEMPLATE_MODEL, None)


def test_other_shops_data_never_reaches_a_briefing(alpha: dict[str, int], beta: None) -> None:
    output = weekly()

    alpha_row, beta_row = briefings()
    assert alpha_row.shop_id == ALPHA
    assert alpha_row.key_metrics == expected_key_metrics(alpha)
    assert alpha_row.insights == EXPECTED_INSIGHTS
    # Beta's own briefing holds only beta's figures: EUR, 10000.00 against 5.00 of spend.
    ads = beta_row.key_metrics["ads"]
    assert ads["currencies"] == ["EUR"]
    assert (ads["spend"]["current"], ads["spend"]["previous"]) == ("10000.00", "5.00")
    assert [p["platform_post_id"] for p in beta_row.key_metrics["social"]["top_posts"]] == ["beta-viral"]
    assert [e["experiment_key"] for e in beta_row.key_metrics["experiments"]["concluded"]] == ["beta-test"]
    assert beta_row.key_metrics["onboarding"]["steps_total"] == 3
    assert "Ad spend was EUR 10,000.00" in beta_row.executive_summary
    assert f"{ALPHA}: created" in output and f"{BETA}: created" in output
    assert "2 created, 0 updated, 0 failed" in output


def test_a_shop_with_no_data_gets_an_empty_briefing_without_made_up_numbers(db: None) -> None:
    ShopFactory(domain="empty-brief.myshopify.com")

    generate("--type", "daily", "--period-end", PERIOD_END)

    [briefing] = briefings()
    metrics = briefing.key_metrics
    assert metrics["ads"] == {
        "currencies": [],
        "spend": {"current": "0.00", "previous": "0.00", "change": "0.00", "change_pct": None},
        "revenue": {"current": "0.00", "previous": "0.00", "change": "0.00", "change_pct": None},
        "roas": {"current": None, "previous": None, "change": None, "change_pct": None},
    }
    assert metrics["seo"]["scores"]["technical"] == {
        "current": None,
        "previous": None,
        "change": None,
        "change_pct": None,
        "trend": None,
    }
    assert metrics["onboarding"] == {
        "steps_total": 0,
        "steps_completed": 0,
        "completion_pct": None,
        "completed_in_period": 0,
    }
    assert briefing.insights == []
    assert briefing.executive_summary == (
        "Daily briefing for empty-brief.myshopify.com on 2025-03-09. "
        "No ad spend or revenue was recorded in this period or the one before."
    )


def test_ads_of_a_period_with_no_previous_spend_have_no_percent_change(db: None) -> None:
    shop = ShopFactory(domain="new-brief.myshopify.com")
    ad_day(AdCampaignFactory(shop=shop), "2025-03-09", "20.00", "50.00")

    generate("--type", "daily", "--period-end", PERIOD_END)

    [briefing] = briefings()
    assert briefing.key_metrics["ads"]["spend"] == {
        "current": "20.00",
        "previous": "0.00",
        "change": "20.00",
        "change_pct": None,
    }
    assert briefing.key_metrics["ads"]["roas"] == {"current": 2.5, "previous": None, "change": None, "change_pct": None}
    assert "Ad spend was USD 20.00 (no previous figure on the previous period)" in briefing.executive_summary
    assert "a ROAS of 2.50 (no previous figure)" in briefing.executive_summary


def test_amounts_in_several_currencies_name_no_currency_in_the_text(db: None) -> None:
    shop = ShopFactory(domain="mixed-brief.myshopify.com")
    ad_day(AdCampaignFactory(shop=shop, currency="USD"), "2025-03-09", "10.00", "30.00")
    ad_day(AdCampaignFactory(shop=shop, currency="EUR"), "2025-03-08", "5.00", "0.00")

    generate("--type", "daily", "--period-end", PERIOD_END)

    [briefing] = briefings()
    # The day before is the previous period: its EUR still shows among the currencies.
    assert briefing.key_metrics["ads"]["currencies"] == ["EUR", "USD"]
    assert "Ad spend was 10.00 (+100.0% on the previous period)" in briefing.executive_summary
    assert "USD" not in briefing.executive_summary and "EUR" not in briefing.executive_summary


# --- Periods ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("briefing_type", "end", "current", "previous"),
    [
        ("daily", "2025-03-09", ("2025-03-09", "2025-03-09"), ("2025-03-08", "2025-03-08")),
        ("weekly", "2025-03-09", ("2025-03-03", "2025-03-09"), ("2025-02-24", "2025-03-02")),
        ("monthly", "2025-03-31", ("2025-03-01", "2025-03-31"), ("2025-02-01", "2025-02-28")),
        ("monthly", "2024-02-29", ("2024-02-01", "2024-02-29"), ("2024-01-01", "2024-01-31")),
        ("quarterly", "2025-06-30", ("2025-04-01", "2025-06-30"), ("2025-01-01", "2025-03-31")),
        ("quarterly", "2025-03-31", ("2025-01-01", "2025-03-31"), ("2024-10-01", "2024-12-31")),
    ],
)
def test_period_and_previous_period(
    briefing_type: str, end: str, current: tuple[str, str], previous: tuple[str, str]
) -> None:
    period = briefing_period(briefing_type=briefing_type, period_end=datetime.date.fromisoformat(end))
    assert (period.current.start.isoformat(), period.current.end.isoformat()) == current
    assert (period.previous.start.isoformat(), period.previous.end.isoformat()) == previous


def test_monthly_briefing_covers_the_calendar_month(alpha: dict[str, int]) -> None:
    generate("--type", "monthly", "--period-end", "2025-02-28", "--shop", ALPHA)

    [briefing] = briefings(shop_id=ALPHA)
    assert (briefing.period_start, briefing.period_end) == (datetime.date(2025, 2, 1), datetime.date(2025, 2, 28))
    # February: 150.00 (02-25) + 888.00 (02-23); the 03-02 row belongs to March.
    assert briefing.key_metrics["ads"]["spend"]["current"] == "1038.00"
    assert briefing.key_metrics["period"]["previous_start"] == "2025-01-01"


# --- Idempotency, filters, dry run ------------------------------------------------------


def test_rerun_updates_the_same_row_and_keeps_the_review(alpha: dict[str, int]) -> None:
    weekly("--shop", ALPHA)
    reviewer = UserFactory(username="brief-reviewer")
    reviewed_at = at("2025-03-11", 9)
    with atomic_scope(service_scope()):
        CeoBriefing.objects.filter(shop_id=ALPHA).update(
            rating=4, feedback_notes="Lead with revenue.", reviewed_by=reviewer, reviewed_at=reviewed_at
        )
        [first] = CeoBriefing.objects.filter(shop_id=ALPHA)
    # Late data for the week: the second run must pick it up.
    with atomic_scope(service_scope()):
        ad_day(AdCampaignFactory(shop=ShopFactory(domain=ALPHA)), "2025-03-08", "49.50", "0.00")

    output = weekly("--shop", ALPHA)

    [second] = briefings(shop_id=ALPHA)
    assert second.pk == first.pk
    assert (second.rating, second.feedback_notes, second.reviewed_by_id, second.reviewed_at) == (
        4,
        "Lead with revenue.",
        reviewer.pk,
        reviewed_at,
    )
    assert second.key_metrics["ads"]["spend"]["current"] == "400.00"
    assert f"{ALPHA}: updated" in output
    assert "0 created, 1 updated, 0 failed" in output


def test_shop_option_generates_only_that_shop(alpha: dict[str, int], beta: None) -> None:
    output = weekly("--shop", BETA)

    assert [b.shop_id for b in briefings()] == [BETA]
    assert ALPHA not in output


def test_inactive_shops_are_skipped_unless_named(alpha: dict[str, int], beta: None) -> None:
    with atomic_scope(service_scope()):
        Shop.objects.filter(domain=BETA).update(is_active=False)

    weekly()
    assert [b.shop_id for b in briefings()] == [ALPHA]
    weekly("--shop", BETA)
    assert [b.shop_id for b in briefings()] == [ALPHA, BETA]


def test_dry_run_prints_the_briefing_and_writes_nothing(alpha: dict[str, int], beta: None) -> None:
    output = weekly("--dry-run")

    assert briefings() == []
    assert f"{ALPHA}: would create" in output
    assert EXPECTED_SUMMARY in output
    assert '"change_pct": 73.4' in output
    assert "insight 1: [ads_movement] Ad revenue up 73.4%" in output
    assert "2 would be created, 0 updated, 0 failed; nothing was written" in output


def test_dry_run_of_an_existing_briefing_says_it_would_update(alpha: dict[str, int]) -> None:
    weekly("--shop", ALPHA)
    [before] = briefings()

    output = weekly("--shop", ALPHA, "--dry-run")

    assert f"{ALPHA}: would update" in output
    [after] = briefings()
    assert after.updated_at == before.updated_at


def test_service_generates_without_the_command(alpha: dict[str, int]) -> None:
    with atomic_scope(service_scope()):
        briefing = briefing_generate(shop_id=ALPHA, briefing_type="weekly", period_end=datetime.date(2025, 3, 9))
        again = briefing_generate(shop_id=ALPHA, briefing_type="weekly", period_end=datetime.date(2025, 3, 9))
        assert CeoBriefing.objects.filter(shop_id=ALPHA).count() == 1
    assert again.pk == briefing.pk
    assert briefing.key_metrics == expected_key_metrics(alpha)


# --- Bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "weekly", "--period-end", "2025-13-01"], "--period-end must be a date as YYYY-MM-DD"),
        (["--type", "weekly", "--period-end", "09/03/2025"], "--period-end must be a date as YYYY-MM-DD"),
        (["--type", "monthly", "--period-end", "2025-03-15"], "must be its last day, e.g. 2025-03-31"),
        (["--type", "quarterly", "--period-end", "2025-04-30"], "must be its last day, e.g. 2025-06-30"),
        (["--type", "weekly", "--period-end", "2999-01-01"], "is in the future"),
        (["--type", "yearly", "--period-end", "2025-03-09"], "invalid choice: 'yearly'"),
        (["--period-end", "2025-03-09"], "the following arguments are required: --type"),
        (["--type", "weekly", "--period-end", "2025-03-09", "--shop", "nope.myshopify.com"], "no shop"),
    ],
)
def test_invalid_arguments_are_command_errors_and_write_nothing(
    alpha: dict[str, int], args: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        generate(*args)
    assert briefings() == []


def test_service_refuses_a_bad_period(db: None) -> None:
    with pytest.raises(BriefingError, match="calendar month"):
        briefing_period(briefing_type="monthly", period_end=datetime.date(2025, 3, 30))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"LLM_PROVIDER": "claude-by-carrier-pigeon"}, "LLM_PROVIDER must be one of template, openai"),
        ({"LLM_PROVIDER": "openai", "OPENAI_API_KEY": ""}, "needs OPENAI_API_KEY"),
    ],
)
def test_misconfigured_provider_is_a_command_error(
    alpha: dict[str, int], settings: Any, overrides: dict[str, str], message: str
) -> None:
    for name, value in overrides.items():
        setattr(settings, name, value)
    with pytest.raises(CommandError, match=message):
        weekly()
    assert briefings() == []


# --- Summary by a language model (a local chat completions server) -----------------------


class ChatServer:
    """A chat completions endpoint on 127.0.0.1: records requests, answers as told."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.answer: Any = {}
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(body)})
                payload = json.dumps(server.answer).encode()
                time.sleep(server.delay)
                try:
                    self.send_response(server.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (the timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chat_server(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChatServer]:
    # A proxy from the environment must not intercept the local call.
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with ChatServer() as server:
        settings.LLM_PROVIDER = "openai"
        settings.OPENAI_API_KEY = "sk-test-key"
        settings.OPENAI_BASE_URL = server.url
        settings.LLM_MODEL = "gpt-test"
        settings.LLM_TIMEOUT_SECONDS = 5
        yield server


LLM_TEXT = "Revenue rose 73.4% to USD 1,300.25 while spend rose 40.2%; the checkout test found a winner."


def test_llm_writes_the_summary_and_model_and_tokens_are_recorded(
    alpha: dict[str, int], chat_server: ChatServer
) -> None:
    chat_server.answer = {
        "id": "chatcmpl-1",
        "model": "gpt-test-2025-01-01",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"  {LLM_TEXT}\n"}}],
        "usage": {"prompt_tokens": 900, "completion_tokens": 60, "total_tokens": 960},
    }

    output = weekly("--shop", ALPHA)

    [briefing] = briefings()
    assert briefing.executive_summary == LLM_TEXT
    assert (briefing.generation_model, briefing.generation_tokens) == ("gpt-test-2025-01-01", 960)
    assert briefing.key_metrics == expected_key_metrics(alpha)
    assert f"{ALPHA}: created (gpt-test-2025-01-01, 10 insights)" in output
    [request] = chat_server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test-key"
    assert request["body"]["model"] == "gpt-test"
    system, user = request["body"]["messages"]
    assert system["role"] == "system" and "never estimate" in system["content"]
    # The model is given exactly the stored figures.
    assert json.loads(user["content"]) == {
        "shop": ALPHA,
        "briefing_type": "weekly",
        "key_metrics": expected_key_metrics(alpha),
        "insights": EXPECTED_INSIGHTS,
    }


@pytest.mark.parametrize(
    ("status", "answer", "reason"),
    [
        (500, {"error": {"message": "upstream exploded"}}, "HTTP 500"),
        (200, {"choices": []}, "no choices[0].message.content"),
        (200, {"choices": [{"message": {"content": "   "}}]}, "content is empty"),
    ],
)
def test_provider_failure_falls_back_to_the_template_and_says_so(
    alpha: dict[str, int], chat_server: ChatServer, status: int, answer: Any, reason: str
) -> None:
    chat_server.status, chat_server.answer = status, answer

    output = weekly("--shop", ALPHA)

    [briefing] = briefings()
    assert briefing.executive_summary == EXPECTED_SUMMARY
    assert (briefing.generation_model, briefing.generation_tokens) == (TEMPLATE_MODEL, None)
    assert f"{ALPHA}: created (template-v1, 10 insights); openai failed (" in output
    assert reason in output and "used the template" in output
    assert "1 created, 0 updated, 0 failed, 1 with the template after a provider error" in output


def test_unreachable_provider_falls_back_to_the_template(alpha: dict[str, int], settings: Any) -> None:
    with ChatServer() as server:
        url = server.url
    # The server is closed: nothing listens on its port any more.
    settings.LLM_PROVIDER, settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "openai", "sk-test", url

    output = weekly("--shop", ALPHA)

    [briefing] = briefings()
    assert briefing.generation_model == TEMPLATE_MODEL
    assert "openai failed (no answer from" in output


def test_slow_provider_times_out_and_falls_back_to_the_template(
    alpha: dict[str, int], chat_server: ChatServer, settings: Any
) -> None:
    settings.LLM_TIMEOUT_SECONDS = 1
    chat_server.delay = 2.0
    chat_server.answer = {"model": "gpt-test", "choices": [{"message": {"content": LLM_TEXT}}]}

    output = weekly("--shop", ALPHA)

    [briefing] = briefings()
    assert (briefing.executive_summary, briefing.generation_model) == (EXPECTED_SUMMARY, TEMPLATE_MODEL)
    assert "openai failed (no answer from" in output and "timed out" in output


def test_dry_run_does_not_call_the_provider(alpha: dict[str, int], chat_server: ChatServer) -> None:
    output = weekly("--shop", ALPHA, "--dry-run")

    assert chat_server.requests == []
    assert EXPECTED_SUMMARY in output
    assert briefings() == []
