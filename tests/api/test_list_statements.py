"""Lists through kept statements (tenancy/api/statements.py): the same JSON as the ORM path,
each shop its own rows through one statement, and nothing kept that names a request's values."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count, F
from django.test.utils import CaptureQueriesContext

from advanced.api.urls import router as advanced_router
from growth.api.urls import router as growth_router
from growth.factories import AdCampaignFactory, AdPerformanceFactory
from growth.models import AdCampaign, AdPerformance
from onboarding.api.urls import router as onboarding_router
from tenancy.api import statements
from tenancy.api.rows import row_plan
from tenancy.api.statements import compile_values, is_bare
from tests.fixtures.tables import TABLES, TableCase
from tests.fixtures.tenants import Actor, Tenant

# {model: its list's path}, for every list resource whose rows go through a row plan.
PLANNED_LISTS: dict[Any, str] = {
    viewset.queryset.model: f"/api/v1/{prefix}/"
    for router in (growth_router, onboarding_router, advanced_router)
    for prefix, viewset, _ in router.registry
    if row_plan(viewset.serializer_class) is not None
}
CASES = [case for case in TABLES.values() if case.model in PLANNED_LISTS]


@pytest.fixture(autouse=True)
def no_kept_statements() -> Iterator[None]:
    """Each test starts with nothing kept (the cache lives as long as the process)."""
    statements._statements.clear()
    statements._counts.clear()
    yield
    statements._statements.clear()
    statements._counts.clear()


def _through_the_orm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statements, "is_bare", lambda queryset: False)


def test_every_planned_list_resource_is_covered() -> None:
    # Ten of the twelve tables list through a plan (knowledge documents and CEO briefings
    # render through their serializers); a resource losing its plan would drop out silently.
    assert len(CASES) >= 10, sorted(case.table for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.table for case in CASES])
def test_a_kept_statement_answers_each_shop_its_own_rows_as_the_orm_would(
    owner_a: Actor, owner_b: Actor, case: TableCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = PLANNED_LISTS[case.model]
    made = {actor.shop.domain: case.make(Tenant(shop=actor.shop, owner=actor.user)).pk for actor in (owner_a, owner_b)}

    kept: dict[str, bytes] = {}
    page_sql: set[str] = set()
    for actor in (owner_a, owner_b, owner_a):
        with CaptureQueriesContext(connection) as queries:
            response = actor.client.get(path)
        assert response.status_code == 200, response.content
        kept.setdefault(actor.shop.domain, response.content)
        assert response.content == kept[actor.shop.domain]  # the third request: a kept statement
        assert [row["id"] for row in response.json()["results"]] == [made[actor.shop.domain]]
        page_sql |= {
            q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT") and " LIMIT " in q["sql"]
        }
    assert len(statements._statements) >= 1
    # One statement served both shops: row level security chose the rows.
    assert len(page_sql) == 1, page_sql

    _through_the_orm(monkeypatch)
    for actor in (owner_a, owner_b):
        assert actor.client.get(path).content == kept[actor.shop.domain]


def test_a_kept_statement_is_run_without_building_the_query_again(
    owner_a: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = AdCampaignFactory(shop=owner_a.shop)
    AdPerformanceFactory(campaign=campaign)
    first = owner_a.client.get("/api/v1/ad-campaigns/")
    assert first.status_code == 200

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a kept shape was compiled again")

    monkeypatch.setattr(statements, "compile_values", fail)
    monkeypatch.setattr(statements, "counted", fail)
    again = owner_a.client.get("/api/v1/ad-campaigns/")
    assert again.status_code == 200
    assert again.content == first.content
    assert again.json()["count"] == 1


def test_filtered_lists_and_cursor_pages_go_through_the_orm_and_are_not_kept(owner_a: Actor) -> None:
    campaign = AdCampaignFactory(shop=owner_a.shop)
    other = AdCampaignFactory(shop=owner_a.shop)
    for _ in range(3):
        AdPerformanceFactory(campaign=campaign)
    AdPerformanceFactory(campaign=other)

    filtered = owner_a.client.get(f"/api/v1/ad-performance/?campaign={campaign.pk}&page_size=2")
    assert filtered.status_code == 200
    assert statements._statements == {}
    assert statements._counts == {}
    assert {row["campaign"] for row in filtered.json()["results"]} == {campaign.pk}

    following = owner_a.client.get(filtered.json()["next"])
    assert following.status_code == 200
    assert [row["campaign"] for row in following.json()["results"]] == [campaign.pk]
    assert statements._statements == {}

    first = owner_a.client.get("/api/v1/ad-performance/?page_size=2")
    assert len(first.json()["results"]) == 2
    assert len(statements._statements) == 1
    second = owner_a.client.get(first.json()["next"])  # a cursor's position is a parameter
    assert len(second.json()["results"]) == 2
    assert len(statements._statements) == 1


def test_the_ordering_a_client_asks_for_is_its_own_statement(owner_a: Actor) -> None:
    for name in ("b", "c", "a"):
        AdCampaignFactory(shop=owner_a.shop, campaign_name=name)
    ascending = owner_a.client.get("/api/v1/ad-campaigns/?ordering=campaign_name").json()["results"]
    descending = owner_a.client.get("/api/v1/ad-campaigns/?ordering=-campaign_name").json()["results"]
    assert [row["campaign_name"] for row in ascending] == ["a", "b", "c"]
    assert [row["campaign_name"] for row in descending] == ["c", "b", "a"]
    assert len(statements._statements) == 2


def test_pages_past_the_first_and_the_last_page_count_through_the_kept_count(owner_a: Actor, owner_b: Actor) -> None:
    for index in range(5):
        AdCampaignFactory(shop=owner_a.shop, campaign_name=f"a{index}")
    AdCampaignFactory(shop=owner_b.shop, campaign_name="b0")

    pages = [owner_a.client.get(f"/api/v1/ad-campaigns/?page_size=2&page={n}").json() for n in (1, 2, 3)]
    assert [row["campaign_name"] for page in pages for row in page["results"]] == [f"a{i}" for i in range(5)]
    assert [page["count"] for page in pages] == [5, 5, 5]
    assert pages[2]["next"] is None and pages[0]["previous"] is None
    assert owner_a.client.get("/api/v1/ad-campaigns/?page_size=2&page=4").status_code == 404
    # One count statement for the model; shop B counts its own row through it.
    assert list(statements._counts.values()) == ['SELECT COUNT(*) AS "__count" FROM "ad_campaigns"']
    assert owner_b.client.get("/api/v1/ad-campaigns/?page_size=2").json()["count"] == 1


@pytest.mark.parametrize(
    ("build", "bare"),
    [
        (lambda: AdCampaign.objects.all(), True),
        (lambda: AdCampaign.objects.order_by("-campaign_name", "id"), True),
        (lambda: AdCampaign.objects.filter(campaign_name="x"), False),
        (lambda: AdCampaign.objects.filter(end_date__isnull=True), False),
        (lambda: AdCampaign.objects.annotate(days=Count("performance")), False),
        (lambda: AdCampaign.objects.alias(name=F("campaign_name")), False),
        (lambda: AdPerformance.objects.select_related("campaign"), False),
        (lambda: AdPerformance.objects.order_by("campaign__campaign_name"), True),
        (lambda: AdCampaign.objects.distinct(), False),
        (lambda: AdCampaign.objects.all()[:5], False),
        (lambda: AdCampaign.objects.values("id"), False),
        (lambda: AdCampaign.objects.extra(select={"one": "1"}), False),
        (lambda: AdCampaign.objects.select_for_update(), False),
        (lambda: AdCampaign.objects.prefetch_related("performance"), False),
        (lambda: AdCampaign.objects.none(), False),
    ],
)
def test_only_the_models_rows_in_an_order_are_bare(build: Any, bare: bool) -> None:
    assert is_bare(build()) is bare


def test_a_statement_that_names_a_value_is_never_kept() -> None:
    assert compile_values(AdCampaign.objects.filter(campaign_name="x").values("id")) is None
    assert compile_values(AdCampaign.objects.filter(end_date__gt="2026-01-01").values("id")[:3]) is None
    kept = compile_values(AdCampaign.objects.order_by("id").values("id", "campaign_name")[:3])
    assert kept is not None
    assert kept.names == ("id", "campaign_name")
    assert kept.sql.endswith("LIMIT 3")


def test_the_kept_shapes_are_bounded_and_an_evicted_one_is_compiled_again(
    owner_a: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statements, "MAX_STATEMENTS", 2)
    for name in ("b", "c", "a"):
        AdCampaignFactory(shop=owner_a.shop, campaign_name=name)
    orderings = ("campaign_name", "-campaign_name", "id")
    first = [owner_a.client.get(f"/api/v1/ad-campaigns/?ordering={o}").json()["results"] for o in orderings]
    assert len(statements._statements) == 2  # the oldest shape went
    again = owner_a.client.get("/api/v1/ad-campaigns/?ordering=campaign_name").json()["results"]
    assert again == first[0]
    assert [row["campaign_name"] for row in again] == ["a", "b", "c"]
    assert len(statements._statements) == 2
