"""`manage.py seed_demo`: every table gets consistent demo data, and a second run adds nothing."""

from __future__ import annotations

import datetime
from collections import Counter
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db.models import F, Q, Sum
from django.utils import timezone

from advanced.models import CeoBriefing, Experiment, ExperimentResult, ExperimentStatus, KnowledgeDocument
from growth.factories import KEYWORDS
from growth.models import AdCampaign, AdPerformance, SeoAudit, SeoRanking, SocialAnalytics, SocialPost
from onboarding.factories import ONBOARDING_STEPS
from onboarding.models import FeatureTour, OnboardingProgress, StepStatus
from shopify.models import RECORD_TABLES
from tenancy.demo import DemoStep, demo_row_counts, demo_steps
from tenancy.models import MembershipRole, Shop, ShopMembership, User
from tenancy.scope import atomic_scope, service_scope

SHOPS, DAYS = 2, 5
DOMAINS = [f"demo-{n}.myshopify.com" for n in range(1, SHOPS + 1)]

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", shops=SHOPS, days=DAYS, stdout=out, verbosity=0)
    return out.getvalue()


@pytest.fixture
def seeded() -> str:
    return seed()


def _schema_tables() -> set[str]:
    """From the schema, not from the seed's own list: the accounts tables and every table of
    the project's apps with a shop or user column (a new tenant table without demo data, or
    without a declaration, fails the test below)."""
    tables = {"users", "shops"}
    for app in apps.get_app_configs():
        if not (Path(settings.BASE_DIR) / app.name.split(".")[0]).is_dir():
            continue  # Django's and third-party apps
        for model in app.get_models():
            columns = {field.column for field in model._meta.concrete_fields}
            if columns & {"shop_domain", "user_id"}:
                tables.add(model._meta.db_table)
    return tables


def test_the_schema_tables_include_each_apps_tables() -> None:
    assert {"users", "shops", "shop_memberships", "ad_performance", "feature_tours", "ceo_briefings"} <= (
        _schema_tables()
    )
    assert "django_admin_log" not in _schema_tables()


def test_each_app_seeds_its_own_tables_in_installed_apps_order() -> None:
    steps = demo_steps()
    assert all(isinstance(step, DemoStep) for step in steps)
    modules = list(dict.fromkeys(step.seed.__module__ for step in steps))
    # advanced/demo.py gathers its features' steps (advanced/<feature>/demo.py), in their order.
    assert modules == [
        "growth.demo",
        "onboarding.demo",
        "advanced.experiments.demo",
        "advanced.knowledge.demo",
        "advanced.briefings.demo",
    ]
    labels = [step.label for step in steps]
    assert labels.index("seo audits") < labels.index("onboarding progress") < labels.index("ceo briefings")


def test_every_table_gets_rows(seeded: str) -> None:
    with atomic_scope(service_scope()):
        counts = demo_row_counts()
    # The Shopify lifecycle records (webhook deliveries, erasures) name a shop but are not its
    # data: they record what Shopify sent, which a demo does not invent.
    assert set(counts) == _schema_tables() - RECORD_TABLES
    assert all(rows > 0 for rows in counts.values()), counts


def test_second_run_changes_no_row_counts(seeded: str) -> None:
    with atomic_scope(service_scope()):
        before = demo_row_counts()
    seed()
    with atomic_scope(service_scope()):
        assert demo_row_counts() == before


def test_output_has_summary_and_sign_in(seeded: str) -> None:
    assert "ad_performance" in seeded
    assert "http://127.0.0.1:8000/admin/" in seeded
    assert "username: admin" in seeded
    assert f"password: {settings.DEMO_PASSWORD}" in seeded


def test_accounts_and_memberships(seeded: str) -> None:
    with atomic_scope(service_scope()):
        check_accounts_and_memberships()


def check_accounts_and_memberships() -> None:
    admin = User.objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser
    assert admin.check_password(settings.DEMO_PASSWORD)
    for n, domain in enumerate(DOMAINS, start=1):
        roles = dict(ShopMembership.objects.filter(shop_id=domain).values_list("user__username", "role"))
        assert roles == {
            f"demo-{n}-owner": MembershipRole.OWNER,
            f"demo-{n}-ceo": MembershipRole.CEO,
            f"demo-{n}-member1": MembershipRole.MEMBER,
            f"demo-{n}-member2": MembershipRole.MEMBER,
        }
    owner = User.objects.get(username="demo-1-owner")
    assert not owner.is_staff
    assert owner.check_password(settings.DEMO_PASSWORD)
    assert set(Shop.objects.filter(domain__startswith="demo-").values_list("domain", flat=True)) == set(DOMAINS)


def test_per_shop_volumes(seeded: str) -> None:
    with atomic_scope(service_scope()):
        for domain in DOMAINS:
            assert SeoAudit.objects.filter(shop_id=domain).count() == DAYS
            assert SeoRanking.objects.filter(shop_id=domain).count() == DAYS * len(KEYWORDS)
            campaigns = AdCampaign.objects.filter(shop_id=domain).count()
            assert 3 <= campaigns <= 4
            assert AdPerformance.objects.filter(shop_id=domain).count() == campaigns * DAYS
            assert SocialPost.objects.filter(shop_id=domain).count() == 10
            assert SocialAnalytics.objects.filter(shop_id=domain).count() >= 2 * 10
            assert OnboardingProgress.objects.filter(shop_id=domain).count() == 4 * len(ONBOARDING_STEPS)
            assert 2 <= Experiment.objects.filter(shop_id=domain).count() <= 3
            assert KnowledgeDocument.objects.filter(shop_id=domain, is_current=True).count() == 10
            assert CeoBriefing.objects.filter(shop_id=domain).count() == 1  # five days: one week
        tours = Counter(FeatureTour.objects.filter(user__username__startswith="demo-").values_list("user", flat=True))
        assert len(tours) == 4 * SHOPS
        assert set(tours.values()) <= {2, 3}


