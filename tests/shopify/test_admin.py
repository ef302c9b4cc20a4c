"""Back office: webhook deliveries and erasures read-only, limited to the staff member's
shops; shop exports for staff with the permission, for shops they may see."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from shopify.erasure import shop_erasure_run
from shopify.models import WebhookDelivery
from tenancy.factories import ShopMembershipFactory, UserFactory
from tenancy.scope import atomic_scope, service_scope
from tests.fixtures.tenants import SHOP_A, SHOP_B, Tenant

from .conftest import post_webhook

pytestmark = pytest.mark.django_db

DELIVERIES = "/admin/shopify/webhookdelivery/"
ERASURES = "/admin/shopify/shoperasure/"
EXPORTS = "/admin/shopify/shoperasure/export/"


@pytest.fixture
def records(filled: tuple[Tenant, Tenant]) -> None:
    post_webhook(Client(), "orders/create", SHOP_A, {"id": 1}, webhook_id="wh-alpha")
    post_webhook(Client(), "orders/create", SHOP_B, {"id": 2}, webhook_id="wh-bravo")
    shop_erasure_run(shop_domain="gone-alpha.myshopify.com", reason="test")


def staff(*codenames: str, shop: Tenant | None = None, superuser: bool = False) -> Client:
    user = UserFactory(username=f"staff-{'-'.join(codenames) or 'none'}-{superuser}", is_staff=True)
    user.is_superuser = superuser
    user.save()
    if shop is not None:
        ShopMembershipFactory(user=user, shop=shop.shop, role="member")
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def test_staff_see_deliveries_and_erasures_read_only(records: None) -> None:
    client = staff(superuser=True)
    body = client.get(DELIVERIES).content.decode()
    assert "wh-alpha" in body and "wh-bravo" in body
    assert "gone-alpha.myshopify.com" in client.get(ERASURES).content.decode()
    assert client.get(f"{DELIVERIES}add/").status_code == 403
    with atomic_scope(service_scope()):
        delivery = WebhookDelivery.objects.get(webhook_id="wh-alpha")
    page = client.get(f"{DELIVERIES}{delivery.pk}/change/")
    assert page.status_code == 200
    assert "wh-alpha" in page.content.decode()
    assert 'name="_save"' not in page.content.decode()
    assert client.post(f"{DELIVERIES}{delivery.pk}/delete/", {"post": "yes"}).status_code == 403
    with atomic_scope(service_scope()):
        assert WebhookDelivery.objects.filter(pk=delivery.pk).exists()


def test_staff_limited_to_one_shop_see_only_its_records(records: None, filled: tuple[Tenant, Tenant]) -> None:
    tenant_a, _ = filled
    client = staff("view_webhookdelivery", "view_shoperasure", shop=tenant_a)
    body = client.get(DELIVERIES).content.decode()
    assert "wh-alpha" in body
    assert "wh-bravo" not in body
    assert "gone-alpha.myshopify.com" not in client.get(ERASURES).content.decode()


def test_export_needs_the_permission(filled: tuple[Tenant, Tenant]) -> None:
    client = staff("view_shoperasure")
    assert EXPORTS not in client.get(ERASURES).content.decode()
    assert client.get(EXPORTS).status_code == 403
    assert client.get(f"{EXPORTS}{SHOP_A}/").status_code == 403


def test_staff_export_a_shop_they_may_see_and_not_another(filled: tuple[Tenant, Tenant]) -> None:
    tenant_a, _ = filled
    client = staff("view_shoperasure", "export_shop_data", shop=tenant_a)
    assert f'href="{EXPORTS}"' in client.get(ERASURES).content.decode()
    listing = client.get(EXPORTS).content.decode()
    assert f"{EXPORTS}{SHOP_A}/" in listing
    assert SHOP_B not in listing
    response = client.get(f"{EXPORTS}{SHOP_A}/")
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["shop"]["domain"] == SHOP_A
    assert sum(entry["rows"] for entry in manifest["tables"]) > 20
    assert client.get(f"{EXPORTS}{SHOP_B}/").status_code == 404
    assert client.get(f"{EXPORTS}nobody.myshopify.com/").status_code == 404


def test_superuser_exports_any_shop(filled: tuple[Tenant, Tenant]) -> None:
    client = staff(superuser=True)
    response = client.get(f"{EXPORTS}{SHOP_B}/")
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        assert json.loads(archive.read("manifest.json"))["shop"]["domain"] == SHOP_B
