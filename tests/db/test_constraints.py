"""Every unique and check constraint the models declare exists in the database and refuses a
row that breaks it: a valid row is built with the factories, then an UPDATE breaks exactly
the constraint under test and PostgreSQL must name it in the IntegrityError."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.apps import apps
from django.db import IntegrityError, connection, models, transaction
from django.db.models import F

from advanced.briefings.factories import CeoBriefingFactory
from advanced.experiments.factories import ExperimentFactory, ExperimentResultFactory
from advanced.knowledge.factories import KnowledgeDocumentFactory
from advanced.models import CeoBriefing, ExperimentResult, KnowledgeDocument
from growth.factories import (
    AdCampaignFactory,
    AdPerformanceFactory,
    SeoAuditFactory,
    SeoRankingFactory,
    SocialAnalyticsFactory,
    SocialPostFactory,
)
from growth.models import AdCampaign, AdPerformance, SeoAudit, SeoRanking, SocialAnalytics
from onboarding.factories import FeatureTourFactory, OnboardingProgressFactory
from onboarding.models import FeatureTour, OnboardingProgress
from tenancy.factories import ShopFactory, ShopMembershipFactory, UserFactory
from tenancy.models import Shop
from tenancy.partitions import parent_index_name, partitioned_table
from tenancy.scope import enter_scope, service_scope

PROJECT_APPS = ("tenancy", "growth", "onboarding", "advanced")

# name -> (model, constraint) for every constraint declared in a model's Meta.
DECLARED: dict[str, tuple[type[models.Model], models.BaseConstraint]] = {
    constraint.name: (model, constraint)
    for label in PROJECT_APPS
    for model in apps.get_app_config(label).get_models()
    for constraint in model._meta.constraints
}

T0 = datetime.datetime(2025, 10, 1, 6, 0, tzinfo=datetime.UTC)
D0 = datetime.date(2025, 10, 1)
DAY = datetime.timedelta(days=1)

# A valid row (saved) and the field values an UPDATE of that row sets.
Change = tuple[models.Model, dict[str, Any]]


@dataclass(frozen=True)
class Violation:
    """How to build a valid row and the change that breaks one constraint."""

    build: Callable[[], Change]
    # Other constraints the same change breaks. PostgreSQL reports only the first one it
    # checks (checks in name order, unique indexes in creation order), so these are dropped
    # inside the test's transaction before the constraint under test is tried on its own.
    also_breaks: tuple[str, ...] = ()


def updating(factory: Callable[..., models.Model], **values: Any) -> Callable[[], Change]:
    def build() -> Change:
        return factory(), values

    return build


def column_check(model: type[models.Model], field: str) -> str:
    """The CHECK (column >= 0) Django adds by itself to a Positive*Field column."""
    return f"{model._meta.db_table}_{model._meta.get_field(field).column}_check"


def positive_field_checks(model: type[models.Model], field: str) -> tuple[str, ...]:
    return (column_check(model, field),) if model._meta.get_field(field).db_check(connection) else ()


def nonnegative(model: type[models.Model], factory: Callable[..., models.Model], *fields: str) -> dict[str, Violation]:
    """Cases for the `<app>_<model>_<field>_nonnegative` checks of `tenancy.db.nonnegative_checks`."""
    prefix = f"{model._meta.app_label}_{model.__name__.lower()}"
    return {
        f"{prefix}_{field}_nonnegative": Violation(
            updating(factory, **{field: -1}), positive_field_checks(model, field)
        )
        for field in fields
    }


# --- Builders for the cases that need more than one row ----------------------------------


def two_memberships_of_one_user() -> Change:
    user = UserFactory()
    first = ShopMembershipFactory(user=user, shop=ShopFactory())
    second = ShopMembershipFactory(user=user, shop=ShopFactory())
    return second, {"shop": first.shop}


def two_audits_of_one_shop() -> Change:
    shop = ShopFactory()
    SeoAuditFactory(shop=shop, crawled_at=T0)
    second = SeoAuditFactory(shop=shop, crawled_at=T0 + DAY)
    return second, {"crawled_at": T0}


def two_days_of_one_ranking() -> Change:
    shop = ShopFactory()
    common = {"shop": shop, "keyword": "linen bed sheets", "search_engine": "google", "location": "US"}
    SeoRankingFactory(**common, tracked_at=T0, tracked_on=D0)
    second = SeoRankingFactory(**common, tracked_at=T0 + DAY, tracked_on=D0 + DAY)
    return second, {"tracked_on": D0}


def two_campaigns_of_one_shop(field: str) -> Callable[[], Change]:
    def build() -> Change:
        shop = ShopFactory()
        first = AdCampaignFactory(shop=shop, platform="google_ads", platform_campaign_id="111")
        second = AdCampaignFactory(shop=shop, platform="google_ads", platform_campaign_id="222")
        return second, {field: getattr(first, field)}

    return build


def two_days_of_one_campaign() -> Change:
    campaign = AdCampaignFactory()
    AdPerformanceFactory(campaign=campaign, date=D0)
    second = AdPerformanceFactory(campaign=campaign, date=D0 + DAY)
    return second, {"date": D0}


def two_posts_of_one_shop(field: str) -> Callable[[], Change]:
    def build() -> Change:
        shop = ShopFactory()
        first = SocialPostFactory(shop=shop, platform="instagram", platform_post_id="post-a")
        second = SocialPostFactory(shop=shop, platform="instagram", platform_post_id="post-b")
        return second, {field: getattr(first, field)}

    return build


def two_snapshots_of_one_post() -> Change:
    post = SocialPostFactory()
    SocialAnalyticsFactory(social_post=post, measured_at=T0)
    second = SocialAnalyticsFactory(social_post=post, measured_at=T0 + datetime.timedelta(hours=1))
    return second, {"measured_at": T0}


def two_steps_of_one_user() -> Change:
    user, shop = UserFactory(), ShopFactory()
    OnboardingProgressFactory(user=user, shop=shop, step_key="connect-store")
    second = OnboardingProgressFactory(user=user, shop=shop, step_key="invite-team")
    return second, {"step_key": "connect-store"}


def two_tours_of_one_user() -> Change:
    user = UserFactory()
    FeatureTourFactory(user=user, tour_key="dashboard")
    second = FeatureTourFactory(user=user, tour_key="campaigns")
    return second, {"tour_key": "dashboard"}


def two_experiments_of_one_shop(field: str) -> Callable[[], Change]:
    def build() -> Change:
        shop = ShopFactory()
        first = ExperimentFactory(shop=shop, experiment_key="free-shipping-banner")
        second = ExperimentFactory(shop=shop, experiment_key="checkout-button")
        return second, {field: getattr(first, field)}

    return build


def two_days_of_one_variant() -> Change:
    experiment = ExperimentFactory()
    ExperimentResultFactory(experiment=experiment, variant_key="control", snapshot_date=D0)
    second = ExperimentResultFactory(experiment=experiment, variant_key="control", snapshot_date=D0 + DAY)
    return second, {"snapshot_date": D0}


def result_with(**values: Any) -> Callable[[], Change]:
    return lambda: (ExperimentResultFactory(participants=100, conversions=10), values)


def two_versions_of_one_document(values: dict[str, Any]) -> Callable[[], Change]:
    def build() -> Change:
        shop = ShopFactory()
        old = KnowledgeDocumentFactory(shop=shop, document_key="returns-policy", version=1, is_current=False)
        KnowledgeDocumentFactory(
            shop=shop, document_key="returns-policy", version=2, is_current=True, previous_version=old
        )
        return old, values

    return build


def two_documents_of_one_shop() -> Change:
    shop = ShopFactory()
    first = KnowledgeDocumentFactory(shop=shop, document_key="sizing-guide")
    second = KnowledgeDocumentFactory(shop=shop, document_key="brand-voice")
    return second, {"id": first.id}


def two_weeks_of_one_shop() -> Change:
    shop = ShopFactory()
    CeoBriefingFactory(shop=shop, briefing_type="weekly", period_start=D0, period_end=D0 + 6 * DAY)
    second = CeoBriefingFactory(shop=shop, briefing_type="weekly", period_start=D0 + 7 * DAY, period_end=D0 + 13 * DAY)
    return second, {"period_start": D0, "period_end": D0 + 6 * DAY}


VIOLATIONS: dict[str, Violation] = {
    # tenancy
    "tenancy_shop_domain_is_hostname": Violation(updating(ShopFactory, domain="Not_A_Host.Example")),
    "tenancy_shopmembership_user_shop_uniq": Violation(two_memberships_of_one_user),
    "tenancy_shopmembership_role_valid": Violation(updating(ShopMembershipFactory, role="janitor")),
    # seo_audits
    "seo_audits_shop_crawled_idx": Violation(two_audits_of_one_shop),
    **nonnegative(
        SeoAudit,
        SeoAuditFactory,
        "pages_crawled",
        "avg_lcp",
        "avg_fid",
        "avg_cls",
        "critical_issues",
        "high_priority_issues",
    ),
    "growth_seoaudit_technical_score_0_100": Violation(updating(SeoAuditFactory, technical_score=101)),
    "growth_seoaudit_content_score_0_100": Violation(updating(SeoAuditFactory, content_score=101)),
    "growth_seoaudit_performance_score_0_100": Violation(updating(SeoAuditFactory, performance_score=101)),
    # seo_rankings
    "growth_seoranking_daily_uniq": Violation(two_days_of_one_ranking),
    "growth_seoranking_position_gte_1": Violation(updating(SeoRankingFactory, position=0)),
    "growth_seoranking_keyword_not_empty": Violation(updating(SeoRankingFactory, keyword="")),
    "growth_seoranking_search_engine_valid": Violation(updating(SeoRankingFactory, search_engine="altavista")),
    **nonnegative(SeoRanking, SeoRankingFactory, "search_volume"),
    # ad_campaigns
    "growth_adcampaign_platform_id_uniq": Violation(two_campaigns_of_one_shop("platform_campaign_id")),
    "growth_adcampaign_id_shop_uniq": Violation(two_campaigns_of_one_shop("id"), ("ad_campaigns_pkey",)),
    "growth_adcampaign_platform_valid": Violation(updating(AdCampaignFactory, platform="yahoo_ads")),
    "growth_adcampaign_bid_strategy_valid": Violation(updating(AdCampaignFactory, bid_strategy="guess")),
    "growth_adcampaign_campaign_status_valid": Violation(updating(AdCampaignFactory, campaign_status="deleted")),
    "growth_adcampaign_end_after_start": Violation(
        lambda: (AdCampaignFactory(start_date=D0, end_date=None), {"end_date": D0 - DAY})
    ),
    "growth_adcampaign_currency_iso": Violation(updating(AdCampaignFactory, currency="usd")),
    **nonnegative(AdCampaign, AdCampaignFactory, "daily_budget", "total_budget"),
    # ad_performance
    "ad_performance_campaign_date_idx": Violation(two_days_of_one_campaign),
    **nonnegative(AdPerformance, AdPerformanceFactory, "impressions", "clicks", "conversions", "cost", "revenue"),
    # Negative impressions are below any clicks (0 included): clicks_lte_impressions breaks too.
    "growth_adperformance_impressions_nonnegative": Violation(
        updating(AdPerformanceFactory, impressions=-1),
        (*positive_field_checks(AdPerformance, "impressions"), "growth_adperformance_clicks_lte_impressions"),
    ),
    "growth_adperformance_clicks_lte_impressions": Violation(
        lambda: (AdPerformanceFactory(impressions=100, clicks=5), {"clicks": 101})
    ),
    # social_posts
    "growth_socialpost_platform_id_uniq": Violation(two_posts_of_one_shop("platform_post_id")),
    "growth_socialpost_id_shop_platform_uniq": Violation(two_posts_of_one_shop("id"), ("social_posts_pkey",)),
    "growth_socialpost_platform_valid": Violation(updating(SocialPostFactory, platform="myspace")),
    # social_analytics
    "social_analytics_post_measured_idx": Violation(two_snapshots_of_one_post),
    "growth_socialanalytics_platform_valid": Violation(updating(SocialAnalyticsFactory, platform="myspace")),
    **nonnegative(
        SocialAnalytics,
        SocialAnalyticsFactory,
        "views",
        "likes",
        "comments",
        "shares",
        "reach",
        "impressions",
    ),
    # onboarding_progress
    "onboarding_onboardingprogress_step_uniq": Violation(two_steps_of_one_user),
    "onboarding_onboardingprogress_status_valid": Violation(updating(OnboardingProgressFactory, status="abandoned")),
    **nonnegative(OnboardingProgress, OnboardingProgressFactory, "step_order", "attempts", "time_spent_seconds"),
    "onboarding_onboardingprogress_completed_has_time": Violation(
        updating(OnboardingProgressFactory, status="completed")
    ),
    # feature_tours
    "onboarding_featuretour_user_tour_uniq": Violation(two_tours_of_one_user),
    "onboarding_featuretour_status_valid": Violation(updating(FeatureTourFactory, status="hidden")),
    **nonnegative(FeatureTour, FeatureTourFactory, "current_step", "times_shown", "interactions"),
    "onboarding_featuretour_steps_is_array": Violation(updating(FeatureTourFactory, steps={"title": "Not a list"})),
    "onboarding_featuretour_current_step_in_steps": Violation(updating(FeatureTourFactory, current_step=3)),
    # experiments
    "advanced_experiment_key_uniq": Violation(two_experiments_of_one_shop("experiment_key")),
    "advanced_experiment_id_shop_uniq": Violation(two_experiments_of_one_shop("id"), ("experiments_pkey",)),
    "advanced_experiment_status_valid": Violation(updating(ExperimentFactory, status="cancelled")),
    "advanced_experiment_confidence_level_0_1": Violation(updating(ExperimentFactory, confidence_level=Decimal("1.5"))),
    "advanced_experiment_confidence_threshold_0_1": Violation(
        updating(ExperimentFactory, confidence_threshold=Decimal("1.5"))
    ),
    "advanced_experiment_variants_is_array": Violation(updating(ExperimentFactory, variants={"control": 0.5})),
    "advanced_experiment_end_after_start": Violation(
        lambda: (ExperimentFactory(started_at=T0), {"ended_at": T0 - DAY})
    ),
    "advanced_experiment_stats_engine_valid": Violation(updating(ExperimentFactory, stats_engine="bandit")),
    "advanced_experiment_multiple_testing_correction_valid": Violation(
        updating(ExperimentFactory, multiple_testing_correction="bonferroni")
    ),
    "advanced_experiment_risk_threshold_0_1": Violation(updating(ExperimentFactory, risk_threshold=Decimal("1.5"))),
    "advanced_experiment_prior_mean_range": Violation(
        updating(ExperimentFactory, prior_mean=Decimal("11"), prior_variance=Decimal("1"))
    ),
    "advanced_experiment_prior_variance_range": Violation(
        updating(ExperimentFactory, prior_mean=Decimal("0"), prior_variance=Decimal("0"))
    ),
    "advanced_experiment_prior_complete": Violation(updating(ExperimentFactory, prior_mean=Decimal("0.1"))),
    "advanced_experiment_fixed_horizon_planned": Violation(updating(ExperimentFactory, stats_engine="fixed_horizon")),
    "advanced_experiment_target_mde_positive": Violation(updating(ExperimentFactory, target_mde=Decimal("0"))),
    "advanced_experiment_sequential_tuning_positive": Violation(updating(ExperimentFactory, sequential_tuning=0)),
    "advanced_experiment_planned_sample_positive": Violation(updating(ExperimentFactory, planned_sample_size=0)),
    "advanced_experiment_guardrails_known": Violation(
        updating(ExperimentFactory, guardrail_metrics=["revenue_per_user", "bounce_rate"])
    ),
    # experiment_results
    "advanced_experimentresult_daily_uniq": Violation(two_days_of_one_variant),
    "advanced_experimentresult_participants_nonnegative": Violation(
        # No conversions, so that the generated conversion_rate (0 / -1) stays in its range.
        lambda: (ExperimentResultFactory(participants=100, conversions=0), {"participants": -1}),
        (
            "advanced_experimentresult_conversions_lte_participants",
            column_check(ExperimentResult, "participants"),
        ),
    ),
    "advanced_experimentresult_conversions_nonnegative": Violation(
        result_with(conversions=-1), (column_check(ExperimentResult, "conversions"),)
    ),
    **nonnegative(
        ExperimentResult,
        ExperimentResultFactory,
        "avg_order_value",
        "revenue_per_user",
        "revenue_per_user_stddev",
        "expected_loss",
    ),
    **{
        f"advanced_experimentresult_{name}_nonnegative": Violation(
            result_with(
                **{
                    "covariate_sum": Decimal("10"),
                    "covariate_sum_squares": Decimal("100"),
                    "covariate_cross_sum": Decimal("5"),
                    name: Decimal("-1"),
                }
            )
        )
        for name in ("covariate_sum", "covariate_sum_squares", "covariate_cross_sum")
    },
    "advanced_experimentresult_covariate_complete": Violation(result_with(covariate_sum=Decimal("10"))),
    "advanced_experimentresult_chance_to_win_0_1": Violation(result_with(chance_to_win=Decimal("1.5"))),
    "advanced_experimentresult_p_value_0_1": Violation(result_with(p_value=Decimal("1.5"))),
    "advanced_experimentresult_conversions_lte_participants": Violation(result_with(conversions=101)),
    "advanced_experimentresult_interval_ordered": Violation(
        result_with(confidence_interval_lower=Decimal("0.2"), confidence_interval_upper=Decimal("0.1"))
    ),
    # knowledge_base
    "advanced_knowledgedocument_version_uniq": Violation(two_versions_of_one_document({"version": 2})),
    "advanced_knowledgedocument_one_current_uniq": Violation(two_versions_of_one_document({"is_current": True})),
    "advanced_knowledgedocument_id_shop_uniq": Violation(two_documents_of_one_shop, ("knowledge_base_pkey",)),
    "advanced_knowledgedocument_document_type_valid": Violation(
        updating(KnowledgeDocumentFactory, document_type="memo")
    ),
    "advanced_knowledgedocument_version_gte_1": Violation(updating(KnowledgeDocumentFactory, version=0)),
    "advanced_knowledgedocument_not_own_previous": Violation(
        updating(KnowledgeDocumentFactory, previous_version=F("id"))
    ),
    # ceo_briefings
    "advanced_ceobriefing_period_uniq": Violation(two_weeks_of_one_shop),
    "advanced_ceobriefing_briefing_type_valid": Violation(updating(CeoBriefingFactory, briefing_type="hourly")),
    "advanced_ceobriefing_rating_1_5": Violation(updating(CeoBriefingFactory, rating=6)),
    **nonnegative(CeoBriefing, CeoBriefingFactory, "generation_tokens"),
    "advanced_ceobriefing_end_after_start": Violation(
        lambda: (CeoBriefingFactory(period_start=D0, period_end=D0 + 6 * DAY), {"period_end": D0 - DAY})
    ),
    "advanced_ceobriefing_key_metrics_is_object": Violation(updating(CeoBriefingFactory, key_metrics=[])),
    "advanced_ceobriefing_insights_is_array": Violation(updating(CeoBriefingFactory, insights={"rank": 1})),
}

# The schema's uniques and the natural keys that make ingestion idempotent, as
# pg_get_indexdef() prints them (constraint name, table, definition after USING).
KEY_DEFINITIONS: list[tuple[str, str, str]] = [
    ("onboarding_onboardingprogress_step_uniq", "onboarding_progress", "btree (user_id, shop_domain, step_key)"),
    ("onboarding_featuretour_user_tour_uniq", "feature_tours", "btree (user_id, tour_key)"),
    ("advanced_experiment_key_uniq", "experiments", "btree (shop_domain, experiment_key)"),
    (
        "advanced_knowledgedocument_one_current_uniq",
        "knowledge_base",
        "btree (shop_domain, document_key) WHERE is_current",
    ),
    (
        "advanced_knowledgedocument_version_uniq",
        "knowledge_base",
        "btree (shop_domain, document_key, version)",
    ),
    ("seo_audits_shop_crawled_idx", "seo_audits", "btree (shop_domain, crawled_at DESC)"),
    (
        "growth_seoranking_daily_uniq",
        "seo_rankings",
        "btree (shop_domain, keyword, search_engine, location, tracked_on)",
    ),
    ("growth_adcampaign_platform_id_uniq", "ad_campaigns", "btree (shop_domain, platform, platform_campaign_id)"),
    ("ad_performance_campaign_date_idx", "ad_performance", "btree (campaign_id, date DESC)"),
    ("growth_socialpost_platform_id_uniq", "social_posts", "btree (shop_domain, platform, platform_post_id)"),
    ("social_analytics_post_measured_idx", "social_analytics", "btree (social_post_id, measured_at DESC)"),
    (
        "advanced_experimentresult_daily_uniq",
        "experiment_results",
        "btree (experiment_id, variant_key, snapshot_date)",
    ),
    (
        "advanced_ceobriefing_period_uniq",
        "ceo_briefings",
        "btree (shop_domain, briefing_type, period_start, period_end)",
    ),
]


def fetch(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall())


def read(row: models.Model, values: dict[str, Any]) -> dict[str, Any]:
    return type(row)._base_manager.filter(pk=row.pk).values(*values).get()


def rejection(row: models.Model, values: dict[str, Any]) -> tuple[str, str]:
    """(constraint name, message) of the IntegrityError the UPDATE raises, in a savepoint."""
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        type(row)._base_manager.filter(pk=row.pk).update(**values)
    diag = getattr(excinfo.value.__cause__, "diag", None)
    # A partition reports its own index; the declared name is its parent's.
    return parent_index_name(str(getattr(diag, "constraint_name", "") or "")), str(excinfo.value)


def drop_constraints(table: str, names: tuple[str, ...]) -> None:
    """Drop constraints as the table owner; the test's transaction rollback restores them."""
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        # ALTER TABLE refuses to run while deferred foreign key checks are pending: run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for name in names:
            cursor.execute(f"ALTER TABLE {qn(table)} DROP CONSTRAINT {qn(name)}")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


