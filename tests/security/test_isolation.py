"""Every tenant table, every command: a shop sees and changes only its own rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from tenancy.rls import tenant_policies
from tenancy.scope import Scope, enter_scope, service_scope
from tests.fixtures.tables import TABLES, TableCase
from tests.fixtures.tenants import Tenant

POLICY_VIOLATION = "violates row-level security policy"

pytestmark = pytest.mark.django_db


def test_table_cases_cover_every_secured_table() -> None:
    assert sorted(TABLES) == sorted(tenant_policies())


def _rows(case: TableCase) -> list[tuple[Any, ...]]:
    return list(case.model._default_manager.order_by("pk").values_list("pk", flat=True))


def _owner_key(case: TableCase, obj: Any) -> str:
    return str(obj.user_id) if case.table == "feature_tours" else obj.shop_id


def test_select_sees_only_own_rows(
    table_case: TableCase, tenant_a: Tenant, tenant_b: Tenant, in_scope: Callable[[Scope], Any]
) -> None:
    row_a, row_b = table_case.make(tenant_a), table_case.make(tenant_b)
    with in_scope(tenant_a.scope()):
        assert _rows(table_case) == [row_a.pk]
        assert not table_case.model._default_manager.filter(pk=row_b.pk).exists()
    with in_scope(tenant_b.scope()):
        assert _rows(table_case) == [row_b.pk]


def test_update_reaches_only_own_rows(
    table_case: TableCase, tenant_a: Tenant, tenant_b: Tenant, in_scope: Callable[[Scope], Any]
) -> None:
    row_a, row_b = table_case.make(tenant_a), table_case.make(tenant_b)
    stamp = timezone.now()
    with in_scope(tenant_a.scope()):
        assert table_case.model._default_manager.update(updated_at=stamp) == 1
        assert table_case.model._default_manager.filter(pk=row_b.pk).update(updated_at=stamp) == 0
    with in_scope(service_scope()):
        assert table_case.model._default_manager.get(pk=row_a.pk).updated_at == stamp
        assert table_case.model._default_manager.get(pk=row_b.pk).updated_at != stamp


def test_delete_reaches_only_own_rows(
    table_case: TableCase, tenant_a: Tenant, tenant_b: Tenant, in_scope: Callable[[Scope], Any]
) -> None:
    row_a, row_b = table_case.make(tenant_a), table_case.make(tenant_b)
    with in_scope(tenant_a.scope()), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table_case.table} WHERE id = %s", [row_b.pk])
        assert cursor.rowcount == 0
        cursor.execute(f"DELETE FROM {table_case.table} WHERE id = %s", [row_a.pk])
        assert cursor.rowcount == 1
    with in_scope(service_scope()):
        assert _rows(table_case) == [row_b.pk]


def test_insert_into_other_tenant_is_refused_by_policy(
    table_case: TableCase, tenant_a: Tenant, tenant_b: Tenant, in_scope: Callable[[Scope], Any]
) -> None:
    template = table_case.make(tenant_b)
    with in_scope(service_scope()):
        before = _rows(table_case)
    # A copy of B's row (same parent, same shop) written from A's scope. Row level security
    # checks the new row before any unique index sees it, so the copy needs no fresh keys.
    template.pk = None
    with in_scope(tenant_a.scope()), pytest.raises(DatabaseError, match=POLICY_VIOLATION), transaction.atomic():
        template.save(force_insert=True)
    with in_scope(service_scope()):
        assert _rows(table_case) == before


def test_update_cannot_move_row_to_other_tenant(
    table_case: TableCase, tenant_a: Tenant, tenant_b: Tenant, in_scope: Callable[[Scope], Any]
) -> None:
    row_a = table_case.make(tenant_a)
    target = table_case.retarget(tenant_b)
    with in_scope(tenant_a.scope()), pytest.raises(DatabaseError, match=POLICY_VIOLATION), transaction.atomic():
        table_case.model._default_manager.filter(pk=row_a.pk).update(**target)
    with in_scope(service_scope()):
        assert _owner_key(table_case, table_case.model._default_manager.get(pk=row_a.pk)) == _owner_key(
            table_case, row_a
        )


@pytest.mark.parametrize(
    ("child", "parent_field", "make_parent"),
    [
        ("ad_performance", "campaign", TABLES["ad_campaigns"].make),
        ("social_analytics", "social_post", TABLES["social_posts"].make),
        ("experiment_results", "experiment", TABLES["experiments"].make),
        ("knowledge_base", "previous_version", TABLES["knowledge_base"].make),
    ],
)
def test_child_row_cannot_reference_other_shops_parent(
    child: str,
    parent_field: str,
    make_parent: Callable[[Tenant], Any],
    tenant_a: Tenant,
    tenant_b: Tenant,
    in_scope: Callable[[Scope], Any],
) -> None:
    case = TABLES[child]
    own = case.make(tenant_a)
    foreign_parent = make_parent(tenant_b)
    # Pointing A's row at B's parent: the composite foreign key refuses it even though row
    # level security hides B's parent from A.
    with in_scope(tenant_a.scope()), pytest.raises(DatabaseError, match="foreign key"), transaction.atomic():
        case.model._default_manager.filter(pk=own.pk).update(**{f"{parent_field}_id": foreign_parent.pk})


@pytest.mark.parametrize("case", TABLES.values(), ids=list(TABLES))
def test_no_scope_reads_zero_rows_even_as_table_owner(case: TableCase, tenant_a: Tenant) -> None:
    case.make(tenant_a)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone() == ("app_owner",)
        cursor.execute(f"SELECT count(*) FROM {case.table}")
        assert cursor.fetchone() == (0,)
        with enter_scope(service_scope()):
            cursor.execute(f"SELECT count(*) FROM {case.table}")
            assert cursor.fetchone()[0] >= 1


@pytest.mark.parametrize("case", TABLES.values(), ids=list(TABLES))
def test_owner_cannot_insert_outside_a_scope(case: TableCase, tenant_a: Tenant) -> None:
    row = case.make(tenant_a)
    row.pk = None
    with pytest.raises(DatabaseError, match=POLICY_VIOLATION), transaction.atomic():
        row.save(force_insert=True)


@pytest.mark.parametrize("case", TABLES.values(), ids=list(TABLES))
def test_anon_role_gets_nothing(case: TableCase, in_scope: Callable[[Scope], Any]) -> None:
    denied = pytest.raises(DatabaseError, match="permission denied")
    with in_scope(Scope(role="anon")), denied, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {case.table}")
