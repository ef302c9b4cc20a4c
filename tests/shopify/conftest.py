"""Two shops with rows in every table of a shop's data (several monthly partitions and the
DEFAULT one included), signed webhooks and session tokens."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from django.db import connection
from django.test import Client

from advanced.knowledge.factories import KnowledgeDocumentFactory
from growth.factories import (
    AdCampaignFactory,
    AdPerformanceFactory,
    SeoRankingFactory,
    SocialAnalyticsFactory,
    SocialPostFactory,
)
from onboarding.factories import OnboardingProgressFactory
from shopify.registry import shop_data_plan
from tenancy.factories import ShopMembershipFactory, UserFactory
from tenancy.scope import atomic_scope, service_scope
from tests.fixtures.tables import TABLES
from tests.fixtures.tenants import Tenant

API_KEY = "test-app-client-id"
API_SECRET = "shpss_test-secret-0123456789abcdef"  # what a leak would look like in a log

# A month far ahead has no partition: its rows land in each table's DEFAULT partition.
DEFAULT_PARTITION_DAY = datetime.date(2090, 1, 15)


@pytest.fixture(autouse=True)
def shopify_settings(settings: Any) -> None:
    settings.SHOPIFY_API_KEY = API_KEY
    settings.SHOPIFY_API_SECRET = API_SECRET


def fetch(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall())


def shop_rows(domain: str, tables: list[str] | None = None) -> dict[str, list[str]]:
    """Every row (as JSON text, by id) of `domain` in every table of a shop's data (or in
    `tables`), as service_role sees them."""
    names = tables if tables is not None else [plan.table for plan in shop_data_plan()]
    with atomic_scope(service_scope()):
        return {
            table: [
                str(text)
                for (text,) in fetch(
                    f"SELECT row_to_json(t)::text FROM {table} t WHERE shop_domain = %s ORDER BY id", [domain]
                )
            ]
            for table in names
        }


def partitions_holding(table: str, domain: str) -> set[str]:
    with atomic_scope(service_scope()):
        return {
            str(name)
            for (name,) in fetch(
                f"SELECT DISTINCT tableoid::regclass::text FROM {table} WHERE shop_domain = %s", [domain]
            )
        }


def fill_shop(tenant: Tenant) -> None:
    """One row of every registered tenant table (the table catalog of tests/fixtures/tables.py,
    which the isolation tests keep complete), plus rows in two more months and in the DEFAULT
    partition of each partitioned table, a second user's onboarding rows, and a chain of
    knowledge versions."""
    for case in TABLES.values():
        case.make(tenant)
    domain = tenant.shop.domain
    today = datetime.date.today()
    last_month = (today.replace(day=1) - datetime.timedelta(days=1)).replace(day=10)
    campaign = AdCampaignFactory(shop=tenant.shop, platform_campaign_id=f"more-{domain}")
    post = SocialPostFactory(shop=tenant.shop, platform_post_id=f"more-{domain}")
    for day in (today, last_month, DEFAULT_PARTITION_DAY):
        AdPerformanceFactory(campaign=campaign, date=day)
        SeoRankingFactory(shop=tenant.shop, keyword=f"kw {day}", tracked_at=_at(day))
        SocialAnalyticsFactory(social_post=post, measured_at=_at(day))
    second = UserFactory(username=f"second-{domain}")
    ShopMembershipFactory(user=second, shop=tenant.shop, role="member")
    OnboardingProgressFactory(shop=tenant.shop, user=second)
    first = KnowledgeDocumentFactory(shop=tenant.shop, document_key=f"doc-{domain}", is_current=False)
    KnowledgeDocumentFactory(
        shop=tenant.shop, document_key=f"doc-{domain}", version=2, previous_version=first, is_current=True
    )


def _at(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(12), tzinfo=datetime.UTC)


@pytest.fixture
def filled(tenant_a: Tenant, tenant_b: Tenant) -> tuple[Tenant, Tenant]:
    fill_shop(tenant_a)
    fill_shop(tenant_b)
    return tenant_a, tenant_b


# --- Webhooks -----------------------------------------------------------------------------


def sign(body: bytes, secret: str = API_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def post_webhook(
    client: Client,
    topic: str,
    shop: str,
    payload: Any = None,
    *,
    body: bytes | None = None,
    webhook_id: str | None = None,
    signature: str | None = None,
) -> Any:
    raw = body if body is not None else json.dumps(payload if payload is not None else {"shop_domain": shop}).encode()
    headers = {
        "HTTP_X_SHOPIFY_TOPIC": topic,
        "HTTP_X_SHOPIFY_SHOP_DOMAIN": shop,
        "HTTP_X_SHOPIFY_WEBHOOK_ID": webhook_id or str(uuid.uuid4()),
        "HTTP_X_SHOPIFY_API_VERSION": "2025-10",
        "HTTP_X_SHOPIFY_TRIGGERED_AT": "2026-12-01T10:00:00.000Z",
    }
    if signature != "":
        headers["HTTP_X_SHOPIFY_HMAC_SHA256"] = signature if signature is not None else sign(raw)
    return client.post("/webhooks/shopify/", data=raw, content_type="application/json", **headers)


# --- Session tokens -----------------------------------------------------------------------


def session_token(
    shop: str,
    sub: str = "42",
    *,
    secret: str = API_SECRET,
    aud: str = API_KEY,
    now: float | None = None,
    ttl: int = 60,
    **overrides: Any,
) -> str:
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": f"https://{shop}/admin",
        "dest": f"https://{shop}",
        "aud": aud,
        "sub": sub,
        "exp": issued + ttl,
        "nbf": issued,
        "iat": issued,
        "jti": str(uuid.uuid4()),
        "sid": "session-id",
    }
    claims.update(overrides)
    claims = {key: value for key, value in claims.items() if value is not None}
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.fixture
def token_client() -> Callable[..., Any]:
    from rest_framework.test import APIClient

    def make(token: str, shop_header: str | None = None) -> APIClient:
        client = APIClient()
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        if shop_header is not None:
            headers["HTTP_X_SHOP_DOMAIN"] = shop_header
        client.credentials(**headers)
        return client

    return make