# --- Existence --------------------------------------------------------------------------


def test_every_declared_constraint_has_a_violation_case() -> None:
    assert sorted(set(DECLARED) - set(VIOLATIONS)) == [], "declared constraints without a case in VIOLATIONS"
    assert sorted(set(VIOLATIONS) - set(DECLARED)) == [], "cases for constraints no model declares"


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(DECLARED))
def test_declared_constraint_exists_in_the_database(name: str) -> None:
    model, constraint = DECLARED[name]
    table = model._meta.db_table
    if isinstance(constraint, models.CheckConstraint):
        assert fetch(
            "SELECT contype FROM pg_constraint WHERE conrelid = %s::regclass AND conname = %s", [table, name]
        ) == [("c",)]
        return
    assert isinstance(constraint, models.UniqueConstraint)
    index = fetch(
        """
        SELECT i.indisunique, pg_get_expr(i.indpred, i.indrelid),
               array(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) AS k)
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = %s::regclass AND ic.relname = %s
        """,
        [table, name],
    )
    assert len(index) == 1, f"no index {name} on {table}"
    unique, predicate, keys = index[0]
    assert unique
    assert (predicate is not None) == (constraint.condition is not None)
    if constraint.fields:
        assert keys == [model._meta.get_field(field).column for field in constraint.fields]
    if constraint.fields and constraint.condition is None:
        # A plain unique on columns is a real constraint, visible to ON CONFLICT ON CONSTRAINT.
        assert fetch(
            "SELECT contype FROM pg_constraint WHERE conrelid = %s::regclass AND conname = %s", [table, name]
        ) == [("u",)]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "table", "definition"), KEY_DEFINITIONS, ids=[n for n, _, _ in KEY_DEFINITIONS])
