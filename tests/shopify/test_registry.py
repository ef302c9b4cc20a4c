"""The tables an erasure or export covers come from the registry and the catalog; a table
with a shop_domain column that is not registered stops both."""

from __future__ import annotations

import pytest
from django.db import connection

from shopify import registry
from shopify.archive import ArchiveError, shop_export_write
from shopify.erasure import shop_erasure_run
from shopify.models import ErasureStatus, ShopErasure
from shopify.registry import (
    CoverageError,
    customer_data_declarations,
    customer_data_tables,
    shop_data_plan,
    tables_with_shop_column,
    uncovered_tables,
)
from tenancy.scope import atomic_scope, service_scope
from tests.fixtures.tenants import SHOP_A, Tenant

from .conftest import shop_rows

pytestmark = pytest.mark.django_db


def test_every_table_with_a_shop_domain_column_is_covered() -> None:
    assert uncovered_tables() == []
    # Independent of the registry: what the schema has today.
    assert set(tables_with_shop_column()) == {
        "shops",
        "shop_memberships",
        "seo_audits",
        "seo_rankings",
        "ad_campaigns",
        "ad_performance",
        "social_posts",
        "social_analytics",
        "onboarding_progress",
        "experiments",
        "experiment_results",
        "knowledge_base",
        "ceo_briefings",
        "shopify_webhook_deliveries",
        "shopify_shop_erasures",
    }


def test_partitions_are_reached_through_their_parent_not_listed() -> None:
    tables = tables_with_shop_column()
    assert tables["ad_performance"] is True
    assert not [name for name in tables if name.endswith("_default") or "_p20" in name]


def test_the_plan_puts_parents_before_children_and_knows_the_references() -> None:
    plans = {plan.table: plan for plan in shop_data_plan()}
    order = list(plans)
    for child, parent, column in [
        ("ad_performance", "ad_campaigns", "campaign_id"),
        ("social_analytics", "social_posts", "social_post_id"),
        ("experiment_results", "experiments", "experiment_id"),
        ("knowledge_base", "knowledge_base", "previous_version_id"),
    ]:
        assert order.index(parent) <= order.index(child)
        assert plans[child].references[column] == parent
    assert plans["onboarding_progress"].has_user
    assert "roas" in plans["ad_performance"].generated
    assert "roas" not in plans["ad_performance"].columns
    assert "feature_tours" not in plans  # a user's rows, no shop_domain: not a shop's data


def test_an_unregistered_table_with_shop_domain_stops_erasure_and_changes_nothing(
    filled: tuple[Tenant, Tenant],
) -> None:
    before = shop_rows(SHOP_A)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE stray_notes (id bigint PRIMARY KEY, shop_domain varchar(253) NOT NULL)")
    assert uncovered_tables() == ["stray_notes"]
    with pytest.raises(CoverageError, match="stray_notes"):
        shop_erasure_run(shop_domain=SHOP_A, reason="test")
    assert shop_rows(SHOP_A, list(before)) == before
    with atomic_scope(service_scope()):
        assert ShopErasure.objects.get(shop_domain=SHOP_A).status == ErasureStatus.FAILED
    with pytest.raises(CoverageError, match="stray_notes"), open("/dev/null", "wb") as sink:
        shop_export_write(shop_domain=SHOP_A, target=sink)


def test_registry_dependency_is_one_function(monkeypatch: pytest.MonkeyPatch) -> None:
    # Drop a table from the registry: the catalog check notices it.
    real = registry.registered_tenant_tables()
    monkeypatch.setattr(registry, "registered_tenant_tables", lambda: real - {"experiment_results"})
    assert uncovered_tables() == ["experiment_results"]


def test_every_registered_table_has_a_customer_data_decision() -> None:
    undecided = [table for table, holds in customer_data_declarations().items() if holds is None]
    assert undecided == [], f"decide whether these tables hold customer personal data: {undecided}"
    assert customer_data_tables() == []


def test_an_unreviewed_table_counts_as_customer_data(monkeypatch: pytest.MonkeyPatch) -> None:
    review = dict(registry.CUSTOMER_DATA_REVIEW)
    del review["ceo_briefings"]
    monkeypatch.setattr(registry, "CUSTOMER_DATA_REVIEW", review)
    assert customer_data_tables() == ["ceo_briefings"]


def test_unknown_shop_export_is_refused() -> None:
    with pytest.raises(ArchiveError, match="no shop"), open("/dev/null", "wb") as sink:
        shop_export_write(shop_domain="nobody.myshopify.com", target=sink)


def test_the_tenant_api_role_has_no_privilege_on_the_lifecycle_records() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
            "WHERE grantee IN ('authenticated', 'anon', 'PUBLIC') AND table_name LIKE 'shopify\\_%%'"
        )
        assert cursor.fetchall() == []
