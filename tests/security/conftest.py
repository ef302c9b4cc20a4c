"""Two shops, their users and one row of every tenant table per shop, for isolation tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import models

from advanced.briefings.factories import CeoBriefingFactory
from advanced.experiments.factories import ExperimentFactory, ExperimentResultFactory
from advanced.knowledge.factories import KnowledgeDocumentFactory
from growth.factories import (
    AdCampaignFactory,
    AdPerformanceFactory,
    SeoAuditFactory,
    SeoRankingFactory,
    SocialAnalyticsFactory,
    SocialPostFactory,
)
from onboarding.factories import FeatureTourFactory, OnboardingProgressFactory
from tenancy.factories import ShopFactory, ShopMembershipFactory, UserFactory
from tenancy.models import Shop, User
from tenancy.scope import Scope, atomic_scope, shop_scope

SHOP_A = "alpha.myshopify.com"
SHOP_B = "bravo.myshopify.com"


@dataclass
class Tenant:
    """A shop and the owner who acts for it."""

    shop: Shop
    owner: User

    def scope(self, *, member_role: str = "owner", subject: str | None = None) -> Scope:
        return shop_scope(shop=self.shop.domain, subject=subject or str(self.owner.pk), member_role=member_role)


@pytest.fixture
def tenant_a(db: None) -> Tenant:
    shop = ShopFactory(domain=SHOP_A)
    owner = UserFactory(username="alpha-owner")
    ShopMembershipFactory(user=owner, shop=shop, role="owner")
    return Tenant(shop=shop, owner=owner)


@pytest.fixture
def tenant_b(db: None) -> Tenant:
    shop = ShopFactory(domain=SHOP_B)
    owner = UserFactory(username="bravo-owner")
    ShopMembershipFactory(user=owner, shop=shop, role="owner")
    return Tenant(shop=shop, owner=owner)


@dataclass(frozen=True)
class TableCase:
    """How to make a row of one tenant table for a tenant, and how to aim a row at another."""

    table: str
    model: type[models.Model]
    make: Callable[[Tenant], models.Model]
    # Fields that move a row to another tenant: {field: value taken from the other tenant}.
    retarget: Callable[[Tenant], dict[str, Any]]


def _shop(t: Tenant) -> dict[str, Any]:
    return {"shop": t.shop}


def _perf(t: Tenant) -> models.Model:
    return AdPerformanceFactory(campaign=AdCampaignFactory(shop=t.shop, platform_campaign_id=f"c-{t.shop.domain}"))


def _analytics(t: Tenant) -> models.Model:
    return SocialAnalyticsFactory(social_post=SocialPostFactory(shop=t.shop, platform_post_id=f"p-{t.shop.domain}"))


def _result(t: Tenant) -> models.Model:
    return ExperimentResultFactory(experiment=ExperimentFactory(shop=t.shop, experiment_key=f"e-{t.shop.domain}"))


TABLE_CASES = [
    TableCase("seo_audits", SeoAuditFactory._meta.model, lambda t: SeoAuditFactory(shop=t.shop), _shop),
    TableCase("seo_rankings", SeoRankingFactory._meta.model, lambda t: SeoRankingFactory(shop=t.shop), _shop),
    TableCase("ad_campaigns", AdCampaignFactory._meta.model, lambda t: AdCampaignFactory(shop=t.shop), _shop),
    TableCase("ad_performance", AdPerformanceFactory._meta.model, _perf, _shop),
    TableCase("social_posts", SocialPostFactory._meta.model, lambda t: SocialPostFactory(shop=t.shop), _shop),
    TableCase("social_analytics", SocialAnalyticsFactory._meta.model, _analytics, _shop),
    TableCase(
        "onboarding_progress",
        OnboardingProgressFactory._meta.model,
        lambda t: OnboardingProgressFactory(shop=t.shop, user=t.owner),
        lambda t: {"shop": t.shop, "user": t.owner},
    ),
    TableCase(
        "feature_tours",
        FeatureTourFactory._meta.model,
        lambda t: FeatureTourFactory(user=t.owner),
        lambda t: {"user": t.owner},
    ),
    TableCase("experiments", ExperimentFactory._meta.model, lambda t: ExperimentFactory(shop=t.shop), _shop),
    TableCase("experiment_results", ExperimentResultFactory._meta.model, _result, _shop),
    TableCase(
        "knowledge_base", KnowledgeDocumentFactory._meta.model, lambda t: KnowledgeDocumentFactory(shop=t.shop), _shop
    ),
    TableCase("ceo_briefings", CeoBriefingFactory._meta.model, lambda t: CeoBriefingFactory(shop=t.shop), _shop),
]


@pytest.fixture(params=TABLE_CASES, ids=[case.table for case in TABLE_CASES])
def table_case(request: pytest.FixtureRequest) -> TableCase:
    return request.param


@pytest.fixture
def in_scope() -> Callable[[Scope], Any]:
    """`with in_scope(scope):` — a transaction (savepoint in tests) with the scope entered."""
    return atomic_scope
