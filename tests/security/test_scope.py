"""The scope helper: transaction-bound, restoring, and safe on reused connections."""

from __future__ import annotations

import datetime
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import DatabaseError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from growth.factories import AdCampaignFactory
from growth.models import AdCampaign
from tenancy.api.authentication import token_mint
from tenancy.factories import ShopFactory, ShopMembershipFactory, UserFactory
from tenancy.scope import (
    SETTINGS,
    Scope,
    ScopeError,
    active_scope,
    back_office_scope,
    current_scope,
    enter_scope,
    service_scope,
    shop_scope,
)
from tests.fixtures.tenants import SHOP_A, SHOP_B, Tenant


def _scope(shop: str) -> Scope:
    return shop_scope(shop=shop, subject=None, member_role="owner")


@pytest.mark.django_db(transaction=True)
def test_entering_a_scope_outside_a_transaction_raises() -> None:
    with pytest.raises(ScopeError, match="inside a transaction"), enter_scope(_scope(SHOP_A)):
        pass


def test_unknown_role_is_refused() -> None:
    with pytest.raises(ScopeError, match="unknown scope role"):
        Scope(role="postgres")


@pytest.mark.django_db
def test_scope_restores_role_and_settings_on_exit(tenant_a: Tenant, tenant_b: Tenant) -> None:
    with transaction.atomic():
        assert current_scope() == ("app_owner", "")
        with enter_scope(_scope(SHOP_A)):
            assert current_scope() == ("authenticated", SHOP_A)
            with enter_scope(_scope(SHOP_B)):
                assert current_scope() == ("authenticated", SHOP_B)
            assert current_scope() == ("authenticated", SHOP_A)
            assert active_scope() == _scope(SHOP_A)
        assert current_scope() == ("app_owner", "")
        assert active_scope() is None


@pytest.mark.django_db
def test_scope_in_a_released_savepoint_does_not_leak(tenant_a: Tenant) -> None:
    with transaction.atomic():
        with transaction.atomic(), enter_scope(_scope(SHOP_A)):
            pass
        # SET LOCAL inside a savepoint survives RELEASE; the scope's own restore undid it.
        assert current_scope() == ("app_owner", "")


@pytest.mark.django_db
def test_scope_that_ends_its_transaction_still_restores_inside_a_savepoint(tenant_a: Tenant) -> None:
    with transaction.atomic():
        with transaction.atomic(), enter_scope(_scope(SHOP_A), ends_transaction=True):
            assert current_scope() == ("authenticated", SHOP_A)
        # The inner atomic block was a savepoint: the transaction goes on, so the scope restored.
        assert current_scope() == ("app_owner", "")


@pytest.mark.django_db
def test_exception_inside_scope_surfaces_unchanged(tenant_a: Tenant) -> None:
    error = ValueError("boom")
    with transaction.atomic():
        with pytest.raises(ValueError) as caught, enter_scope(_scope(SHOP_A)):
            raise error
        assert caught.value is error
        assert current_scope() == ("app_owner", "")


@pytest.mark.django_db
def test_database_error_inside_scope_surfaces_unchanged_and_rolls_back_scope(tenant_a: Tenant) -> None:
    with transaction.atomic():
        with (
            pytest.raises(DatabaseError, match="division by zero"),
            transaction.atomic(),
            enter_scope(_scope(SHOP_A)),
            connection.cursor() as cursor,
        ):
            cursor.execute("SELECT 1 / 0")
        assert current_scope() == ("app_owner", "")


@pytest.mark.django_db
def test_back_office_scope_limits_staff_to_listed_shops(tenant_a: Tenant, tenant_b: Tenant) -> None:
    AdCampaignFactory(shop=tenant_a.shop)
    AdCampaignFactory(shop=tenant_b.shop)
    with transaction.atomic():
        with enter_scope(back_office_scope(subject=None, shops=None)):
            assert sorted(AdCampaign.objects.values_list("shop_id", flat=True)) == [SHOP_A, SHOP_B]
        with enter_scope(back_office_scope(subject=None, shops=(SHOP_B,))):
            assert list(AdCampaign.objects.values_list("shop_id", flat=True)) == [SHOP_B]


def _request(shop: str | None, *, fail: bool = False) -> list[str]:
    """One request's transaction as the API will run it: scope, read, commit or raise."""
    with transaction.atomic():
        if shop is None:
            return list(AdCampaign.objects.values_list("shop_id", flat=True))
        with enter_scope(_scope(shop)):
            shops = list(AdCampaign.objects.values_list("shop_id", flat=True))
            if fail:
                raise RuntimeError("request failed")
            return shops


@pytest.fixture
def two_shops_committed(transactional_db: None) -> None:
    for domain in (SHOP_A, SHOP_B):
        shop = ShopFactory(domain=domain)
        AdCampaignFactory(shop=shop)


