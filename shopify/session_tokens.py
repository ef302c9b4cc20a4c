"""Shopify App Bridge session tokens: authentication beside the project's own JWT.

An embedded app's front end sends `Authorization: Bearer <session token>`: HS256 signed with
the app's client secret (SHOPIFY_API_SECRET), `aud` = the app's client id (SHOPIFY_API_KEY),
`dest` = `https://{shop}.myshopify.com` exactly (the shop's origin: no path, port or trailing
slash), `iss` = exactly `https://{shop}.myshopify.com/admin`, `sub` =
the Shopify user id, about a minute of life. The shop comes from `dest`, so no X-Shop-Domain
header is needed; if one is sent it must name the same shop. The authenticator returns the
project's `TokenAuth` with the token's shop as the looked-up header, so the tenant context
(tenancy/api/scoping.py) needs no change to use it.

Linking rule (docs/security.md, "Shopify session tokens"):
- the Shopify user `sub` is the project user whose id is uuid5(SHOPIFY_USER_NAMESPACE, sub)
  (username `shopify-<sub>`), created on first use with no usable password;
- a shop the token names that does not exist yet is created: a valid token proves Shopify
  installed this app on it (only Shopify and this service know the secret);
- the user's first use of a shop creates their membership: `owner` when the shop has no owner
  yet (the installing merchant is the first to open the app, Shopify opens it right after the
  install), `member` otherwise; roles are changed by an owner or staff afterwards;
- an inactive shop (uninstalled, or erased) gets nothing: its tokens are refused, and no user
  or membership is created for it.

Tokens that are not session tokens (no `dest` claim) are left to the next authentication
class, the project's JWT.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

import jwt
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from tenancy.api.scoping import SHOP_HEADER, MembershipLookup, ShopHeader, TokenAuth, active_user
from tenancy.models import MembershipRole, Shop, ShopMembership, User, shop_domain_validator

logger = logging.getLogger(__name__)

ALGORITHM = "HS256"
# Clock skew tolerated on exp/nbf/iat. Shopify's tokens live 60 s; its own libraries allow a
# few seconds of skew. Ten keeps a token at most 70 s usable.
LEEWAY_SECONDS = 10
SHOPIFY_USER_NAMESPACE = uuid.UUID("0b7f5ae2-61a5-5b6f-9d0e-7a1c55c1a0d6")
SHOP_SUFFIX = ".myshopify.com"


def shopify_user_id(sub: str) -> uuid.UUID:
    """The project user id of a Shopify user (stable, so no mapping table is needed)."""
    return uuid.uuid5(SHOPIFY_USER_NAMESPACE, f"shopify-user:{sub}")


def _origin_host(url: Any) -> str | None:
    """The host of `url` if `url` is exactly an https origin (`https://host`: no port, user,
    path, query, fragment, not even a trailing slash), else None. `dest` is the shop's origin in
    Shopify's tokens; anything more is not a token Shopify wrote."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # an unclosed IPv6 bracket, a port that is not a number
        return None
    if parts.scheme != "https" or not host or url.lower() != f"https://{host}":
        return None
    return host


def session_token_claims(token: str) -> dict[str, Any]:
    """The verified claims of a session token; AuthenticationFailed says what is wrong."""
    if not settings.SHOPIFY_API_KEY or not settings.SHOPIFY_API_SECRET:
        raise exceptions.AuthenticationFailed("Shopify session tokens are not configured on this server.")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.SHOPIFY_API_SECRET,
            algorithms=[ALGORITHM],
            audience=settings.SHOPIFY_API_KEY,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "dest", "aud", "sub", "exp", "nbf"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise exceptions.AuthenticationFailed("Session token has expired.") from exc
    except jwt.ImmatureSignatureError as exc:
        raise exceptions.AuthenticationFailed("Session token is not valid yet (nbf).") from exc
    except jwt.InvalidAudienceError as exc:
        raise exceptions.AuthenticationFailed("Session token is for another app (aud).") from exc
    except jwt.InvalidSignatureError as exc:
        raise exceptions.AuthenticationFailed("Session token signature is invalid.") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise exceptions.AuthenticationFailed(f"Session token lacks the {exc.claim!r} claim.") from exc
    except jwt.InvalidTokenError as exc:
        # PyJWT's messages name the claim or the format, never the key.
        raise exceptions.AuthenticationFailed(f"Invalid session token: {exc}.") from exc
    except RecursionError as exc:
        # A header nested `[` x 5000 deep is parsed before the signature is checked. The locked
        # PyJWT (2.15) turns that into DecodeError itself; `PyJWT>=2.8` admits releases that
        # may not, and this must stay a 401 whichever is installed.
        raise exceptions.AuthenticationFailed("Invalid session token: nested too deeply.") from exc
    shop = _origin_host(claims["dest"])
    if shop is None or not shop.endswith(SHOP_SUFFIX):
        raise exceptions.AuthenticationFailed("Session token 'dest' is not exactly https://<shop>.myshopify.com.")
    try:
        shop_domain_validator(shop)
    except DjangoValidationError as exc:
        raise exceptions.AuthenticationFailed("Session token 'dest' is not a shop domain.") from exc
    # Shopify: `iss` is the shop's admin URL, `https://{shop}/admin`, exactly.
    issuer = claims["iss"]
    if not isinstance(issuer, str) or issuer.lower() != f"https://{shop}/admin":
        raise exceptions.AuthenticationFailed("Session token 'iss' is not its 'dest' + '/admin'.")
    sub = str(claims["sub"]).strip()
    if not sub or len(sub) > 64:
        raise exceptions.AuthenticationFailed("Session token 'sub' is not a Shopify user id.")
    claims["shop"] = shop
    return claims


