"""Development demo data: every table filled with a few shops of realistic, consistent data.

`demo_data_seed` fills every table with a few shops' worth of realistic, internally consistent
data through the factories. It is idempotent: shops, accounts and memberships are looked up by
deterministic keys, and a table that already holds a demo shop's rows is left alone for that
shop, so a second run adds nothing. Randomness is seeded per shop and step, so the same shop
gets the same data on every machine.
"""

from __future__ import annotations

import datetime
import math
import random
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import factory
import factory.random
import faker.generator
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import connection, models, transaction
from django.utils import timezone

from advanced.embeddings import LocalEmbeddingProvider, document_text
from advanced.factories import (
    ExperimentFactory,
    ExperimentResultFactory,
    KnowledgeDocumentFactory,
)
from advanced.llm import TemplateWriter
from advanced.models import (
    BriefingType,
    CeoBriefing,
    DocumentType,
    Experiment,
    ExperimentResult,
    ExperimentStatus,
    KnowledgeDocument,
)
from advanced.services.briefings import briefing_generate
from advanced.services.experiments import experiment_analyze
from growth.factories import (
    KEYWORDS,
    AdCampaignFactory,
    AdPerformanceFactory,
    SeoAuditFactory,
    SeoRankingFactory,
    SocialAnalyticsFactory,
    SocialPostFactory,
)
from growth.models import (
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
from onboarding.factories import ONBOARDING_STEPS, TOUR_STEPS, FeatureTourFactory, OnboardingProgressFactory
from onboarding.models import FeatureTour, OnboardingProgress, StepStatus, TourStatus

from .factories import ShopFactory, ShopMembershipFactory, UserFactory
from .models import MembershipRole, Shop, ShopMembership, User
from .scope import enter_scope, service_scope

DEMO_ADMIN_USERNAME = "admin"
DEMO_SHOP_NAMES = [
    "Northwind Outfitters",
    "Blue Fern Goods",
    "Copper Kettle Coffee",
    "Little Harbor Ceramics",
    "Alpine Thread Co.",
]
# (username suffix, role); the owner comes first: it connects the shop's ad and social accounts.
DEMO_TEAM = [
    ("owner", MembershipRole.OWNER),
    ("ceo", MembershipRole.CEO),
    ("member1", MembershipRole.MEMBER),
    ("member2", MembershipRole.MEMBER),
]
# Steps only an owner can do; other members skip them.
OWNER_ONLY_STEPS = {"connect-store", "connect-google-ads", "connect-social"}

# Every table the seed writes, in dependency order, for the summary.
DEMO_MODELS: list[type[models.Model]] = [
    User,
    Shop,
    ShopMembership,
    SeoAudit,
    SeoRanking,
    AdCampaign,
    AdPerformance,
    SocialPost,
    SocialAnalytics,
    OnboardingProgress,
    FeatureTour,
    Experiment,
    ExperimentResult,
    KnowledgeDocument,
    CeoBriefing,
]

# Any constant works; it only has to be the same for every seeding process.
_SEED_LOCK_KEY = 7_305_202_611

SeedProgress = Callable[[str], None]


def demo_shop_domain(index: int) -> str:
    return f"demo-{index}.myshopify.com"


def demo_usernames(index: int) -> list[str]:
    return [f"demo-{index}-{suffix}" for suffix, _ in DEMO_TEAM]


@dataclass(frozen=True)
class _ShopContext:
    index: int
    shop: Shop
    team: dict[str, User]
    admin: User
    start: datetime.date
    end: datetime.date
    now: datetime.datetime

    @property
    def days(self) -> list[datetime.date]:
        return [self.start + datetime.timedelta(days=k) for k in range((self.end - self.start).days + 1)]

    @property
    def prefix(self) -> str:
        return f"demo-{self.index}"

    def rng(self, step: str) -> random.Random:
        # A string seed is hashed with SHA-512, not Python's per-process hash: stable everywhere.
        return random.Random(f"{self.shop.domain}:{step}")


def _at(day: datetime.date, hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=datetime.UTC)


def _money(value: float) -> Decimal:
    return Decimal(str(round(value, 2)))


@contextmanager
def _seeded_randomness(seed: str) -> Iterator[None]:
    """Seed what the factories draw from (Python's `random`, Faker's and factory_boy's
    generators), and put the previous states back afterwards so that callers, tests in
    particular, do not see a suddenly repeatable sequence."""
    # factory_boy hangs a `state_set` flag (read by its fuzzy dates) on its Random instance.
    randgen: Any = factory.random.randgen
    states = (random.getstate(), faker.generator.random.getstate(), randgen.getstate(), randgen.state_set)
    numeric = zlib.crc32(seed.encode())
    random.seed(numeric)
    factory.random.reseed_random(numeric)
    try:
        yield
    finally:
        random.setstate(states[0])
        faker.generator.random.setstate(states[1])
        randgen.setstate(states[2])
        randgen.state_set = states[3]


# --- Accounts ------------------------------------------------------------------------------


def _seed_admin(*, password_hash: str) -> User:
    admin: User = UserFactory.create(
        username=DEMO_ADMIN_USERNAME,
        email="admin@example.com",
        first_name="Demo",
        last_name="Admin",
        is_staff=True,
        is_superuser=True,
        password=factory.Transformer.Force(password_hash),
    )
    return admin


def _seed_shop_and_team(*, index: int, password_hash: str) -> tuple[Shop, dict[str, User]]:
    name = DEMO_SHOP_NAMES[(index - 1) % len(DEMO_SHOP_NAMES)]
    if index > len(DEMO_SHOP_NAMES):
        name = f"{name} {index}"
    shop: Shop = ShopFactory.create(domain=demo_shop_domain(index), name=name)
    team: dict[str, User] = {}
    for (suffix, role), username in zip(DEMO_TEAM, demo_usernames(index), strict=True):
        user: User = UserFactory.create(
            username=username,
            password=factory.Transformer.Force(password_hash),
        )
        ShopMembershipFactory.create(user=user, shop=shop, role=role)
        team[suffix] = user
    return shop, team


# --- Growth --------------------------------------------------------------------------------


def _seed_seo_audits(ctx: _ShopContext) -> None:
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
                crawled_at=_at(day, 2, ctx.index % 60),
                avg_lcp=_money(lcp),
                # Lighthouse-like: the score falls as LCP rises past a second.
                performance_score=max(0, min(100, round(100 - (lcp - 1000) / 40))),
                technical_score=round(technical),
                content_score=round(content),
                critical_issues=max(0, round((100 - technical) / 12 + rng.uniform(-1, 1))),
                high_priority_issues=max(0, round((100 - content) / 3 + rng.uniform(-2, 2))),
            )
        )
    SeoAudit.objects.bulk_create(audits)


