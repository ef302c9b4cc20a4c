"""Lists through row plans (tenancy/api/rows.py) give the ModelSerializer's JSON, byte for byte."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest
from django.db import models
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.serializers import BaseSerializer

from advanced.api.urls import router as advanced_router
from advanced.models import KnowledgeDocument
from growth.api.serializers import AdPerformanceSerializer, SeoRankingSerializer, SocialAnalyticsSerializer
from growth.api.urls import router as growth_router
from growth.factories import AdCampaignFactory, AdPerformanceFactory, SeoRankingFactory
from growth.models import AdPerformance, SeoRanking
from onboarding.api.urls import router as onboarding_router
from tenancy.api.rows import row_plan
from tenancy.scope import atomic_scope, service_scope
from tests.fixtures.tables import TABLES, TableCase
from tests.fixtures.tenants import Actor, Tenant

SERIALIZERS: dict[type[models.Model], type[BaseSerializer[Any]]] = {
    viewset.queryset.model: viewset.serializer_class
    for router in (growth_router, onboarding_router, advanced_router)
    for _, viewset, _ in router.registry
}
# Rendered by their serializer: a method field (has_embedding) and an array field.
WITHOUT_PLAN = {KnowledgeDocument}


def _render(data: Any) -> bytes:
    return JSONRenderer().render(data)


def _both(model: type[models.Model], serializer_class: type[BaseSerializer[Any]]) -> tuple[bytes, bytes]:
    """(the ModelSerializer's JSON, the row plan's JSON) of every row of `model`, by id."""
    plan = row_plan(serializer_class)
    assert plan is not None
    with atomic_scope(service_scope()):
        instances = list(model._default_manager.order_by("pk"))
        rows = list(plan.select(model._default_manager.order_by("pk")))
    assert len(instances) == len(rows) > 0
    return _render(serializer_class(instances, many=True).data), _render(plan.represent(rows))


def test_hot_time_series_have_row_plans() -> None:
    for serializer_class in (AdPerformanceSerializer, SeoRankingSerializer, SocialAnalyticsSerializer):
        assert row_plan(serializer_class) is not None, serializer_class


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Chatham"])
@pytest.mark.parametrize("case", TABLES.values(), ids=list(TABLES))
def test_row_plan_renders_what_the_serializer_renders(owner_a: Actor, case: TableCase, zone: str) -> None:
    serializer_class = SERIALIZERS[case.model]
    if case.model in WITHOUT_PLAN:
        assert row_plan(serializer_class) is None
        return
    case.make(Tenant(shop=owner_a.shop, owner=owner_a.user))
    # A time zone other than UTC (with a :45 offset) shows datetimes follow the active zone.
    with timezone.override(zone):
        expected, planned = _both(case.model, serializer_class)
    assert planned == expected


def test_row_plan_renders_nulls_zeros_and_odd_values_like_the_serializer(owner_a: Actor) -> None:
    campaign = AdCampaignFactory(shop=owner_a.shop)
    day = datetime.date(2026, 1, 31)
    # No clicks or conversions: ctr, cpc, cpa and roas are NULL; large and tiny amounts.
    AdPerformanceFactory(campaign=campaign, date=day, impressions=0, clicks=0, conversions=0, cost=0, revenue=0)
    AdPerformanceFactory(
        campaign=campaign,
        date=day - datetime.timedelta(days=1),
        impressions=1,
        clicks=1,
        conversions=Decimal("0.01"),
        cost=Decimal("9999999999.99"),
        revenue=Decimal("0.01"),
    )
    AdPerformanceFactory(campaign=campaign, date=day - datetime.timedelta(days=2))
    expected, planned = _both(AdPerformance, AdPerformanceSerializer)
    assert b"null" in expected
    assert planned == expected


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Chatham"])
def test_row_plan_renders_timestamps_with_any_fraction_like_the_serializer(owner_a: Actor, zone: str) -> None:
    # PostgreSQL prints 08:00:00, 08:00:00.1 and 08:00:00.000001; DRF prints 6 digits or none.
    base = datetime.datetime(2026, 3, 1, 8, tzinfo=datetime.UTC)
    for index, micro in enumerate([0, 100_000, 120_000, 1, 999_999, 123_456]):
        tracked = base + datetime.timedelta(days=index, microseconds=micro)
        SeoRankingFactory(shop=owner_a.shop, keyword=f"kw {index}", tracked_at=tracked)
    with timezone.override(zone):
        expected, planned = _both(SeoRanking, SeoRankingSerializer)
    assert planned == expected
    if zone == "UTC":
        assert b'"2026-03-02T08:00:00.100000Z"' in planned and b'"2026-03-01T08:00:00Z"' in planned


def test_api_list_is_the_serializers_json(owner_a: Actor) -> None:
    campaign = AdCampaignFactory(shop=owner_a.shop)
    for _ in range(3):
        AdPerformanceFactory(campaign=campaign)
    AdPerformanceFactory(campaign=campaign, clicks=0, conversions=0)
    response = owner_a.client.get("/api/v1/ad-performance/?page_size=3")
    assert response.status_code == 200
    body = response.json()
    with atomic_scope(service_scope()):
        rows = list(AdPerformance.objects.order_by("-date", "-id"))
    expected = {"next": body["next"], "previous": None, "results": AdPerformanceSerializer(rows[:3], many=True).data}
    assert response.content == _render(expected)
    # The next page follows the cursor read from the plan's rows.
    rest = owner_a.client.get(body["next"]).json()["results"]
    assert [row["id"] for row in body["results"] + rest] == [row.pk for row in rows]
