"""Property-based run of the whole API from its own OpenAPI schema (schemathesis).

Every operation is called with generated input, a valid token and a shop the user owns:
no response may be a 5xx, and every response must match the schema (status code, content
type, body). The number of examples is bounded so the run fits the suite.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings

from advanced.factories import CeoBriefingFactory, ExperimentResultFactory, KnowledgeDocumentFactory
from growth.factories import AdPerformanceFactory, SeoAuditFactory, SeoRankingFactory, SocialAnalyticsFactory
from onboarding.factories import FeatureTourFactory, OnboardingProgressFactory
from tenancy.api.authentication import token_mint
from tenancy.factories import ShopFactory, ShopMembershipFactory, UserFactory

SHOP = "fuzz.myshopify.com"
EXAMPLES_PER_OPERATION = 8


@pytest.fixture
def api_schema(db: None) -> Iterator[Any]:
    schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
    from config.wsgi import application

    schema.app = application
    # The WSGI handler closes the connection after each request, which would end the test's
    # transaction; Django's own test client disconnects the same handlers.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schema
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def auth_headers(db: None) -> dict[str, str]:
    shop = ShopFactory(domain=SHOP)
    user = UserFactory(username="fuzzer")
    ShopMembershipFactory(user=user, shop=shop, role="owner")
    # A little of everything, so that list, filter and nested routes have rows to render.
    AdPerformanceFactory(campaign__shop=shop)
    SocialAnalyticsFactory(social_post__shop=shop)
    ExperimentResultFactory(experiment__shop=shop)
    SeoAuditFactory(shop=shop)
    SeoRankingFactory(shop=shop)
    KnowledgeDocumentFactory(shop=shop)
    CeoBriefingFactory(shop=shop)
    OnboardingProgressFactory(shop=shop, user=user)
    FeatureTourFactory(user=user)
    token = token_mint(user=user, ttl=datetime.timedelta(hours=1))
    return {"Authorization": f"Bearer {token}", "X-Shop-Domain": SHOP}


CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


def test_api_conforms_to_its_schema(api_schema: Any, auth_headers: dict[str, str]) -> None:
    # One hypothesis run per operation, all inside this test's transaction. (schemathesis'
    # pytest fixture loader does not run under pytest 9, so the operations are walked here.)
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            case.headers.update(auth_headers)
            case.call_and_validate(checks=CHECKS)

        try:
            run()
        except Exception as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 40, operations
    assert failures == [], "\n\n".join(failures)