def test_ads_are_consistent(seeded: str) -> None:
    with atomic_scope(service_scope()):
        performance = AdPerformance.objects.filter(shop_id__in=DOMAINS)
        assert performance.exclude(shop=F("campaign__shop")).count() == 0
        assert performance.filter(date__lt=F("campaign__start_date")).count() == 0
        assert performance.filter(campaign__end_date__isnull=False, date__gt=F("campaign__end_date")).count() == 0
        # Platforms pace spend to the budget; results cannot exceed their inputs.
        assert performance.filter(cost__gt=F("campaign__daily_budget")).count() == 0
        assert performance.filter(Q(clicks__gt=F("impressions")) | Q(conversions__gt=F("clicks"))).count() == 0
        last_day = timezone.now().date() - datetime.timedelta(days=1)
        assert performance.filter(date__gt=last_day).count() == 0


def test_social_is_consistent(seeded: str) -> None:
    with atomic_scope(service_scope()):
        analytics = SocialAnalytics.objects.filter(shop_id__in=DOMAINS)
        assert analytics.exclude(shop=F("social_post__shop")).count() == 0
        assert analytics.exclude(platform=F("social_post__platform")).count() == 0
        assert analytics.filter(measured_at__lt=F("social_post__published_at")).count() == 0
        assert analytics.filter(measured_at__gt=timezone.now()).count() == 0
        for post in SocialPost.objects.filter(shop_id__in=DOMAINS):
            views = list(post.analytics.order_by("measured_at").values_list("impressions", flat=True))
            assert views == sorted(views), "cumulative counters never go down"


def test_experiments_are_consistent(seeded: str) -> None:
    with atomic_scope(service_scope()):
        for experiment in Experiment.objects.filter(shop_id__in=DOMAINS):
            results = list(experiment.results.all())
            variant_keys = {variant["key"] for variant in experiment.variants}
            assert len(variant_keys) in {2, 3}
            assert sorted(r.variant_key for r in results) == sorted(variant_keys)
            assert abs(sum(variant["weight"] for variant in experiment.variants) - 1) < 0.01
            assert experiment.started_at is not None
            for result in results:
                assert result.shop_id == experiment.shop_id
                assert result.conversions <= result.participants
                assert result.snapshot_date >= experiment.started_at.date()
                if result.variant_key == "control":
                    assert result.p_value is None
                else:
                    assert result.p_value is not None and 0 <= result.p_value <= 1
                    assert result.confidence_interval_lower is not None
                    assert result.confidence_interval_upper is not None
                    assert result.confidence_interval_lower <= result.confidence_interval_upper
            if experiment.status == ExperimentStatus.COMPLETED:
                assert experiment.ended_at is not None and experiment.ended_at >= experiment.started_at
                assert experiment.winning_variant is None or experiment.winning_variant in variant_keys
        assert ExperimentResult.objects.filter(shop_id__in=DOMAINS).exclude(shop=F("experiment__shop")).count() == 0


def test_knowledge_base_versions(seeded: str) -> None:
    with atomic_scope(service_scope()):
        documents = KnowledgeDocument.objects.filter(shop_id__in=DOMAINS)
        newer = list(documents.filter(version=2).select_related("previous_version"))
        assert len(newer) == 3 * SHOPS
        for document in newer:
            previous = document.previous_version
            assert document.is_current
            assert previous is not None
            assert (previous.version, previous.is_current) == (1, False)
            assert (previous.shop_id, previous.document_key) == (document.shop_id, document.document_key)
        current = Counter(documents.filter(is_current=True).values_list("shop_id", "document_key"))
        assert set(current.values()) == {1}
        assert documents.filter(embedding__isnull=True).count() == SHOPS
        assert (
            documents.filter(embedding__isnull=False).exclude(embedding_model="").count() == documents.count() - SHOPS
        )


def test_onboarding_and_briefings_are_consistent(seeded: str) -> None:
    with atomic_scope(service_scope()):
        progress = OnboardingProgress.objects.filter(shop_id__in=DOMAINS)
        completed = progress.filter(status=StepStatus.COMPLETED)
        assert completed.exists()
        assert progress.filter(status=StepStatus.IN_PROGRESS).exists()
        assert completed.filter(Q(completed_at__lt=F("started_at")) | Q(completed_at__gt=timezone.now())).count() == 0
        assert progress.exclude(user__memberships__shop=F("shop")).count() == 0

        for briefing in CeoBriefing.objects.filter(shop_id__in=DOMAINS):
            assert briefing.period_end - briefing.period_start == datetime.timedelta(days=6)
            spend = AdPerformance.objects.filter(
                shop=briefing.shop, date__range=(briefing.period_start, briefing.period_end)
            ).aggregate(total=Sum("cost"))["total"]
            # Generated by the briefing job from the demo's own ad performance.
            assert Decimal(briefing.key_metrics["ads"]["spend"]["current"]) == spend
            assert briefing.generation_model == "template-v1"


@pytest.mark.parametrize(("shops", "days"), [(0, 5), (2, 0), (-1, 5), (2, -3)])
def test_rejects_empty_runs_naming_the_options_and_writes_nothing(db: None, shops: int, days: int) -> None:
    with pytest.raises(CommandError, match="--shops and --days must be at least 1"):
        call_command("seed_demo", shops=shops, days=days, stdout=StringIO())
    with atomic_scope(service_scope()):
        assert not Shop.objects.filter(domain__startswith="demo-").exists()
