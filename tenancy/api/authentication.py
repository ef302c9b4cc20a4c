"""Bearer JWT authentication compatible with Supabase access tokens (HS256, `sub` = user id)."""

from __future__ import annotations

import datetime
import functools
import time
import uuid
from typing import Any

import jwt
from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from tenancy.models import User

from .scoping import MembershipLookup, ShopHeader, TokenAuth, active_user
from .throttling import failed_authentication_gate

ALGORITHM = "HS256"


def token_mint(*, user: User, ttl: datetime.timedelta) -> str:
    """An access token for `user`, shaped like Supabase's (sub, role, aud, iat, exp)."""
    now = timezone.now()
    claims: dict[str, Any] = {
        "sub": str(user.pk),
        "role": "authenticated",
        "email": user.email,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    if settings.JWT_AUDIENCE:
        claims["aud"] = settings.JWT_AUDIENCE
    return jwt.encode(claims, settings.JWT_SECRET, algorithm=ALGORITHM)


@functools.lru_cache(maxsize=4096)
def _verified_claims(token: str, secret: str, audience: str) -> dict[str, Any]:
    """The claims of a token whose signature, audience and times PyJWT has checked."""
    claims: dict[str, Any] = jwt.decode(
        token,
        secret,
        algorithms=[ALGORITHM],
        audience=audience or None,
        options={"require": ["sub", "exp"], "verify_aud": bool(audience)},
    )
    return claims


def token_claims(token: str) -> dict[str, Any]:
    """The verified claims of an access token, or PyJWT's InvalidTokenError.

    A client sends the same token with every request until it expires: the verification (an
    HMAC and two JSON parses, 80 us) is kept per worker process for the last 4,096 tokens, keyed
    by the token, the secret and the audience, so a changed setting never reuses an answer. A
    refused token is never kept. Expiry is checked again on every use: a kept token stops
    working the second it expires, as an unkept one does.
    """
    try:
        claims = _verified_claims(token, settings.JWT_SECRET, settings.JWT_AUDIENCE or "")
    except RecursionError as exc:
        # A header nested `[` x 5000 deep is parsed before the signature is checked, from anyone.
        # The locked PyJWT (2.15) turns that into DecodeError itself; `PyJWT>=2.8` admits
        # releases that may not, and an unauthenticated request must never be a 500.
        raise jwt.DecodeError("nested too deeply") from exc
    if int(claims["exp"]) <= time.time():
        raise jwt.ExpiredSignatureError("Signature has expired")
    return dict(claims)  # the kept dict is shared by every request that sends this token


class JWTAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>`; the token's `sub` names an active user.

    `request.auth` is a `TokenAuth`: the claims, and the caller's role in the shop the
    `X-Shop-Domain` header names, read with the user."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, TokenAuth] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() != self.keyword.lower():
            return None
        # An address past its failed-authentication rate: 429 before the token is looked at.
        failed_authentication_gate(request)
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        try:
            claims = token_claims(parts[1])
        except jwt.ExpiredSignatureError as exc:
            raise exceptions.AuthenticationFailed("Token has expired.") from exc
        except jwt.InvalidTokenError as exc:
            raise exceptions.AuthenticationFailed(f"Invalid token: {exc}.") from exc
        try:
            subject = uuid.UUID(str(claims["sub"]))
        except ValueError as exc:
            raise exceptions.AuthenticationFailed("Token subject is not a user id.") from exc
        # The membership of the shop the header names is read in the user's statement (one round
        # trip); a missing or invalid header is refused later, by the view (tenant_context).
        shop_header = ShopHeader.of(request)
        found = active_user(subject, shop=shop_header.domain)
        if found is None:
            raise exceptions.AuthenticationFailed("No active user for this token.")
        user, role = found
        return user, TokenAuth(claims=claims, membership=MembershipLookup(header=shop_header, role=role))

    def authenticate_header(self, request: Request) -> str:
        # A WWW-Authenticate header makes DRF answer 401 (not 403) to a missing token.
        return f'{self.keyword} realm="api"'


class JWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "tenancy.api.authentication.JWTAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