def _seed_seo_rankings(ctx: _ShopContext) -> None:
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
            tracked_at = _at(day, 5, rng.randint(0, 59))
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


def _seed_ads(ctx: _ShopContext) -> None:
    if AdCampaign.objects.filter(shop=ctx.shop).exists():
        return
    rng = ctx.rng("ads")
    specs = CAMPAIGNS[: rng.choice([3, 4])]
    campaigns: list[AdCampaign] = []
    for number, (name, platform, strategy, _, _) in enumerate(specs, start=1):
        start_date = ctx.start - datetime.timedelta(days=rng.randint(0, 60))
        daily_budget = _money(rng.choice([25, 40, 60, 80, 120, 150, 250]))
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
                    cost=_money(min(spend, clicks * cpc)),
                    conversions=Decimal(str(conversions)),
                    revenue=_money(conversions * rng.uniform(35, 95)),
                )
            )
    AdPerformance.objects.bulk_create(rows)


POST_PLATFORMS = [SocialPlatform.INSTAGRAM, SocialPlatform.TIKTOK, SocialPlatform.FACEBOOK, SocialPlatform.PINTEREST]
# Hours after publishing at which the platform reports were fetched.
SNAPSHOT_HOURS = [1, 6, 24, 72, 168]


def _seed_social(ctx: _ShopContext) -> None:
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
                published_at=_at(days[number * len(days) // count], rng.randint(8, 16), rng.randint(0, 59)),
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


# --- Onboarding ----------------------------------------------------------------------------


def _seed_onboarding(ctx: _ShopContext) -> None:
    if OnboardingProgress.objects.filter(shop=ctx.shop).exists():
        return
    rng = ctx.rng("onboarding")
    rows: list[OnboardingProgress] = []
    # How many steps each person has got through: the owner is done, the others are on the way.
    reached = {
        "owner": len(ONBOARDING_STEPS),
        "ceo": rng.randint(1, 3),
        "member1": rng.randint(2, 5),
        "member2": rng.randint(0, 2),
    }
    for offset, (suffix, user) in enumerate(ctx.team.items()):
        # Everyone joins within the first days of the period; steps follow within hours.
        moment = _at(ctx.days[min(offset, len(ctx.days) - 1)], 9 + offset, rng.randint(0, 59))
        for order, step in enumerate(ONBOARDING_STEPS):
            fields: dict[str, object] = {"status": StepStatus.NOT_STARTED}
            if order < reached[suffix] and suffix != "owner" and step in OWNER_ONLY_STEPS:
                fields = {"status": StepStatus.SKIPPED, "started_at": moment, "attempts": 0}
            elif order < reached[suffix]:
                spent = rng.randint(30, 900)
                fields = {
                    "status": StepStatus.COMPLETED,
                    "started_at": moment,
                    "completed_at": moment + datetime.timedelta(seconds=spent),
                    "attempts": rng.choice([1, 1, 1, 2]),
                    "time_spent_seconds": spent,
                }
                moment += datetime.timedelta(seconds=spent, minutes=rng.randint(2, 90))
            elif order == reached[suffix]:
                fields = {
                    "status": StepStatus.IN_PROGRESS,
                    "started_at": moment,
                    "attempts": 1,
                    "time_spent_seconds": rng.randint(10, 300),
                }
            rows.append(
                OnboardingProgressFactory.build(user=user, shop=ctx.shop, step_key=step, step_order=order, **fields)
            )
    OnboardingProgress.objects.bulk_create(rows)


TOURS = [
    ("dashboard-tour", "Dashboard tour"),
    ("campaigns-tour", "Campaigns tour"),
    ("experiments-tour", "Experiments"),
]


def _seed_feature_tours(ctx: _ShopContext) -> None:
    users = list(ctx.team.values())
    if FeatureTour.objects.filter(user__in=users).exists():
        return
    rng = ctx.rng("feature_tours")
    last_step = len(TOUR_STEPS) - 1
    tours: list[FeatureTour] = []
    for user in users:
        for tour_key, tour_name in TOURS[: rng.choice([2, 3])]:
            shown = _at(rng.choice(ctx.days), rng.randint(9, 18), rng.randint(0, 59))
            status = rng.choice(list(TourStatus))
            fields: dict[str, object] = {}
            if status == TourStatus.COMPLETED:
                fields = {
                    "current_step": last_step,
                    "times_shown": rng.randint(1, 3),
                    "interactions": len(TOUR_STEPS) + rng.randint(0, 4),
                    "last_shown_at": shown,
                    "completed_at": shown + datetime.timedelta(minutes=rng.randint(1, 5)),
                }
            elif status == TourStatus.ACTIVE:
                fields = {
                    "current_step": rng.randint(1, last_step),
                    "times_shown": rng.randint(1, 2),
                    "interactions": rng.randint(1, 3),
                    "last_shown_at": shown,
                }
            elif status == TourStatus.DISMISSED:
                fields = {
                    "current_step": rng.randint(0, 1),
                    "times_shown": rng.randint(1, 4),
                    "interactions": rng.randint(0, 2),
                    "last_shown_at": shown,
                    "dismissed_at": shown + datetime.timedelta(seconds=rng.randint(5, 60)),
                }
            tours.append(
                FeatureTourFactory.build(user=user, tour_key=tour_key, tour_name=tour_name, status=status, **fields)
            )
    FeatureTour.objects.bulk_create(tours)


# --- Experiments, knowledge base, briefings ------------------------------------------------

# (key, name, description, variants as (key, name))
EXPERIMENTS = [
    (
        "free-shipping-banner",
        "Free shipping banner",
        "Does a sitewide free-shipping threshold banner lift conversion?",
        [("control", "No banner"), ("banner", "Free shipping over $50")],
    ),
    (
        "checkout-button-colour",
        "Checkout button colour",
        "Which colour of the checkout button gets more orders?",
        [("control", "Black"), ("green", "Green"), ("orange", "Orange")],
    ),
    (
        "product-page-layout",
        "Product page layout",
        "Reviews above the fold against the current layout.",
        [("control", "Current layout"), ("reviews-first", "Reviews first")],
    ),
]


def _seed_experiments(ctx: _ShopContext) -> None:
    if Experiment.objects.filter(shop=ctx.shop).exists():
        return
    rng = ctx.rng("experiments")
    days = ctx.days
    experiments: list[Experiment] = []
    results: list[ExperimentResult] = []
    for number, (key, name, description, variant_specs) in enumerate(EXPERIMENTS[: rng.choice([2, 3])]):
        completed = number == 0
        started_at = _at(days[0] if completed else days[rng.randint(0, (len(days) - 1) // 2)], 10)
        ended_at = _at(days[(len(days) - 1) * 2 // 3], 18) if completed else None
        snapshot = (ended_at or _at(ctx.end, 23)).date()
        weight = round(1 / len(variant_specs), 4)
        # The last variant takes the remainder, so that the weights sum to exactly 1.
        weights = [weight] * (len(variant_specs) - 1)
        weights.append(round(1 - sum(weights), 4))
        variants = [
            {"key": vkey, "name": vname, "weight": share, "is_control": vkey == "control"}
            for (vkey, vname), share in zip(variant_specs, weights, strict=True)
        ]
        running_days = (snapshot - started_at.date()).days + 1
        base_rate, aov = rng.uniform(0.025, 0.045), rng.uniform(40, 90)
        visitors = rng.randint(500, 900) * running_days
        figures: list[tuple[str, int, int]] = []
        for vkey, _ in variant_specs:
            # Traffic splits by weight, give or take the randomness of assignment.
            participants = round(visitors * weight * rng.uniform(0.98, 1.02))
            lift = 0.0 if vkey == "control" else rng.uniform(0.15, 0.35) if completed else rng.uniform(-0.1, 0.25)
            figures.append((vkey, participants, round(participants * base_rate * (1 + lift))))
        experiment: Experiment = ExperimentFactory.build(
            shop=ctx.shop,
            experiment_key=key,
            experiment_name=name,
            description=description,
            variants=variants,
            status=ExperimentStatus.COMPLETED if completed else ExperimentStatus.RUNNING,
            started_at=started_at,
            ended_at=ended_at,
            min_sample_size=200,
        )
        for vkey, participants, conversions in figures:
            rate, order_value = conversions / participants, aov * rng.uniform(0.95, 1.05)
            results.append(
                ExperimentResultFactory.build(
                    experiment=experiment,
                    shop=ctx.shop,
                    variant_key=vkey,
                    snapshot_date=snapshot,
                    participants=participants,
                    conversions=conversions,
                    avg_order_value=_money(order_value),
                    revenue_per_user=Decimal(f"{rate * order_value:.4f}"),
                    # Revenue per user is zero for most users and about one order for the rest.
                    revenue_per_user_stddev=Decimal(f"{order_value * math.sqrt(rate * (1 - rate)):.4f}"),
                )
            )
        experiments.append(experiment)
    Experiment.objects.bulk_create(experiments)
    # The results were built before their experiments had ids; bulk_create fills the foreign
    # key in from the (now saved) related instance.
    ExperimentResult.objects.bulk_create(results)
    # p-values, lift intervals and winners come from the same analysis the API and the
    # analyze_experiments command run.
    for experiment in experiments:
        experiment_analyze(experiment=experiment)


# (key, type, title, tags)
DOCUMENTS = [
    ("shipping-policy", DocumentType.POLICY, "Shipping policy", ["shipping"]),
    ("returns-policy", DocumentType.POLICY, "Returns and exchanges", ["returns"]),
    ("size-guide", DocumentType.GUIDE, "Size guide", ["sizing"]),
    ("brand-voice", DocumentType.BRAND, "Brand voice and tone", ["brand"]),
    ("faq-payments", DocumentType.FAQ, "Payments FAQ", ["payments", "checkout"]),
    ("product-care", DocumentType.PRODUCT, "Caring for your products", ["care"]),
    ("ads-playbook", DocumentType.PLAYBOOK, "Paid search playbook", ["ads"]),
    ("seo-playbook", DocumentType.PLAYBOOK, "SEO playbook", ["seo"]),
    ("wholesale-faq", DocumentType.FAQ, "Wholesale FAQ", ["wholesale"]),
    ("q3-planning-notes", DocumentType.NOTE, "Q3 planning notes", ["planning"]),
]


def _seed_knowledge_base(ctx: _ShopContext) -> None:
    if KnowledgeDocument.objects.filter(shop=ctx.shop).exists():
        return
    rng = ctx.rng("knowledge_base")
    revised = set(rng.sample([key for key, *_ in DOCUMENTS[:-1]], 3))
    # The newest note has not been through the embedding job yet.
    unembedded = DOCUMENTS[-1][0]

    # The offline local model, always: demo data must not depend on a network or a paid API,
    # and semantic search then finds these documents with the default EMBEDDING_PROVIDER.
    embedder = LocalEmbeddingProvider()

    def build(key: str, document_type: str, title: str, tags: list[str], version: int) -> KnowledgeDocument:
        embedded = key != unembedded
        document: KnowledgeDocument = KnowledgeDocumentFactory.build(
            shop=ctx.shop,
            document_key=key,
            title=title if version == 1 else f"{title} (updated)",
            document_type=document_type,
            tags=tags,
            version=version,
            is_current=version == 2 or key not in revised,
            embedding=None,
            embedding_model="",
            source_url=f"https://{ctx.shop.domain}/pages/{key}",
        )
        if embedded:
            document.embedding = embedder.embed([document_text(title=document.title, content=document.content)])[0]
            document.embedding_model = embedder.model
        return document

    first = [build(key, kind, title, tags, 1) for key, kind, title, tags in DOCUMENTS]
    # Old versions go in first: at most one current version per key, and v2 points at v1's id.
    KnowledgeDocument.objects.bulk_create(first)
    by_key = {document.document_key: document for document in first}
    second = []
    for key, kind, title, tags in DOCUMENTS:
        if key in revised:
            document = build(key, kind, title, tags, 2)
            document.previous_version = by_key[key]
            second.append(document)
    KnowledgeDocument.objects.bulk_create(second)


def _seed_briefings(ctx: _ShopContext) -> None:
    """Weekly briefings generated from the demo data by the real job (template writer)."""
    if CeoBriefing.objects.filter(shop=ctx.shop).exists():
        return
    rng = ctx.rng("ceo_briefings")
    for week in range(math.ceil(len(ctx.days) / 7)):
        period_end = ctx.end - datetime.timedelta(days=7 * week)
        briefing = briefing_generate(
            shop_id=ctx.shop.domain, briefing_type=BriefingType.WEEKLY, period_end=period_end, writer=TemplateWriter()
        )
        if week > 0:
            # Staff have reviewed every briefing but the newest one.
            briefing.rating = rng.randint(3, 5)
            briefing.feedback_notes = rng.choice(["", "Clear and actionable.", "Too long; lead with revenue."])
            briefing.reviewed_by = ctx.admin
            briefing.reviewed_at = _at(period_end + datetime.timedelta(days=2), 11)
            briefing.save(update_fields=["rating", "feedback_notes", "reviewed_by", "reviewed_at", "updated_at"])


_SHOP_STEPS: list[tuple[str, Callable[[_ShopContext], None]]] = [
    ("seo audits", _seed_seo_audits),
    ("seo rankings", _seed_seo_rankings),
    ("ad campaigns and performance", _seed_ads),
    ("social posts and analytics", _seed_social),
    ("onboarding progress", _seed_onboarding),
    ("feature tours", _seed_feature_tours),
    ("experiments and results", _seed_experiments),
    ("knowledge base", _seed_knowledge_base),
    ("ceo briefings", _seed_briefings),
]


def demo_seed_step_count(*, shops: int) -> int:
    """How many times `demo_data_seed` reports progress: the admin, then each shop's steps."""
    return 1 + shops * (1 + len(_SHOP_STEPS))


def demo_row_counts() -> dict[str, int]:
    """Rows per table; call it in a scope that sees every shop."""
    return {model._meta.db_table: model._default_manager.count() for model in DEMO_MODELS}


@transaction.atomic
def demo_data_seed(*, shops: int, days: int, progress: SeedProgress | None = None) -> dict[str, int]:
    """Create (or complete) `shops` demo shops with `days` days of data, ending yesterday.

    Runs as `service_role` in one transaction: tables force row level security and only the
    service scope may write into any shop. Returns the row count of every table afterwards.
    """
    if shops < 1 or days < 1:
        raise ValueError("shops and days must be at least 1")
    report = progress or (lambda _label: None)
    # Hashing is deliberately slow (~0.3 s); the demo accounts share one password, so they
    # share one hash instead of paying for it a dozen times.
    password_hash = make_password(settings.DEMO_PASSWORD)
    now = timezone.now().replace(microsecond=0)
    end = now.astimezone(datetime.UTC).date() - datetime.timedelta(days=1)
    start = end - datetime.timedelta(days=days - 1)
    with enter_scope(service_scope()):
        with connection.cursor() as cursor:
            # Two seeders at once would both find a shop empty and both fill it.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SEED_LOCK_KEY])
        admin = _seed_admin(password_hash=password_hash)
        report("admin account")
        for index in range(1, shops + 1):
            with _seeded_randomness(f"{demo_shop_domain(index)}:team"):
                shop, team = _seed_shop_and_team(index=index, password_hash=password_hash)
            report(f"{shop.domain}: shop and team")
            ctx = _ShopContext(index=index, shop=shop, team=team, admin=admin, start=start, end=end, now=now)
            for label, step in _SHOP_STEPS:
                with _seeded_randomness(f"{shop.domain}:{label}"):
                    step(ctx)
                report(f"{shop.domain}: {label}")
        # Accounts that already existed keep their rows but get today's demo password, so the
        # sign-in instructions the command prints are always true.
        usernames = [DEMO_ADMIN_USERNAME, *(name for index in range(1, shops + 1) for name in demo_usernames(index))]
        User.objects.filter(username__in=usernames).update(password=password_hash, is_active=True)
        User.objects.filter(username=DEMO_ADMIN_USERNAME).update(is_staff=True, is_superuser=True)
        return demo_row_counts()