def test_schema_unique_or_natural_key_has_its_exact_definition(name: str, table: str, definition: str) -> None:
    assert name in DECLARED
    assert DECLARED[name][0]._meta.db_table == table
    only = "ONLY " if partitioned_table(table) else ""
    assert fetch(
        """
        SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = %s::regclass AND ic.relname = %s
        """,
        [table, name],
    ) == [(f"CREATE UNIQUE INDEX {name} ON {only}public.{table} USING {definition}",)]


# --- Enforcement ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(DECLARED))
def test_constraint_rejects_a_row_that_breaks_it(name: str) -> None:
    violation = VIOLATIONS.get(name)
    assert violation is not None, f"add a case for {name} to VIOLATIONS"
    table = DECLARED[name][0]._meta.db_table
    # Not the `service` fixture: dropping an overlapping constraint takes the table owner, so
    # the service scope is entered around the data steps only.
    with transaction.atomic():
        # As deployed: the change is refused, by this constraint or one that overlaps it.
        with enter_scope(service_scope()):
            row, values = violation.build()
            before = read(row, values)
            refused_by, message = rejection(row, values)
        assert refused_by in {name, *violation.also_breaks}, message
        if violation.also_breaks:
            drop_constraints(table, violation.also_breaks)
            with enter_scope(service_scope()):
                refused_by, message = rejection(row, values)
        # This constraint on its own refuses the change, and names itself.
        assert refused_by == name, message
        # A partition's index names itself in the message; `refused_by` mapped it to its parent.
        assert partitioned_table(table) or f'"{name}"' in message
        with enter_scope(service_scope()):
            assert read(row, values) == before


