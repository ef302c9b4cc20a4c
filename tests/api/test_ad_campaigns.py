"""ad-campaigns and ad-performance: CRUD, isolation, validation, nested route and bulk ingest."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from growth.factories import AdCampaignFactory, AdPerformanceFactory
from growth.models import AdCampaign, AdPerformance
from tenancy.scope import atomic_scope, service_scope
from tests.fixtures.api import assert_error
from tests.fixtures.tenants import SHOP_A, Actor

pytestmark = pytest.mark.django_db

CAMPAIGNS = "/api/v1/ad-campaigns/"
PERFORMANCE = "/api/v1/ad-performance/"


def _count(model: type, **filters: object) -> int:
    with atomic_scope(service_scope()):
        return model.objects.filter(**filters).count()


def test_create_campaign_takes_shop_from_scope_not_body(owner_a: Actor) -> None:
    payload = {
        "platform_campaign_id": "123",
        "campaign_name": "Brand",
        "campaign_status": "active",
        "start_date": "2026-01-01",
        "end_date": "2026-02-01",
    }
    response = owner_a.client.post(CAMPAIGNS, payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["shop_domain"] == SHOP_A
    assert body["created_by"] == str(owner_a.user.pk)
    with atomic_scope(service_scope()):
        stored = AdCampaign.objects.get(pk=body["id"])
        assert (stored.shop_id, stored.campaign_name, stored.created_by) == (SHOP_A, "Brand", str(owner_a.user.pk))


def test_shop_domain_in_body_is_ignored_for_the_scopes_shop(owner_a: Actor, owner_b: Actor) -> None:
    payload = {"platform_campaign_id": "1", "campaign_name": "X", "shop_domain": owner_b.shop.domain}
    response = owner_a.client.post(CAMPAIGNS, payload, format="json")
    assert response.status_code == 201
    assert response.json()["shop_domain"] == SHOP_A
    assert _count(AdCampaign, shop_id=SHOP_A) == 1
    assert _count(AdCampaign, shop_id=owner_b.shop.domain) == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"campaign_status": "flying"}, "campaign_status"),
        ({"daily_budget": "-1"}, "daily_budget"),
        ({"daily_budget": "abc"}, "daily_budget"),
        ({"start_date": "2026-02-01", "end_date": "2026-01-01"}, "end_date"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_invalid_campaign_is_refused_and_nothing_written(owner_a: Actor, payload: dict, field: str) -> None:
    base = {"platform_campaign_id": "9", "campaign_name": "X"}
    assert_error(owner_a.client.post(CAMPAIGNS, {**base, **payload}, format="json"), 400, field=field)
    assert _count(AdCampaign) == 0


def test_duplicate_natural_key_is_400_not_500(owner_a: Actor) -> None:
    payload = {"platform_campaign_id": "dup", "campaign_name": "X"}
    assert owner_a.client.post(CAMPAIGNS, payload, format="json").status_code == 201
    body = assert_error(owner_a.client.post(CAMPAIGNS, payload, format="json"), 400, code="unique")
    assert "growth_adcampaign_platform_id_uniq" in body["errors"][0]["message"]
    assert _count(AdCampaign) == 1


def test_other_shops_campaign_is_404(owner_a: Actor, owner_b: Actor) -> None:
    theirs = AdCampaignFactory(shop=owner_b.shop)
    for method in ("get", "patch", "delete"):
        response = getattr(owner_a.client, method)(f"{CAMPAIGNS}{theirs.pk}/", {}, format="json")
        assert_error(response, 404, code="not_found")
    assert _count(AdCampaign, pk=theirs.pk) == 1


def test_non_member_gets_403_and_missing_header_400_and_no_token_401(
    owner_a: Actor, outsider: APIClient, client: Client
) -> None:
    body = assert_error(outsider.get(CAMPAIGNS), 403)
    assert SHOP_A in body["detail"]
    owner_a.client.credentials(HTTP_AUTHORIZATION=owner_a.client._credentials["HTTP_AUTHORIZATION"])
    assert_error(owner_a.client.get(CAMPAIGNS), 400, code="shop_header_missing")
    assert_error(client.get(CAMPAIGNS, HTTP_X_SHOP_DOMAIN=SHOP_A), 401)


def test_viewer_reads_but_cannot_write(viewer_a: Actor) -> None:
    AdCampaignFactory(shop=viewer_a.shop)
    assert viewer_a.client.get(CAMPAIGNS).status_code == 200
    assert_error(viewer_a.client.post(CAMPAIGNS, {"platform_campaign_id": "1", "campaign_name": "X"}), 403)


def test_list_is_paginated_filtered_and_query_count_is_flat(owner_a: Actor, owner_b: Actor) -> None:
    for n in range(3):
        AdCampaignFactory(shop=owner_a.shop, campaign_status="active", platform_campaign_id=f"a{n}")
    AdCampaignFactory(shop=owner_a.shop, campaign_status="paused", platform_campaign_id="p")
    AdCampaignFactory(shop=owner_b.shop, campaign_status="active")
    with CaptureQueriesContext(connection) as small:
        body = owner_a.client.get(CAMPAIGNS, {"campaign_status": "active"}).json()
    assert body["count"] == 3 and len(body["results"]) == 3
    assert {r["shop_domain"] for r in body["results"]} == {SHOP_A}
    for n in range(10):
        AdCampaignFactory(shop=owner_a.shop, campaign_status="active", platform_campaign_id=f"b{n}")
    with CaptureQueriesContext(connection) as large:
        assert owner_a.client.get(CAMPAIGNS, {"campaign_status": "active"}).json()["count"] == 13
    assert len(large) == len(small) <= 12


def test_performance_ratios_are_read_only_and_generated(owner_a: Actor) -> None:
    campaign = AdCampaignFactory(shop=owner_a.shop)
    payload = {
        "campaign": campaign.pk,
        "date": "2026-03-01",
        "impressions": 1000,
        "clicks": 50,
        "conversions": "5",
        "cost": "25.00",
        "revenue": "100.00",
    }
    response = owner_a.client.post(PERFORMANCE, payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert Decimal(body["ctr"]) == Decimal("0.05") and Decimal(body["roas"]) == Decimal("4")
    assert Decimal(body["cpc"]) == Decimal("0.5") and Decimal(body["cpa"]) == Decimal("5")
    # Sending the ratios (or the audit columns) changes nothing: they are computed by the database.
    patched = owner_a.client.patch(
        f"{PERFORMANCE}{body['id']}/",
        {"ctr": "0.9", "roas": "99", "cpc": "7", "cpa": "7", "created_by": "someone-else"},
        format="json",
    )
    assert patched.status_code == 200, patched.content
    with atomic_scope(service_scope()):
        stored = AdPerformance.objects.get(pk=body["id"])
    assert (stored.ctr, stored.roas, stored.cpc, stored.cpa) == (
        Decimal("0.05"),
        Decimal("4"),
        Decimal("0.5"),
        Decimal("5"),
    )
    assert stored.created_by == str(owner_a.user.pk)
    assert Decimal(patched.json()["roas"]) == Decimal("4")


def test_performance_cannot_point_at_another_shops_campaign(owner_a: Actor, owner_b: Actor) -> None:
    theirs = AdCampaignFactory(shop=owner_b.shop)
    payload = {"campaign": theirs.pk, "date": "2026-03-01"}
    assert_error(owner_a.client.post(PERFORMANCE, payload, format="json"), 400, field="campaign")
    assert _count(AdPerformance) == 0


def test_nested_campaign_performance_newest_first(owner_a: Actor) -> None:
    campaign = AdCampaignFactory(shop=owner_a.shop)
    for days in range(3):
        AdPerformanceFactory(campaign=campaign, date=datetime.date(2026, 1, 1) + datetime.timedelta(days=days))
    body = owner_a.client.get(f"{CAMPAIGNS}{campaign.pk}/performance/").json()
    assert [r["date"] for r in body["results"]] == ["2026-01-03", "2026-01-02", "2026-01-01"]
    assert "next" in body and "previous" in body


def _rows(campaign_id: int, days: int, clicks: int = 10) -> list[dict]:
    start = datetime.date(2026, 1, 1)
    return [
        {
            "campaign_id": campaign_id,
            "date": str(start + datetime.timedelta(days=d)),
            "impressions": 100,
            "clicks": clicks,
            "conversions": "1",
            "cost": "5.00",
            "revenue": "20.00",
        }
        for d in range(days)
    ]


def test_bulk_ingest_creates_then_updates_idempotently(owner_a: Actor) -> None:
    campaign = AdCampaignFactory(shop=owner_a.shop)
    first = owner_a.client.post(f"{PERFORMANCE}bulk/", _rows(campaign.pk, 30), format="json")
    assert first.status_code == 200, first.content
    assert first.json() == {"created": 30, "updated": 0, "rows": 30}
    again = owner_a.client.post(f"{PERFORMANCE}bulk/", _rows(campaign.pk, 30, clicks=20), format="json")
    assert again.json() == {"created": 0, "updated": 30, "rows": 30}
    with atomic_scope(service_scope()):
        assert AdPerformance.objects.count() == 30
        assert set(AdPerformance.objects.values_list("clicks", flat=True)) == {20}
        assert set(AdPerformance.objects.values_list("shop_id", flat=True)) == {SHOP_A}


def test_bulk_with_one_bad_row_writes_nothing_and_names_each_bad_row(owner_a: Actor, owner_b: Actor) -> None:
    campaign = AdCampaignFactory(shop=owner_a.shop)
    theirs = AdCampaignFactory(shop=owner_b.shop)
    rows = _rows(campaign.pk, 5)
    rows[1]["clicks"] = -3
    rows[3]["campaign_id"] = theirs.pk
    rows[4]["date"] = rows[0]["date"]
    body = assert_error(owner_a.client.post(f"{PERFORMANCE}bulk/", rows, format="json"), 400)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "clicks"), (3, "campaign_id"), (4, None)]
    assert _count(AdPerformance) == 0


@pytest.mark.parametrize(
    ("payload", "code"),
    [({"not": "a list"}, "not_a_list"), ("rows", "not_a_list"), (None, "not_a_list"), ([], "batch_size")],
)
def test_bulk_refuses_non_list_and_empty_batches(owner_a: Actor, payload: object, code: str) -> None:
    body = assert_error(owner_a.client.post(f"{PERFORMANCE}bulk/", payload, format="json"), 400, code=code)
    assert body["errors"][0]["field"] is None


def test_bulk_over_the_row_limit_names_the_limit_and_writes_nothing(owner_a: Actor, settings: object) -> None:
    settings.API_BULK_MAX_ROWS = 5
    campaign = AdCampaignFactory(shop=owner_a.shop)
    body = assert_error(
        owner_a.client.post(f"{PERFORMANCE}bulk/", _rows(campaign.pk, 6), format="json"), 400, code="batch_size"
    )
    assert body["errors"][0]["message"] == "A batch holds 1 to 5 rows; got 6."
    assert _count(AdPerformance) == 0
    assert owner_a.client.post(f"{PERFORMANCE}bulk/", _rows(campaign.pk, 5), format="json").status_code == 200


def test_bulk_rows_that_are_not_objects_are_named_by_index(owner_a: Actor) -> None:
    campaign = AdCampaignFactory(shop=owner_a.shop)
    rows: list[object] = [*_rows(campaign.pk, 2), 7, "row", None, [1, 2]]
    body = assert_error(owner_a.client.post(f"{PERFORMANCE}bulk/", rows, format="json"), 400)
    assert sorted({e["index"] for e in body["errors"]}) == [2, 3, 4, 5]
    assert _count(AdPerformance) == 0
