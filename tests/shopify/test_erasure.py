"""shop/redact's erasure: every row of the shop in every table and partition, nothing of any
other shop, all or nothing, and a failed run finished by running it again."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from shopify import erasure as erasure_module
from shopify.erasure import remaining_rows, shop_erasure_run, shop_is_erased
from shopify.models import ErasureStatus, ShopErasure
from shopify.registry import registered_tenant_tables, shop_data_plan, tables_with_shop_column
from tenancy.models import Shop, ShopMembership
from tenancy.scope import atomic_scope, service_scope
from tests.fixtures.tenants import SHOP_A, SHOP_B, Tenant

from .conftest import fetch, partitions_holding, shop_rows

pytestmark = pytest.mark.django_db

PARTITIONED = ("ad_performance", "seo_rankings", "social_analytics")


def test_the_fixture_fills_every_table_of_a_shop_in_several_partitions_and_default(
    filled: tuple[Tenant, Tenant],
) -> None:
    # The erasure tests below prove something only if every table holds rows of both shops.
    for domain in (SHOP_A, SHOP_B):
        rows = shop_rows(domain)
        assert set(rows) == {t for t in registered_tenant_tables() if t in tables_with_shop_column()}
        assert all(rows[table] for table in rows), {t: len(r) for t, r in rows.items()}
        for table in PARTITIONED:
            holding = partitions_holding(table, domain)
            assert f"{table}_default" in holding
            assert len(holding - {f"{table}_default"}) >= 2, holding


def test_erasure_removes_every_row_of_the_shop_and_leaves_the_other_shop_byte_for_byte(
    filled: tuple[Tenant, Tenant],
) -> None:
    before_b = shop_rows(SHOP_B)
    members_b = list(ShopMembership.objects.filter(shop_id=SHOP_B).values_list("user_id", "role").order_by("user_id"))

    erasure = shop_erasure_run(shop_domain=SHOP_A, reason="test")

    assert erasure.status == ErasureStatus.COMPLETED
    assert all(rows == [] for rows in shop_rows(SHOP_A).values())
    assert shop_rows(SHOP_B) == before_b
    assert not ShopMembership.objects.filter(shop_id=SHOP_A).exists()
    assert (
        list(ShopMembership.objects.filter(shop_id=SHOP_B).values_list("user_id", "role").order_by("user_id"))
        == members_b
    )
    for table in PARTITIONED:
        assert partitions_holding(table, SHOP_A) == set()
    # The counts recorded are the rows that were there: one case row each at least, and the
    # three extra dates (two months and DEFAULT) of each partitioned table.
    assert erasure.rows_deleted["ad_performance"] == 4
    assert erasure.rows_deleted["seo_rankings"] == 4
    assert erasure.rows_deleted["social_analytics"] == 4
    assert erasure.rows_deleted["shop_memberships"] == 2
    assert erasure.rows_deleted["onboarding_progress"] == 2
    assert erasure.rows_deleted["knowledge_base"] == 3


def test_after_erasure_only_the_shop_row_and_the_records_name_the_shop(filled: tuple[Tenant, Tenant]) -> None:
    shop_erasure_run(shop_domain=SHOP_A, reason="test")
    with atomic_scope(service_scope()):
        naming = {
            table
            for table in tables_with_shop_column()
            if fetch(f"SELECT count(*) FROM {table} WHERE shop_domain = %s", [SHOP_A])[0][0]
        }
    assert naming == {"shops", "shopify_shop_erasures"}
    shop = Shop.objects.get(domain=SHOP_A)
    assert (shop.is_active, shop.name) == (False, SHOP_A)
    assert shop_is_erased(SHOP_A)
    assert not shop_is_erased(SHOP_B)
    assert remaining_rows(SHOP_A) == {}


def test_a_failing_erasure_changes_nothing_and_running_it_again_finishes_it(
    filled: tuple[Tenant, Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    before_a = shop_rows(SHOP_A)
    real_delete = erasure_module._delete
    calls: list[str] = []

    def crash_half_way(table: str, shop_domain: str, *, using: str) -> int:
        calls.append(table)
        if len(calls) == 5:
            raise RuntimeError("connection lost")
        return real_delete(table, shop_domain, using=using)

    monkeypatch.setattr(erasure_module, "_delete", crash_half_way)
    with pytest.raises(RuntimeError, match="connection lost"):
        shop_erasure_run(shop_domain=SHOP_A, reason="test")
    assert len(calls) == 5
    assert shop_rows(SHOP_A) == before_a
    assert Shop.objects.get(domain=SHOP_A).is_active
    with atomic_scope(service_scope()):
        failed = ShopErasure.objects.get(shop_domain=SHOP_A)
    assert failed.status == ErasureStatus.FAILED
    assert failed.error == "RuntimeError: connection lost"

    monkeypatch.setattr(erasure_module, "_delete", real_delete)
    call_command("erase_shop", "--unfinished", "--yes", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert all(rows == [] for rows in shop_rows(SHOP_A).values())
    with atomic_scope(service_scope()):
        statuses = list(ShopErasure.objects.filter(shop_domain=SHOP_A).order_by("id").values_list("status", flat=True))
    assert statuses == [ErasureStatus.FAILED, ErasureStatus.COMPLETED]


def test_erasure_deletes_children_before_their_parents(
    filled: tuple[Tenant, Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    real_delete = erasure_module._delete

    def recording(table: str, shop_domain: str, *, using: str) -> int:
        order.append(table)
        return real_delete(table, shop_domain, using=using)

    monkeypatch.setattr(erasure_module, "_delete", recording)
    shop_erasure_run(shop_domain=SHOP_A, reason="test")
    for child, parent in [
        ("ad_performance", "ad_campaigns"),
        ("social_analytics", "social_posts"),
        ("experiment_results", "experiments"),
    ]:
        assert order.index(child) < order.index(parent)
    assert order[-1] == "shop_memberships"
    assert set(order) == {plan.table for plan in shop_data_plan()} | {"shop_memberships"}


def test_erasing_a_shop_never_seen_records_an_empty_erasure() -> None:
    erasure = shop_erasure_run(shop_domain="never-seen.myshopify.com", reason="test")
    assert erasure.status == ErasureStatus.COMPLETED
    assert sum(erasure.rows_deleted.values()) == 0
    assert not Shop.objects.filter(domain="never-seen.myshopify.com").exists()


def test_erase_shop_command_refuses_bad_input_and_asks_before_erasing(
    filled: tuple[Tenant, Tenant], monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not a shop domain"):
        call_command("erase_shop", "Not A Shop", "--yes")
    with pytest.raises(CommandError, match="name a DOMAIN"):
        call_command("erase_shop", "--yes")
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    with pytest.raises(CommandError, match="nothing erased"):
        call_command("erase_shop", SHOP_A)
    assert all(shop_rows(SHOP_A).values())
    with atomic_scope(service_scope()):
        assert not ShopErasure.objects.exists()
    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    call_command("erase_shop", SHOP_A, stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert all(rows == [] for rows in shop_rows(SHOP_A).values())