@transaction.atomic
def shopify_user_link(*, shop_domain: str, sub: str) -> User:
    """The project user of Shopify user `sub`, member of `shop_domain` (see the module's rule).

    Runs as the connection's login role before any scope: users, shops and memberships are
    directory tables without row level security. Raises AuthenticationFailed for an inactive
    shop."""
    shop, _ = Shop.objects.get_or_create(domain=shop_domain, defaults={"name": shop_domain})
    # Locked: two first requests of a shop would otherwise both find it without an owner.
    shop = Shop.objects.select_for_update().get(domain=shop_domain)
    if not shop.is_active:
        raise exceptions.AuthenticationFailed(f"Shop {shop_domain!r} is not active (the app was uninstalled).")
    user, _ = User.objects.get_or_create(
        id=shopify_user_id(sub), defaults={"username": f"shopify-{sub}"[:150], "password": "!"}
    )
    if not user.is_active:
        raise exceptions.AuthenticationFailed("No active user for this token.")
    if not ShopMembership.objects.filter(user=user, shop=shop).exists():
        has_owner = ShopMembership.objects.filter(shop=shop, role=MembershipRole.OWNER).exists()
        role = MembershipRole.MEMBER if has_owner else MembershipRole.OWNER
        ShopMembership.objects.create(user=user, shop=shop, role=role)
        logger.info("shopify user %s joined %s as %s", sub, shop_domain, role)
    return user


def _unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, NOT verified: only to tell a session token (a `dest` claim) from the
    project's own tokens, which every request carries. PyJWT's unverified decode cost 59 µs a
    token, this 9 µs; whichever class answers then verifies the token fully."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        # Not claims (RecursionError: nested deeper than the parser goes; `[` x 5000 from anyone
        # was a 500): not a session token, and the project's JWT class refuses it with a 401.
        return {}
    return claims if isinstance(claims, dict) else {}


class ShopifySessionTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <App Bridge session token>`; other bearer tokens pass through."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, TokenAuth] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        parts = header.split()
        if len(parts) != 2 or parts[0].lower() != self.keyword.lower():
            return None
        if "dest" not in _unverified_claims(parts[1]):
            return None  # not a session token: the project's JWT class answers
        claims = session_token_claims(parts[1])
        shop = str(claims["shop"])
        # The token names the shop: X-Shop-Domain is not needed, and one naming another shop
        # is refused (a 400 on the header, before anything is read for it).
        named = ShopHeader.of(request)
        if named.raw and named.raw.lower() != shop:
            raise exceptions.ValidationError(
                {SHOP_HEADER: [f"{named.raw!r} does not match the session token's shop {shop!r}."]}
            )
        linked = shopify_user_link(shop_domain=shop, sub=str(claims["sub"]))
        # Read the way every API request reads its user: active, with the role in the shop (of
        # an active shop) in the same statement. The tenant context then takes the shop from
        # this lookup, not from the header.
        found = active_user(uuid.UUID(str(linked.pk)), shop=shop)
        if found is None:
            raise exceptions.AuthenticationFailed("No active user for this token.")
        user, role = found
        lookup = MembershipLookup(header=ShopHeader(raw=shop, domain=shop), role=role)
        return user, TokenAuth(claims=claims, membership=lookup)

    def authenticate_header(self, request: Request) -> str:
        # The first authentication class answers WWW-Authenticate, which makes DRF send 401.
        return f'{self.keyword} realm="api"'


class ShopifySessionTokenScheme(OpenApiAuthenticationExtension):
    target_class = "shopify.session_tokens.ShopifySessionTokenAuthentication"
    name = "shopifySessionToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT (Shopify App Bridge session token; the shop comes from `dest`)",
        }
