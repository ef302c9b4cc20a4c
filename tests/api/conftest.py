"""API clients acting for a shop, and the shops, users and memberships behind them."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from tenancy.api.authentication import token_mint
from tenancy.factories import ShopFactory, ShopMembershipFactory, UserFactory
from tenancy.models import Shop, User

SHOP_A = "alpha.myshopify.com"
SHOP_B = "bravo.myshopify.com"


@dataclass
class Actor:
    """A user acting for a shop through the API, with a ready client."""

    user: User
    shop: Shop
    client: APIClient


def client_for(user: User, shop_domain: str | None) -> APIClient:
    client = APIClient()
    token = token_mint(user=user, ttl=datetime.timedelta(minutes=10))
    headers: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    if shop_domain is not None:
        headers["HTTP_X_SHOP_DOMAIN"] = shop_domain
    client.credentials(**headers)
    return client


def _actor(domain: str, username: str, role: str) -> Actor:
    shop = ShopFactory(domain=domain)
    user = UserFactory(username=username)
    ShopMembershipFactory(user=user, shop=shop, role=role)
    return Actor(user=user, shop=shop, client=client_for(user, domain))


@pytest.fixture
def owner_a(db: None) -> Actor:
    """The owner of shop A (may read and write everything of A, CEO briefings included)."""
    return _actor(SHOP_A, "alpha-owner", "owner")


@pytest.fixture
def owner_b(db: None) -> Actor:
    return _actor(SHOP_B, "bravo-owner", "owner")


@pytest.fixture
def member_a(owner_a: Actor) -> Actor:
    user = UserFactory(username="alpha-member")
    ShopMembershipFactory(user=user, shop=owner_a.shop, role="member")
    return Actor(user=user, shop=owner_a.shop, client=client_for(user, SHOP_A))


@pytest.fixture
def viewer_a(owner_a: Actor) -> Actor:
    user = UserFactory(username="alpha-viewer")
    ShopMembershipFactory(user=user, shop=owner_a.shop, role="viewer")
    return Actor(user=user, shop=owner_a.shop, client=client_for(user, SHOP_A))


@pytest.fixture
def outsider(owner_a: Actor, owner_b: Actor) -> APIClient:
    """A signed-in user who is a member of shop B only, asking for shop A."""
    return client_for(owner_b.user, SHOP_A)


def assert_error(response: Any, status: int, *, field: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The stable error shape: status, code, detail, errors[{field, code, message}]."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"status", "code", "detail", "errors"}, body
    assert body["status"] == status
    if field is not None:
        assert field in {e.get("field") for e in body["errors"]}, body
    if code is not None:
        assert code in {body["code"], *(e["code"] for e in body["errors"])}, body
    return body
