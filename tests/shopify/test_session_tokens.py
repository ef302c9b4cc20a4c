"""App Bridge session tokens: the shop from `dest`, the audience and signature of the app,
the linking rule, and 401s that say what is wrong (without the secret)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from shopify.session_tokens import shopify_user_id
from tenancy.factories import ShopFactory
from tenancy.models import Shop, ShopMembership, User
from tests.fixtures.api import client_for
from tests.fixtures.tenants import SHOP_A, SHOP_B, Tenant

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
        ({"dest": "https://alpha.myshopify.com/x"}, "'dest' is not exactly"),
        ({"dest": "https://alpha.myshopify.com/"}, "'dest' is not exactly"),
        ({"dest": "https://alpha.myshopify.com?x=1"}, "'dest' is not exactly"),
        ({"dest": "https://alpha.myshopify.com#admin"}, "'dest' is not exactly"),
        ({"dest": "https://alpha.myshopify.com:443"}, "'dest' is not exactly"),
        ({"dest": "https://x@alpha.myshopify.com"}, "'dest' is not exactly"),
        ({"dest": "https://[alpha.myshopify.com"}, "'dest' is not exactly"),
        ({"iss": "https://bravo.myshopify.com/admin"}, "iss"),
        ({"iss": "https://alpha.myshopify.com/other"}, "iss"),
        ({"iss": "https://alpha.myshopify.com/admin/x"}, "'iss' is not its 'dest' + '/admin'"),
        ({"iss": "https://alpha.myshopify.com/admin?x=1"}, "'iss' is not its 'dest' + '/admin'"),
        ({"iss": "https://alpha.myshopify.com:8443/admin"}, "'iss' is not its 'dest' + '/admin'"),
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
        "dest-with-a-path",
        "dest-with-a-trailing-slash",
        "dest-with-a-query",
        "dest-with-a-fragment",
        "dest-with-a-port",
        "dest-with-a-user",
        "dest-unparsable",
        "iss-other-shop",
        "iss-not-admin",
        "iss-below-admin",
        "iss-with-a-query",
        "iss-with-a-port",
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


# --- Deeply nested tokens -----------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: bytes, claims: bytes, secret: str | None = None) -> str:
    """A JWT of exactly these segments, signed with `secret` (or with a made-up signature)."""
    signing_input = f"{b64(header)}.{b64(claims)}"
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest() if secret else b"x" * 32
    return f"{signing_input}.{b64(signature)}"


HEADER = b'{"alg":"HS256","typ":"JWT"}'
NESTED = b"[" * 5000
SESSION_CLAIMS = json.dumps({"dest": f"https://{SHOP_A}", "iss": f"https://{SHOP_A}/admin", "sub": "9"}).encode()
PROJECT_CLAIMS = json.dumps({"sub": "00000000-0000-0000-0000-000000000001", "exp": 4_000_000_000}).encode()

NESTED_TOKENS: dict[str, Callable[[Any], str]] = {
    # The reported case: the claims segment is `[` x 5000 (read unverified to tell a session
    # token from a project token).
    "nested claims": lambda s: raw_token(HEADER, NESTED),
    "nested objects in the claims": lambda s: raw_token(HEADER, b'{"a":' * 5000),
    "nested claim beside dest": lambda s: raw_token(
        HEADER, b'{"dest":"https://' + SHOP_A.encode() + b'","x":' + NESTED + b"}", API_SECRET
    ),
    # PyJWT parses the header before the signature, in both authentication classes.
    "nested header of a session token": lambda s: raw_token(NESTED, SESSION_CLAIMS),
    "nested header of a project token": lambda s: raw_token(NESTED, PROJECT_CLAIMS),
    # Signed with the project's secret: PyJWT parses the claims after the signature passes.
    "nested claims signed with the project secret": lambda s: raw_token(HEADER, NESTED, s.JWT_SECRET),
}


@pytest.mark.parametrize("case", list(NESTED_TOKENS), ids=list(NESTED_TOKENS))
def test_a_deeply_nested_bearer_token_is_401_not_a_server_error(
    tenant_a: Tenant, token_client: Callable[..., Any], settings: Any, case: str
) -> None:
    users_before = User.objects.count()
    response = token_client(NESTED_TOKENS[case](settings)).get(RESOURCE)
    assert response.status_code == 401, response.content
    body = response.json()
    assert set(body) == {"status", "code", "detail", "errors"}
    assert (body["status"], body["code"], body["errors"]) == (401, "authentication_failed", [])
    assert "token" in body["detail"].lower()
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert User.objects.count() == users_before


@pytest.mark.parametrize("kind", ["session token", "project token"])
def test_a_recursion_error_from_any_pyjwt_is_401(
    tenant_a: Tenant, token_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # The locked PyJWT (2.15) turns a nested header into DecodeError; releases `PyJWT>=2.8`
    # admits may let json's RecursionError out. Both classes must answer 401 either way.
    def nested(*args: Any, **kwargs: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded while decoding a JSON array")

    client = token_client(session_token(SHOP_A, "9")) if kind == "session token" else client_for(tenant_a.owner, SHOP_A)
    monkeypatch.setattr(jwt, "decode", nested)
    response = client.get(RESOURCE)
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "authentication_failed"
    assert "nested too deeply" in response.json()["detail"]
