"""Every model has a working admin, and its list costs the same number of queries at any size."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import connection, models
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from advanced.briefings.factories import CeoBriefingFactory
from advanced.experiments.factories import ExperimentFactory, ExperimentResultFactory
from advanced.knowledge.factories import KnowledgeDocumentFactory
from advanced.models import CeoBriefing, Experiment, ExperimentResult, KnowledgeDocument
from growth.factories import (
    AdCampaignFactory,
    AdPerformanceFactory,
    SeoAuditFactory,
    SeoRankingFactory,
    SocialAnalyticsFactory,
    SocialPostFactory,
)
from growth.models import AdCampaign, AdPerformance, SeoAudit, SeoRanking, SocialAnalytics, SocialPost
from onboarding.factories import FeatureTourFactory, OnboardingProgressFactory
from onboarding.models import FeatureTour, OnboardingProgress
from tenancy.factories import ShopFactory, ShopMembershipFactory, UserFactory
from tenancy.models import Shop, ShopMembership, User
from tenancy.scope import atomic_scope, service_scope

PROJECT_APPS = ("tenancy", "growth", "onboarding", "advanced")

# One row of each model; parents (shops, users, campaigns, ...) are new for every row, so a
# list that fetched a relation per row would show it as a growing query count.
MAKERS: dict[type[models.Model], Callable[[], models.Model]] = {
    User: UserFactory.create,
    Shop: ShopFactory.create,
    ShopMembership: ShopMembershipFactory.create,
    SeoAudit: SeoAuditFactory.create,
    SeoRanking: SeoRankingFactory.create,
    AdCampaign: AdCampaignFactory.create,
    AdPerformance: AdPerformanceFactory.create,
    SocialPost: SocialPostFactory.create,
    SocialAnalytics: SocialAnalyticsFactory.create,
    OnboardingProgress: OnboardingProgressFactory.create,
    FeatureTour: FeatureTourFactory.create,
    Experiment: ExperimentFactory.create,
    ExperimentResult: ExperimentResultFactory.create,
    KnowledgeDocument: KnowledgeDocumentFactory.create,
    CeoBriefing: CeoBriefingFactory.create,
}
MODELS = list(MAKERS)


def url(model: type[models.Model], view: str, *args: object) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def staff(db: None) -> User:
    user: User = UserFactory.create(username="staff-admin", is_staff=True, is_superuser=True)
    return user


@pytest.fixture
def staff_client(client: Client, staff: User) -> Client:
    client.force_login(staff)
    return client


def test_every_project_model_is_registered() -> None:
    project_models = {model for label in PROJECT_APPS for model in apps.get_app_config(label).get_models()}
    assert project_models == set(MODELS)
    assert project_models <= set(admin.site._registry)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.model_name)
def test_changelist_add_and_change_pages_render(staff_client: Client, model: type[models.Model]) -> None:
    obj = MAKERS[model]()

    response = staff_client.get(url(model, "changelist"))
    assert response.status_code == 200
    # The list shows the row: a page that rendered nothing would pass a status check alone.
    assert response.context["cl"].result_count >= 1
    assert url(model, "change", obj.pk) in response.content.decode()
    # Searching runs every search_fields lookup, which the system checks do not.
    assert staff_client.get(url(model, "changelist"), {"q": "shop-1 x"}).status_code == 200
    assert staff_client.get(url(model, "add")).status_code == 200
    response = staff_client.get(url(model, "change", obj.pk))
    assert response.status_code == 200 and response.context["original"].pk == obj.pk


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.model_name)
def test_changelist_query_count_does_not_grow_with_rows(staff_client: Client, model: type[models.Model]) -> None:
    changelist = url(model, "changelist")

    def queries_for_list() -> tuple[int, int]:
        """The page's query count and the number of rows it listed."""
        with CaptureQueriesContext(connection) as captured:
            response = staff_client.get(changelist)
        assert response.status_code == 200
        return len(captured.captured_queries), response.context["cl"].result_count

    for _ in range(2):
        MAKERS[model]()
    queries_with_two, listed_before = queries_for_list()
    for _ in range(8):
        MAKERS[model]()
    queries_with_ten, listed_after = queries_for_list()

    assert queries_with_ten == queries_with_two
    # The page did list the eight new rows (a page listing nothing costs the same at any size).
    assert listed_before >= 2 and listed_after - listed_before == 8


# The column itself, as opposed to the `embedding IS NOT NULL` flag the list computes.
RAW_EMBEDDING = re.compile(r'"knowledge_base"\."embedding"(?! IS NOT NULL)')


def test_knowledge_document_pages_never_load_the_embedding(staff_client: Client) -> None:
    document = KnowledgeDocumentFactory.create()
    unembedded = KnowledgeDocumentFactory.create(embedding=None, embedding_model="")

    for page in (
        url(KnowledgeDocument, "changelist"),
        url(KnowledgeDocument, "change", document.pk),
        url(KnowledgeDocument, "change", unembedded.pk),
    ):
        with CaptureQueriesContext(connection) as captured:
            response = staff_client.get(page)
        assert response.status_code == 200
        loaded = [q["sql"] for q in captured.captured_queries if RAW_EMBEDDING.search(q["sql"])]
        assert loaded == [], page

    response = staff_client.get(url(KnowledgeDocument, "changelist"))
    content = response.content.decode()
    assert 'alt="True"' in content
    assert 'alt="False"' in content


def test_adding_ad_performance_takes_the_shop_from_the_campaign(staff_client: Client, staff: User) -> None:
    campaign = AdCampaignFactory.create()
    day = datetime.date(2025, 3, 1)

    response = staff_client.post(
        url(AdPerformance, "add"),
        {
            "campaign": campaign.pk,
            "date": day.isoformat(),
            "impressions": 1000,
            "clicks": 50,
            "conversions": "2.00",
            "cost": "25.00",
            "revenue": "100.00",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    with atomic_scope(service_scope()):
        row = AdPerformance.objects.get(campaign=campaign, date=day)
        assert row.shop_id == campaign.shop_id
        assert row.created_by == str(staff.pk)
        assert row.ctr == Decimal("0.05")
        assert row.roas == Decimal("4")


def test_rating_a_briefing_records_the_reviewer(staff_client: Client, staff: User) -> None:
    briefing = CeoBriefingFactory.create()

    response = staff_client.post(
        url(CeoBriefing, "change", briefing.pk),
        {"rating": 4, "feedback_notes": "Lead with revenue."},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    with atomic_scope(service_scope()):
        briefing.refresh_from_db()
    assert briefing.rating == 4
    assert briefing.reviewed_by_id == staff.pk
    assert briefing.reviewed_at is not None
