"""Repeated query parameters: a list filter answers the same for its two
forms, `?x__in=a,b` (what the OpenAPI document declares) and `?x__in=a&x__in=b` (what generated
clients send); any other parameter given twice is a 400 naming it, never a silent answer for
the last value."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from drf_spectacular.generators import SchemaGenerator

from advanced.briefings.factories import CeoBriefingFactory
from advanced.experiments.factories import ExperimentFactory, ExperimentResultFactory
from advanced.knowledge.factories import KnowledgeDocumentFactory
from growth.factories import AdCampaignFactory, AdPerformanceFactory, SocialAnalyticsFactory
from onboarding.factories import FeatureTourFactory, OnboardingProgressFactory
from tests.fixtures.api import assert_error
from tests.fixtures.tenants import Actor

CAMPAIGNS = "/api/v1/ad-campaigns/"


def _ids(response: Any) -> list[Any]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_a_repeated_in_filter_answers_like_its_comma_separated_form(owner_a: Actor) -> None:
    for index, status in enumerate(["active", "active", "paused", "draft", "ended"]):
        AdCampaignFactory(shop=owner_a.shop, campaign_status=status, campaign_name=f"c{index}")
    comma = owner_a.client.get(f"{CAMPAIGNS}?campaign_status__in=active,paused")
    repeated = owner_a.client.get(f"{CAMPAIGNS}?campaign_status__in=active&campaign_status__in=paused")
    assert comma.json()["count"] == 3
    # Was `paused` alone (the last value): 1 row, silently.
    assert repeated.json()["count"] == 3
    assert _ids(repeated) == _ids(comma)
    mixed = owner_a.client.get(f"{CAMPAIGNS}?campaign_status__in=active,paused&campaign_status__in=draft")
    assert mixed.json()["count"] == 4
    # Every value of either form is validated.
    assert_error(
        owner_a.client.get(f"{CAMPAIGNS}?campaign_status__in=active&campaign_status__in=nope"),
        400,
        field="campaign_status__in",
    )


def test_a_repeated_parameter_that_takes_one_value_is_400_naming_it(owner_a: Actor) -> None:
    AdCampaignFactory(shop=owner_a.shop, campaign_status="active")
    AdCampaignFactory(shop=owner_a.shop, campaign_status="paused")
    for query, names in [
        ("campaign_status=active&campaign_status=paused", ["campaign_status"]),
        ("page=1&page=2", ["page"]),
        ("ordering=campaign_name&ordering=-id&search=a&search=b", ["ordering", "search"]),
    ]:
        body = assert_error(owner_a.client.get(f"{CAMPAIGNS}?{query}"), 400, code="repeated")
        assert sorted(e["field"] for e in body["errors"]) == names, body
        assert all("Given 2 times" in e["message"] for e in body["errors"]), body
        assert "campaign_status__in" in body["errors"][0]["message"]  # the lists it does take


# --- Every declared parameter of every GET operation -----------------------------------


@pytest.fixture
def rows(owner_a: Actor) -> dict[str, str]:
    """A row behind every path parameter of the GET operations, by path prefix."""
    shop = owner_a.shop
    performance = AdPerformanceFactory(campaign__shop=shop, campaign__campaign_status="active")
    AdCampaignFactory(shop=shop, campaign_status="paused")
    analytics = SocialAnalyticsFactory(social_post__shop=shop)
    result = ExperimentResultFactory(experiment__shop=shop)
    ExperimentFactory(shop=shop, status="draft")
    document = KnowledgeDocumentFactory(shop=shop, tags=["a", "b"])
    CeoBriefingFactory(shop=shop)
    OnboardingProgressFactory(shop=shop, user=owner_a.user)
    FeatureTourFactory(user=owner_a.user)
    return {
        "/api/v1/ad-campaigns/{id}/": str(performance.campaign_id),
        "/api/v1/social-posts/{id}/": str(analytics.social_post_id),
        "/api/v1/experiments/{id}/": str(result.experiment_id),
        "/api/v1/knowledge-documents/{id}/": str(document.id),
        "/api/v1/knowledge-documents/history/{document_key}/": str(document.document_key),
    }


def _url(path: str, rows: dict[str, str]) -> str:
    for template, value in rows.items():
        prefix = template.split("{")[0]
        if path.startswith(prefix) and "{" in path[len(prefix) :][:1]:
            return prefix + value + path[len(prefix) :].split("}", 1)[1]
    assert "{" not in path, f"no row for {path}"
    return path


def _two_values(schema: dict[str, Any]) -> tuple[str, str]:
    """Two values of a parameter's (item) schema, valid where the schema can say so."""
    if "enum" in schema:
        values = [str(v) for v in schema["enum"] if v not in (None, "")]
        return values[0], values[-1]
    kind, form = schema.get("type"), schema.get("format")
    if kind == "boolean":
        return "true", "false"
    if kind in ("integer", "number"):
        low = int(schema.get("minimum", 1))
        return str(low), str(low + 1)
    if form == "date":
        return "2025-01-01", "2025-01-02"
    if form == "date-time":
        return "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z"
    return "a", "b"


def test_every_declared_parameter_takes_both_list_forms_or_refuses_repetition(
    owner_a: Actor, rows: dict[str, str]
) -> None:
    document = SchemaGenerator().get_schema(request=None, public=True)
    lists = singles = 0
    for path, operations in document["paths"].items():
        operation = operations.get("get")
        if operation is None:
            continue
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "query":
                continue
            url = _url(path, rows)
            name, schema = parameter["name"], parameter["schema"]
            if schema.get("type") == "array":
                # Declared one way, for every list: comma-separated (style form, explode false).
                assert (parameter.get("style"), parameter.get("explode")) == ("form", False), (path, name)
                # `x__in` takes `x`'s values, and says so (its items are `x`'s enum).
                assert not name.endswith("__in") or "enum" in schema["items"], (path, name, schema)
                first, second = _two_values(schema["items"])
                comma = owner_a.client.get(f"{url}?{urlencode({name: f'{first},{second}'})}")
                repeated = owner_a.client.get(f"{url}?{urlencode([(name, first), (name, second)])}")
                assert comma.status_code == 200, (path, name, comma.content)
                assert (repeated.status_code, repeated.json()) == (200, comma.json()), (path, name)
                lists += 1
            else:
                first, second = _two_values(schema)
                response = owner_a.client.get(f"{url}?{urlencode([(name, first), (name, second)])}")
                body = assert_error(response, 400, field=name, code="repeated")
                assert [e["field"] for e in body["errors"]] == [name], (path, body)
                singles += 1
    # Eight list filters (`..__in`, tags, tags_any); every other parameter takes one value.
    assert lists == 8, lists
    assert singles >= 80, singles
