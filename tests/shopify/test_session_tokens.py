"""App Bridge session tokens: the shop from `dest`, the audience and signature of the app,
the linking rule, and 401s that say what is wrong (without the secret)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from shopify.session_tokens import shopify_user_id
from tenancy.factories import ShopFactory
from tenancy.models import Shop, ShopMembership, User
from tests.api.conftest import client_for
from tests.security.conftest import SHOP_A, SHOP_B, Tenant

from .conftest import API_SECRET, session_token

pytestmark = pytest.mark.django_db

RESOURCE = "/api/v1/seo-audits/"


def membership(sub: str, shop: str) -> str | None:
    row = ShopMembership.objects.filter(user_id=shopify_user_id(sub), shop_id=shop).values_list("role", flat=True)
    return row.first()


def test_a_session_token_reaches_the_api_without_a_shop_header(
    filled: tuple[Tenant, Tenant], token_client: Callable[..., Any]
) -> None:
    response = token_client(session_token(SHOP_A, "1001")).get(RESOURCE)
    assert response.status_code == 200, response.content
    shops = {row["shop_domain"] for row in response.json()["results"]}
    assert shops == {SHOP_A}


def test_first_user_of_a_shop_becomes_owner_and_the_next_ones_members(
    tenant_a: Tenant, token_client: Callable[..., Any]
) -> None:
    fresh = "fresh.myshopify.com"
    assert token_client(session_token(fresh, "1")).get(RESOURCE).status_code == 200
    assert token_client(session_token(fresh, "2")).get(RESOURCE).status_code == 200
    assert Shop.objects.get(domain=fresh).is_active
    assert (membership("1", fresh), membership("2", fresh)) == ("owner", "member")
    # Shop A already has an owner (the fixture's): a Shopify user joins it as a member.
    assert token_client(session_token(SHOP_A, "3")).get(RESOURCE).status_code == 200
    assert membership("3", SHOP_A) == "member"
    user = User.objects.get(pk=shopify_user_id("1"))
    assert user.username == "shopify-1"
    assert not user.has_usable_password()


def test_the_same_shopify_user_is_one_project_user_across_shops(token_client: Callable[..., Any]) -> None:
    ShopFactory(domain="one.myshopify.com")
    ShopFactory(domain="two.myshopify.com")
    token_client(session_token("one.myshopify.com", "77")).get(RESOURCE)
    token_client(session_token("two.myshopify.com", "77")).get(RESOURCE)
    assert User.objects.filter(username="shopify-77").count() == 1
    assert membership("77", "one.myshopify.com") == "owner"
    assert membership("77", "two.myshopify.com") == "owner"


def test_a_shop_header_that_agrees_is_accepted_and_one_that_differs_is_refused(
    filled: tuple[Tenant, Tenant], token_client: Callable[..., Any]
) -> None:
    token = session_token(SHOP_A, "5")
    assert token_client(token, SHOP_A.upper()).get(RESOURCE).status_code == 200
    refused = token_client(token, SHOP_B).get(RESOURCE)
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "X-Shop-Domain"
    assert "does not match" in refused.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("token_kwargs", "reason"),
    [
        ({"secret": "not-the-app-secret-0123456789abcdef"}, "signature is invalid"),
        ({"aud": "another-app"}, "another app"),
        ({"age": 120}, "expired"),
        ({"age": -120}, "not valid yet"),
        ({"dest": "https://evil.example.com"}, "dest"),
        ({"dest": "http://alpha.myshopify.com"}, "dest"),
        ({"iss": "https://bravo.myshopify.com/admin"}, "iss"),
        ({"iss": "https://alpha.myshopify.com/other"}, "iss"),
        ({"sub": None}, "'sub'"),
        ({"nbf": None}, "'nbf'"),
        ({"aud": None}, "aud"),
    ],
    ids=[
        "wrong-secret",
        "wrong-aud",
        "expired",
        "future",
        "foreign-dest",
        "http-dest",
        "iss-other-shop",
        "iss-not-admin",
        "no-sub",
        "no-nbf",
        "no-aud",
    ],
)
def test_bad_session_tokens_are_401_with_a_reason(
    tenant_a: Tenant,
    token_client: Callable[..., Any],
    token_kwargs: dict[str, Any],
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    users_before = User.objects.count()
    kwargs = dict(token_kwargs)
    sub = kwargs.pop("sub", "9")
    if "age" in kwargs:
        # Relative to when the test runs, not to when the parameters were collected.
        kwargs["now"] = time.time() - kwargs.pop("age")
    response = token_client(session_token(SHOP_A, sub, **kwargs)).get(RESOURCE)
    assert response.status_code == 401, response.content
    body = response.json()
    assert body["code"] == "authentication_failed"
    assert reason in body["detail"]
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert API_SECRET not in response.content.decode() + caplog.text
    assert User.objects.count() == users_before


def test_small_clock_skew_is_tolerated_but_not_more(tenant_a: Tenant, token_client: Callable[..., Any]) -> None:
    # Expired a second ago: within the ten-second leeway; twenty seconds ago: refused.
    assert token_client(session_token(SHOP_A, "9", now=time.time() - 61)).get(RESOURCE).status_code == 200
    assert token_client(session_token(SHOP_A, "9", now=time.time() - 80)).get(RESOURCE).status_code == 401


def test_an_inactive_shop_gets_no_access_and_no_new_member(tenant_a: Tenant, token_client: Callable[..., Any]) -> None:
    Shop.objects.filter(domain=SHOP_A).update(is_active=False)
    response = token_client(session_token(SHOP_A, "11")).get(RESOURCE)
    assert response.status_code == 401
    assert "not active" in response.json()["detail"]
    assert membership("11", SHOP_A) is None


def test_tokens_are_refused_while_the_app_is_not_configured(
    tenant_a: Tenant, token_client: Callable[..., Any], settings: Any
) -> None:
    settings.SHOPIFY_API_SECRET = ""
    response = token_client(session_token(SHOP_A, "9")).get(RESOURCE)
    assert response.status_code == 401
    assert "not configured" in response.json()["detail"]


def test_project_tokens_still_work_beside_session_tokens(filled: tuple[Tenant, Tenant]) -> None:
    tenant_a, _ = filled
    assert client_for(tenant_a.owner, SHOP_A).get(RESOURCE).status_code == 200
    assert client_for(tenant_a.owner, None).get(RESOURCE).status_code == 400


def test_a_session_token_cannot_read_another_shop(filled: tuple[Tenant, Tenant], token_client: Callable) -> None:
    # Member of A through the token; B's rows stay invisible whatever the query string says.
    response = token_client(session_token(SHOP_A, "12")).get(RESOURCE, {"shop_domain": SHOP_B})
    assert response.status_code == 200
    rows = response.json()["results"]
    assert rows and {row["shop_domain"] for row in rows} == {SHOP_A}