def test_old_versions_may_sit_beside_the_one_current_version(service: None) -> None:
    shop, other_shop = ShopFactory(domain="versions.myshopify.com"), ShopFactory(domain="others.myshopify.com")
    v1 = KnowledgeDocumentFactory(shop=shop, document_key="returns-policy", version=1, is_current=False)
    v2 = KnowledgeDocumentFactory(
        shop=shop, document_key="returns-policy", version=2, is_current=False, previous_version=v1
    )
    KnowledgeDocumentFactory(shop=shop, document_key="returns-policy", version=3, is_current=True, previous_version=v2)
    # Another shop has its own current version of the same key.
    KnowledgeDocumentFactory(shop=other_shop, document_key="returns-policy", version=1, is_current=True)
    rows = KnowledgeDocument.objects.filter(document_key="returns-policy").order_by("shop_id", "version")
    assert list(rows.values_list("shop_id", "version", "is_current")) == [
        ("others.myshopify.com", 1, True),
        ("versions.myshopify.com", 1, False),
        ("versions.myshopify.com", 2, False),
        ("versions.myshopify.com", 3, True),
    ]


def test_non_array_steps_are_refused_by_their_check_also_past_the_first_step(service: None) -> None:
    tour = FeatureTourFactory(current_step=1)
    with pytest.raises(IntegrityError, match="onboarding_featuretour_steps_is_array"), transaction.atomic():
        FeatureTour.objects.filter(pk=tour.pk).update(steps={"title": "Not a list"})
    assert FeatureTour.objects.filter(pk=tour.pk, steps__0__title="Your dashboard").exists()


def test_shop_domains_must_be_lowercase_host_names(service: None) -> None:
    ShopFactory(domain="lower-case.myshopify.com")
    for bad in ("UPPER.myshopify.com", "no-dot", "trailing-.example.com", "spa ce.example.com"):
        with pytest.raises(IntegrityError, match="tenancy_shop_domain_is_hostname"), transaction.atomic():
            ShopFactory(domain=bad)
    assert Shop.objects.filter(domain="lower-case.myshopify.com").exists()
    assert not Shop.objects.exclude(domain="lower-case.myshopify.com").exists()
