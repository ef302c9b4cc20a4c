"""Exactly as strict as the OpenAPI document: decimals are JSON strings,
booleans JSON booleans, integers and ids JSON integers; and a day's clicks never exceed its
impressions, whichever way the row arrives."""

from __future__ import annotations

import datetime
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from drf_spectacular.generators import SchemaGenerator

from growth.factories import AdCampaignFactory, AdPerformanceFactory
from growth.models import AdCampaign, AdPerformance, SeoRanking
from tenancy.scope import atomic_scope, service_scope
from tests.fixtures.api import assert_error
from tests.fixtures.tenants import SHOP_A, Actor

CAMPAIGNS = "/api/v1/ad-campaigns/"
PERFORMANCE = "/api/v1/ad-performance/"
RANKINGS = "/api/v1/seo-rankings/"


def _count(model: Any) -> int:
    with atomic_scope(service_scope()):
        return int(model.objects.count())


def _post(actor: Actor, path: str, body: Any) -> Any:
    return actor.client.post(path, json.dumps(body), content_type="application/json")


def test_a_json_number_for_a_decimal_string_field_is_400_naming_the_field(owner_a: Actor) -> None:
    campaign = {"platform_campaign_id": "c-1", "campaign_name": "Spring"}
    for value in (12.5, 12, 0):
        body = assert_error(_post(owner_a, CAMPAIGNS, {**campaign, "daily_budget": value}), 400, field="daily_budget")
        assert "string" in body["errors"][0]["message"]
    assert _count(AdCampaign) == 0
    created = _post(owner_a, CAMPAIGNS, {**campaign, "daily_budget": "12.50"})
    assert created.status_code == 201 and created.json()["daily_budget"] == "12.50"
    parent = created.json()["id"]
    row = {"campaign_id": parent, "date": "2026-12-01", "impressions": 100, "clicks": 5, "cost": 1.5}
    body = assert_error(_post(owner_a, f"{PERFORMANCE}bulk/", [{**row, "cost": "1.50"}, row]), 400, field="cost")
    assert body["errors"][0]["index"] == 1
    assert _count(AdPerformance) == 0


@pytest.mark.parametrize("value", [0, 1, "true", "false", "1", "yes"])
def test_a_boolean_field_takes_only_json_true_or_false(owner_a: Actor, value: Any) -> None:
    ranking = {"keyword": "linen sheets", "position": 3, "tracked_at": "2026-12-01T06:00:00Z"}
    assert_error(_post(owner_a, RANKINGS, {**ranking, "featured_snippet": value}), 400, field="featured_snippet")
    assert _count(SeoRanking) == 0
    created = _post(owner_a, RANKINGS, {**ranking, "featured_snippet": True})
    assert created.status_code == 201 and created.json()["featured_snippet"] is True


def test_a_boolean_query_filter_takes_only_true_or_false(owner_a: Actor) -> None:
    for value in ("1", "0", "True", "FALSE", "yes"):
        assert_error(owner_a.client.get(f"{RANKINGS}?featured_snippet={value}"), 400, field="featured_snippet")
    assert owner_a.client.get(f"{RANKINGS}?featured_snippet=true").status_code == 200


def test_integers_and_ids_take_only_json_integers(owner_a: Actor) -> None:
    campaign = AdCampaignFactory(shop=owner_a.shop)
    row = {"campaign": campaign.pk, "date": "2026-12-01", "impressions": 100, "clicks": 5}
    for field, value in [
        ("impressions", "100"),
        ("clicks", True),
        ("clicks", 5.5),
        ("campaign", str(campaign.pk)),
        ("campaign", True),
    ]:
        assert_error(_post(owner_a, PERFORMANCE, {**row, field: value}), 400, field=field)
    assert _count(AdPerformance) == 0
    assert _post(owner_a, PERFORMANCE, row).status_code == 201


def test_the_document_says_what_the_api_takes() -> None:
    """Decimals are strings with a pattern, booleans booleans, integers integers, in every
    request body the document describes."""
    components = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    budget = components["PatchedAdCampaignRequest"]["properties"]["daily_budget"]
    assert budget["type"] == "string" and budget["format"] == "decimal" and "pattern" in budget
    assert components["SeoRankingRequest"]["properties"]["featured_snippet"]["type"] == "boolean"
    assert components["AdPerformanceRequest"]["properties"]["campaign"]["type"] == "integer"
    assert components["AdPerformanceRowRequest"]["properties"]["clicks"]["type"] == "integer"


# --- clicks <= impressions -----------------------------------------------------------------


def test_clicks_above_impressions_are_refused_by_the_api_naming_clicks(owner_a: Actor) -> None:
    campaign = AdCampaignFactory(shop=owner_a.shop)
    row = {"date": "2026-12-01", "impressions": 100, "clicks": 101}
    body = assert_error(_post(owner_a, PERFORMANCE, {"campaign": campaign.pk, **row}), 400, field="clicks")
    assert "impressions (100)" in body["errors"][0]["message"]
    batch = [
        {"campaign_id": campaign.pk, **row, "clicks": 7},
        {"campaign_id": campaign.pk, **row, "date": "2026-12-02"},
    ]
    body = assert_error(
        _post(owner_a, f"{PERFORMANCE}bulk/", batch), 400, field="clicks", code="clicks_exceed_impressions"
    )
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "clicks")]
    assert _count(AdPerformance) == 0
    # A partial update is checked against the stored other half.
    existing = AdPerformanceFactory(campaign=campaign, impressions=50, clicks=5)
    assert_error(
        owner_a.client.patch(f"{PERFORMANCE}{existing.pk}/", {"clicks": 51}, format="json"), 400, field="clicks"
    )
    assert_error(
        owner_a.client.patch(f"{PERFORMANCE}{existing.pk}/", {"impressions": 4}, format="json"), 400, field="clicks"
    )
    with atomic_scope(service_scope()):
        assert AdPerformance.objects.values_list("impressions", "clicks").get(pk=existing.pk) == (50, 5)
    # Equal is fine (every impression clicked).
    ok = owner_a.client.patch(f"{PERFORMANCE}{existing.pk}/", {"clicks": 50}, format="json")
    assert ok.status_code == 200 and ok.json()["clicks"] == 50


def test_clicks_above_impressions_are_refused_by_the_import_and_by_the_database(tmp_path: Path, owner_a: Actor) -> None:
    campaign = AdCampaignFactory(shop=owner_a.shop)
    path = tmp_path / "ads.csv"
    path.write_text(
        f"campaign_id,date,impressions,clicks\n{campaign.pk},2026-12-01,10,3\n{campaign.pk},2026-12-02,10,11\n"
    )
    with pytest.raises(CommandError) as refused:
        call_command("import_metrics", "ad_performance", str(path), shop=SHOP_A, stdout=io.StringIO())
    assert "line 3" in str(refused.value) and "clicks <= impressions" in str(refused.value), refused.value
    assert _count(AdPerformance) == 0
    # Whatever writes the row, the table refuses it, naming the constraint.
    refused_by_table = pytest.raises(IntegrityError, match="growth_adperformance_clicks_lte_impressions")
    with refused_by_table, atomic_scope(service_scope()), transaction.atomic():
        AdPerformance.objects.create(
            campaign=campaign, shop_id=campaign.shop_id, date=datetime.date(2026, 12, 3), impressions=1, clicks=2
        )