@pytest.mark.usefixtures("two_shops_committed")
def test_reused_connection_never_carries_a_shop_into_the_next_request(monkeypatch: pytest.MonkeyPatch) -> None:
    # The live connection's settings (the same dict as settings.DATABASES["default"]), restored
    # after the test: assigning into it directly leaked the change into every later test.
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 600)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()
    assert _request(SHOP_A) == [SHOP_A]
    assert _request(None) == []
    assert _request(SHOP_B) == [SHOP_B]
    with pytest.raises(RuntimeError):
        _request(SHOP_A, fail=True)
    assert _request(None) == []
    assert _request(SHOP_B) == [SHOP_B]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone() == pid, "the test must run on one reused connection"


@pytest.mark.usefixtures("two_shops_committed")
def test_interleaved_scopes_across_threads_never_see_another_shop() -> None:
    leaks: list[str] = []
    errors: list[BaseException] = []
    rounds = 60

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(rounds):
                shop = rng.choice([SHOP_A, SHOP_B, None])
                fail = rng.random() < 0.2
                try:
                    seen = _request(shop, fail=fail)
                except RuntimeError:
                    continue
                expected = [] if shop is None else [shop]
                if seen != expected:
                    leaks.append(f"scope {shop} saw {seen}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert leaks == []


def test_shop_scoped_list_uses_an_index_on_shop_domain(db: None, in_scope: Callable[[Scope], Any]) -> None:
    with in_scope(service_scope()), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO shops (shop_domain, name, is_active)
            SELECT 'shop-' || g || '.example.com', 'Shop ' || g, true FROM generate_series(1, 300) g
            """
        )
        cursor.execute(
            """
            INSERT INTO ad_campaigns (shop_domain, platform, platform_campaign_id, campaign_name, currency,
                                      bid_strategy, campaign_status)
            SELECT 'shop-' || (g % 300 + 1) || '.example.com', 'google_ads', 'c' || g, 'Campaign ' || g, 'USD',
                   'manual_cpc', CASE WHEN g % 3 = 0 THEN 'paused' ELSE 'active' END
            FROM generate_series(1, 30000) g
            """
        )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ANALYZE ad_campaigns")
    with in_scope(_scope("shop-7.example.com")), connection.cursor() as cursor:
        cursor.execute("EXPLAIN SELECT * FROM ad_campaigns WHERE campaign_status = 'active'")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan" not in plan, plan
    assert "Index Cond" in plan and "shop_domain" in plan, plan


def _connection_state() -> tuple[Any, ...]:
    """Backend pid, role and every scope setting of the connection, outside any transaction."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_backend_pid(), current_user, "
            + ", ".join("coalesce(current_setting(%s, true), '')" for _ in SETTINGS),
            list(SETTINGS),
        )
        row = cursor.fetchone()
    assert row is not None
    return tuple(row)


@pytest.mark.usefixtures("two_shops_committed")
def test_api_requests_that_fail_leave_no_role_or_shop_on_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 600)
    user = UserFactory()
    for domain in (SHOP_A, SHOP_B):
        ShopMembershipFactory(user=user, shop_id=domain, role="owner")
    token = token_mint(user=user, ttl=datetime.timedelta(minutes=5))
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {token}")
    clean = _connection_state()
    assert clean[1:] == ("app_owner", *("" for _ in SETTINGS))
    requests: list[tuple[str, str, str, dict[str, Any] | None, int]] = [
        ("get", SHOP_A, "/api/v1/ad-campaigns/", None, 200),
        # Refused inside the scope (bad cursor, bad body): the transaction is rolled back.
        ("get", SHOP_A, "/api/v1/ad-performance/?cursor=not-a-cursor", None, 404),
        ("post", SHOP_A, "/api/v1/ad-campaigns/", {"campaign_name": ""}, 400),
        ("post", SHOP_A, "/api/v1/ad-performance/bulk/", {"rows": [{"campaign_id": 10**9}]}, 400),
        ("get", SHOP_B, "/api/v1/ad-campaigns/", None, 200),
    ]
    for method, shop, url, body, status in requests:
        with CaptureQueriesContext(connection) as captured:
            response = getattr(client, method)(url, body, format="json", HTTP_X_SHOP_DOMAIN=shop)
        assert response.status_code == status, (url, response.content)
        # The request's own transaction: the scope is entered once and ends with the commit
        # or rollback, without a restoring statement.
        assert sum("set_config('role'" in query["sql"] for query in captured.captured_queries) == 1
        if status == 200:
            assert {row["shop_domain"] for row in response.json()["results"]} == {shop}
        assert _connection_state() == clean, f"{method} {url} left its scope on the connection"
