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
import re
from collections.abc import Iterator
from dataclasses import dataclass
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

from advanced.briefings.factories import CeoBriefingFactory
from advanced.experiments.factories import ExperimentResultFactory
from advanced.knowledge.factories import KnowledgeDocumentFactory
from growth.factories import AdPerformanceFactory, SeoAuditFactory, SeoRankingFactory, SocialAnalyticsFactory
from onboarding.factories import FeatureTourFactory, OnboardingProgressFactory
from tenancy.api.authentication import token_mint
from tenancy.factories import ShopFactory, ShopMembershipFactory, UserFactory

SHOP = "fuzz.myshopify.com"
EXAMPLES_PER_OPERATION = int(os.environ.get("FUZZ_EXAMPLES", "5"))


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


@pytest.fixture(autouse=True)
def failed_authentications_unthrottled(settings: Any) -> None:
    # `ignored_auth` sends hundreds of bad tokens from one address, which the failed-authentication
    # throttle answers with 429 after 20 (tests/api/test_auth_and_contract.py tests that); here
    # every bad token must reach authentication and be a 401.
    rest = settings.REST_FRAMEWORK
    settings.REST_FRAMEWORK = {
        **rest,
        "DEFAULT_THROTTLE_RATES": {**rest["DEFAULT_THROTTLE_RATES"], "auth_failure": "1000000/minute"},
    }


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


@dataclass(frozen=True)
class Rule:
    """A refusal the schema cannot express: schemathesis' positive data (valid by the schema)
    rejected for a documented reason (docs/api.md, "Tests that hold the contract"). A response
    is explained when every error it lists matches a rule (by error code, or by field)."""

    why: str
    codes: frozenset[str] = frozenset()
    fields: frozenset[str] = frozenset()


def _rule(why: str, *, codes: tuple[str, ...] = (), fields: tuple[str, ...] = ()) -> Rule:
    return Rule(why, frozenset(codes), frozenset(fields))


BUSINESS_RULES = [
    _rule(
        "References name a row of the caller's shop (a parent id in a body, bulk row or filter)",
        codes=("does_not_exist", "invalid_choice"),
        fields=("campaign", "social_post", "experiment", "campaign_id", "social_post_id", "experiment_id"),
    ),
    _rule("Ranges are in order: an end before its start", codes=("range_order",)),
    _rule(
        "Decimals sent as strings keep the column's bounds and precision (a pattern cannot say <= 1)",
        codes=("max_value", "min_value", "max_digits", "max_decimal_places", "max_whole_digits"),
    ),
    _rule(
        "JSON columns have shapes of their own (variants, tour steps, briefing metrics and insights)",
        fields=("variants", "steps", "key_metrics", "insights"),
    ),
    _rule("Workflows move only along their transitions", codes=("invalid_transition",)),
    _rule(
        "Values that must agree with each other: a status and its timestamps, a tour's current step "
        "and its steps, tracked_on and tracked_at, a briefing's period, conversions within "
        "participants and the three CUPED aggregates together, a bulk batch's natural keys",
        fields=(
            "status",
            "current_step",
            "tracked_on",
            "period_end",
            "end_date",
            "completed_at",
            "started_at",
            "dismissed_at",
            "last_shown_at",
            "conversions",
            "covariate_sum",
            "covariate_sum_squares",
            "covariate_cross_sum",
        ),
        codes=("duplicate_key",),
    ),
    _rule(
        "A day's clicks do not exceed its impressions (CHECK growth_adperformance_clicks_lte_impressions)",
        codes=("clicks_exceed_impressions",),
    ),
    _rule(
        "Unique keys: a second row with the same key (a campaign's platform id, a step, a tour, a briefing period)",
        codes=("unique",),
    ),
    _rule("A search takes a text query or a vector: one of the two optional fields", codes=("required",)),
    _rule(
        "Vectors: exactly 1,536 numbers whose float4 norm is finite and not zero",
        codes=("dimensions", "zero", "out_of_range"),
        fields=("embedding", "vector", "embedding_model"),
    ),
    _rule("A cursor is opaque: only the API's own next/previous links are valid", codes=("invalid_cursor",)),
    _rule("Steps are the canonical onboarding steps", fields=("step_key",)),
]


def _errors(response: Any) -> list[tuple[str, str]]:
    """(field, code) of each error in an error body ("" for the whole request)."""
    try:
        body = response.json()
    except ValueError:
        return []
    if not isinstance(body, dict) or "errors" not in body:
        return []
    found = [(str(e.get("field") or ""), str(e.get("code"))) for e in body["errors"] if isinstance(e, dict)]
    return found or [("", str(body.get("code")))]


def _trimmed_to_fit(failure: Failure, case: schemathesis.Case, response: Any) -> bool:
    """A text over its maxLength only by surrounding whitespace, stored trimmed (DRF trims text
    before it checks the length; JSON Schema cannot say so)."""
    match = re.search(r"violates `maxLength` at \S*/properties/(\w+)", failure.message)
    if type(failure).__name__ != "AcceptedNegativeData" or match is None or not isinstance(case.body, dict):
        return False
    sent, stored = case.body.get(match.group(1)), response.json().get(match.group(1))
    return isinstance(sent, str) and isinstance(stored, str) and stored == sent.strip() and len(stored) < len(sent)


def _explained(failure: Failure, case: schemathesis.Case, response: Any) -> bool:
    if _trimmed_to_fit(failure, case, response):
        return True
    if type(failure).__name__ != "RejectedPositiveData" or response.status_code not in (400, 404, 409):
        return False
    errors = _errors(response)
    return bool(errors) and all(
        any(code in rule.codes or field.split(".")[0] in rule.fields for rule in BUSINESS_RULES)
        for field, code in errors
    )


def _fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str], failures: dict[tuple[str, ...], str]) -> None:
    """One hypothesis run over `operation` in `mode`; every check's unexplained failures recorded."""
    label = f"{operation.method.upper()} {operation.path}"

    @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        response = case.call(headers=headers)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (FailureGroup, Failure) as exc:
            group = exc.exceptions if isinstance(exc, FailureGroup) else [exc]
            for failure in group:
                if not _explained(failure, case, response):
                    key = (label, type(failure).__name__, f"{response.status_code} {_errors(response)}")
                    failures.setdefault(key, f"{failure}\n{case.as_curl_command()}"[:1500])

    try:
        run()
    except Unsatisfiable:
        # Nothing about this operation can be made invalid (e.g. a GET without parameters).
        assert mode is GenerationMode.NEGATIVE, label


def test_api_conforms_to_its_schema(api_schema: Any, auth_headers: dict[str, str]) -> None:
    failures: dict[tuple[str, ...], str] = {}
    operations = 0
    for result in api_schema.get_all_operations():
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(result.ok(), mode, auth_headers, failures)
    assert operations >= 40, operations
    report = "\n\n".join(f"== {op} [{kind}] {errors}\n{text}" for (op, kind, errors), text in sorted(failures.items()))
    assert failures == {}, report
