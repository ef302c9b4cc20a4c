"""Staff requests to the admin run as back_office, limited to the staff user's shops."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.urls import reverse

from growth.factories import AdCampaignFactory
from tenancy.factories import ShopMembershipFactory, UserFactory
from tenancy.scope import current_scope
from tests.fixtures.tenants import SHOP_A, SHOP_B, Tenant

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/growth/adcampaign/"


@pytest.fixture
def campaigns(tenant_a: Tenant, tenant_b: Tenant) -> dict[str, int]:
    return {
        SHOP_A: AdCampaignFactory(shop=tenant_a.shop, campaign_name="Alpha brand").pk,
        SHOP_B: AdCampaignFactory(shop=tenant_b.shop, campaign_name="Bravo brand").pk,
    }


def test_superuser_sees_every_shop_in_the_admin(campaigns: dict[str, int]) -> None:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    body = client.get(CHANGELIST).content.decode()
    assert "Alpha brand" in body and "Bravo brand" in body
    # The scope ended with the request: the test's connection is the table owner again.
    assert current_scope() == ("app_owner", "")


def test_staff_member_of_one_shop_sees_only_that_shop(campaigns: dict[str, int], tenant_a: Tenant) -> None:
    user = UserFactory(username="alpha-staff", is_staff=True)
    ShopMembershipFactory(user=user, shop=tenant_a.shop, role="member")
    # The model permissions the admin checks before it shows the changelist.
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_adcampaign", "change_adcampaign"]))
    client = Client()
    client.force_login(user)
    body = client.get(CHANGELIST).content.decode()
    assert "Alpha brand" in body
    assert "Bravo brand" not in body
    hidden = client.get(f"{CHANGELIST}{campaigns[SHOP_B]}/change/")
    # Another shop's row is answered as one that does not exist: back to the index.
    assert (hidden.status_code, hidden["Location"]) == (302, reverse("admin:index"))
    assert [str(m) for m in get_messages(hidden.wsgi_request)] == [
        f"ad campaign with ID “{campaigns[SHOP_B]}” doesn\u2019t exist. Perhaps it was deleted?"
    ]
    assert client.get(f"{CHANGELIST}{campaigns[SHOP_A]}/change/").status_code == 200


def test_non_staff_user_gets_no_scope_and_no_admin(campaigns: dict[str, int]) -> None:
    user = UserFactory(username="customer")
    client = Client()
    client.force_login(user)
    response = client.get(CHANGELIST)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def _staff_client(username: str, tenant: Tenant) -> Client:
    user = UserFactory(username=username, is_staff=True)
    ShopMembershipFactory(user=user, shop=tenant.shop, role="member")
    user.user_permissions.add(*Permission.objects.filter(codename="view_adcampaign"))
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.urls("tests.security.urls")
@pytest.mark.django_db(transaction=True)
def test_persistent_connection_carries_no_scope_between_http_requests(tenant_a: Tenant, tenant_b: Tenant) -> None:
    AdCampaignFactory(shop=tenant_a.shop, campaign_name="Alpha brand")
    AdCampaignFactory(shop=tenant_b.shop, campaign_name="Bravo brand")
    staff_a, staff_b = _staff_client("alpha-staff", tenant_a), _staff_client("bravo-staff", tenant_b)
    previous = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = 600
    try:
        pid = _backend_pid()
        body = staff_a.get(CHANGELIST).content.decode()
        assert "Alpha brand" in body and "Bravo brand" not in body
        assert current_scope() == ("app_owner", "")
        assert staff_a.get("/admin/boom/").status_code == 500
        assert current_scope() == ("app_owner", "")
        body = staff_b.get(CHANGELIST).content.decode()
        assert "Bravo brand" in body and "Alpha brand" not in body
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM ad_campaigns")
            assert cursor.fetchone() == (0,), "a request's scope outlived it"
        assert _backend_pid() == pid, "the requests must have shared one persistent connection"
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = previous
