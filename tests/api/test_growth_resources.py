"""seo-audits, seo-rankings, social-posts and social-analytics: CRUD, isolation, validation,
filters, cursor pages, the nested analytics route, bulk ingest and flat query counts."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, models
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from growth.factories import SeoAuditFactory, SeoRankingFactory, SocialAnalyticsFactory, SocialPostFactory
from growth.models import SeoAudit, SeoRanking, SocialAnalytics, SocialPost
from tenancy.models import Shop
from tenancy.partitions import parent_index_name
from tenancy.scope import atomic_scope, service_scope
from tests.fixtures.api import assert_error
from tests.fixtures.tenants import SHOP_A, Actor

pytestmark = pytest.mark.django_db

AUDITS = "/api/v1/seo-audits/"
RANKINGS = "/api/v1/seo-rankings/"
POSTS = "/api/v1/social-posts/"
ANALYTICS = "/api/v1/social-analytics/"
AUDIT_FIELDS = {"created_by", "created_at", "updated_at"}
T0 = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


def _count(model: type[models.Model], **filters: object) -> int:
    with atomic_scope(service_scope()):
        return model.objects.filter(**filters).count()


def _stored(model: type[models.Model], pk: int) -> Any:
    with atomic_scope(service_scope()):
        return model.objects.get(pk=pk)


def _iso(moment: datetime.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _analytics_row(shop: Shop, **kwargs: Any) -> SocialAnalytics:
    return SocialAnalyticsFactory(social_post=SocialPostFactory(shop=shop), **kwargs)


# One row of each resource for `shop`, with the rows it depends on (for the shared tests).
MAKERS: dict[str, Callable[[Shop], Any]] = {
    AUDITS: lambda shop: SeoAuditFactory(shop=shop),
    RANKINGS: lambda shop: SeoRankingFactory(shop=shop),
    POSTS: lambda shop: SocialAnalyticsFactory(social_post=SocialPostFactory(shop=shop)).social_post,
    ANALYTICS: lambda shop: _analytics_row(shop),
}
MODELS: dict[str, type[models.Model]] = {
    AUDITS: SeoAudit,
    RANKINGS: SeoRanking,
    POSTS: SocialPost,
    ANALYTICS: SocialAnalytics,
}
RESOURCES = list(MAKERS)


# --- shared: isolation, authentication, flat query counts ------------------------------


@pytest.mark.parametrize("url", RESOURCES)
def test_other_shops_row_is_404_for_every_method(owner_a: Actor, owner_b: Actor, url: str) -> None:
    theirs = MAKERS[url](owner_b.shop)
    for method in ("get", "put", "patch", "delete"):
        response = getattr(owner_a.client, method)(f"{url}{theirs.pk}/", {}, format="json")
        assert_error(response, 404, code="not_found")
    assert _count(MODELS[url], pk=theirs.pk) == 1
    # ... and it is not listed either.
    assert owner_a.client.get(url).json()["results"] == []


@pytest.mark.parametrize("url", RESOURCES)
def test_non_member_403_no_token_401_viewer_cannot_write(
    owner_a: Actor, outsider: APIClient, client: Client, viewer_a: Actor, url: str
) -> None:
    body = assert_error(outsider.get(url), 403)
    assert SHOP_A in body["detail"]
    assert_error(client.get(url, HTTP_X_SHOP_DOMAIN=SHOP_A), 401)
    assert viewer_a.client.get(url).status_code == 200
    assert_error(viewer_a.client.post(url, {}, format="json"), 403)
    assert _count(MODELS[url]) == 0


@pytest.mark.parametrize("url", RESOURCES)
def test_list_query_count_does_not_grow_with_rows(owner_a: Actor, owner_b: Actor, url: str) -> None:
    MAKERS[url](owner_b.shop)
    for _ in range(2):
        MAKERS[url](owner_a.shop)
    with CaptureQueriesContext(connection) as small:
        assert len(owner_a.client.get(url).json()["results"]) == 2
    for _ in range(8):
        MAKERS[url](owner_a.shop)
    with CaptureQueriesContext(connection) as large:
        body = owner_a.client.get(url).json()
    assert len(body["results"]) == 10
    assert {row["shop_domain"] for row in body["results"]} == {SHOP_A}
    assert len(large) == len(small) <= 12, [q["sql"] for q in large.captured_queries]


# --- seo-audits -------------------------------------------------------------------------


def _audit_payload(**overrides: Any) -> dict[str, Any]:
    return {
        "crawled_at": "2026-03-01T06:00:00Z",
        "pages_crawled": 250,
        "avg_lcp": "2100.50",
        "avg_fid": "45.00",
        "avg_cls": "0.0850",
        "technical_score": 88,
        "content_score": 75,
        "performance_score": 64,
        "critical_issues": 1,
        "high_priority_issues": 7,
        **overrides,
    }


def test_audit_create_read_update_delete(owner_a: Actor) -> None:
    response = owner_a.client.post(AUDITS, _audit_payload(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "shop_domain", *_audit_payload(), *AUDIT_FIELDS}
    assert (body["shop_domain"], body["avg_lcp"], body["technical_score"]) == (SHOP_A, "2100.50", 88)
    assert body["created_by"] == str(owner_a.user.pk)
    stored = _stored(SeoAudit, body["id"])
    assert (stored.shop_id, stored.avg_cls, stored.crawled_at) == (
        SHOP_A,
        Decimal("0.0850"),
        datetime.datetime(2026, 3, 1, 6, tzinfo=datetime.UTC),
    )

    url = f"{AUDITS}{body['id']}/"
    assert owner_a.client.get(url).json() == body
    patched = owner_a.client.patch(url, {"technical_score": 91}, format="json")
    assert patched.status_code == 200 and patched.json()["technical_score"] == 91
    replaced = owner_a.client.put(url, _audit_payload(critical_issues=0), format="json")
    assert replaced.status_code == 200 and replaced.json()["technical_score"] == 88
    assert (_stored(SeoAudit, body["id"]).critical_issues, _stored(SeoAudit, body["id"]).technical_score) == (0, 88)
    assert owner_a.client.delete(url).status_code == 204
    assert _count(SeoAudit) == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"technical_score": 101}, "technical_score"),
        ({"performance_score": -1}, "performance_score"),
        ({"pages_crawled": -5}, "pages_crawled"),
        ({"avg_lcp": "fast"}, "avg_lcp"),
        ({"avg_cls": "0.123456"}, "avg_cls"),
        ({"critical_issues": "many"}, "critical_issues"),
        ({"crawled_at": "yesterday"}, "crawled_at"),
        ({"crawled_at": None}, "crawled_at"),
        ({"lighthouse": 99}, "lighthouse"),
    ],
)
def test_invalid_audit_is_400_naming_the_field_and_writes_nothing(
    owner_a: Actor, overrides: dict[str, Any], field: str
) -> None:
    assert_error(owner_a.client.post(AUDITS, _audit_payload(**overrides), format="json"), 400, field=field)
    assert _count(SeoAudit) == 0


def test_audit_at_the_same_moment_twice_is_400_not_500(owner_a: Actor) -> None:
    assert owner_a.client.post(AUDITS, _audit_payload(), format="json").status_code == 201
    body = assert_error(owner_a.client.post(AUDITS, _audit_payload(), format="json"), 400, code="unique")
    assert "seo_audits_shop_crawled_idx" in body["errors"][0]["message"]
    assert _count(SeoAudit) == 1


def test_audit_filters_ordering_and_cursor_pages(owner_a: Actor) -> None:
    for day, score in enumerate([40, 60, 80, 95]):
        SeoAuditFactory(shop=owner_a.shop, crawled_at=T0 + datetime.timedelta(days=day), technical_score=score)

    def crawled(params: dict[str, Any]) -> list[str]:
        response = owner_a.client.get(AUDITS, params)
        assert response.status_code == 200, response.content
        return [row["crawled_at"][:10] for row in response.json()["results"]]

    assert crawled({}) == ["2026-03-04", "2026-03-03", "2026-03-02", "2026-03-01"]
    assert crawled({"ordering": "crawled_at"}) == ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]
    assert crawled({"crawled_from": "2026-03-02T00:00:00Z", "crawled_to": "2026-03-03T12:00:00Z"}) == [
        "2026-03-03",
        "2026-03-02",
    ]
    assert crawled({"min_technical_score": 60, "max_technical_score": 80}) == ["2026-03-03", "2026-03-02"]
    # An offset Python accepts but PostgreSQL does not (beyond +-15:59) is the same instant in UTC.
    assert crawled({"crawled_from": "2026-03-03T12:00:00+23:00"}) == ["2026-03-04", "2026-03-03"]
    assert crawled({"crawled_to": "2026-03-01T12:00:00+00:30"}) == []

    first = owner_a.client.get(AUDITS, {"page_size": 3}).json()
    assert set(first) == {"next", "previous", "results"} and len(first["results"]) == 3
    second = owner_a.client.get(first["next"]).json()
    assert [row["crawled_at"][:10] for row in second["results"]] == ["2026-03-01"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"crawled_from": "2026-03-05T00:00:00Z", "crawled_to": "2026-03-01T00:00:00Z"}, "crawled_to"),
        ({"min_content_score": 90, "max_content_score": 10}, "max_content_score"),
        ({"crawled_from": "soon"}, "crawled_from"),
        ({"min_technical_score": "high"}, "min_technical_score"),
    ],
)
def test_audit_bad_filters_are_400(owner_a: Actor, params: dict[str, Any], field: str) -> None:
    assert_error(owner_a.client.get(AUDITS, params), 400, field=field)


@pytest.mark.parametrize("ordering", ["pages_crawled", "-shop_domain", "crawled_at;DROP", "\u00e9"])
def test_an_unknown_ordering_is_ignored_for_the_default_order(owner_a: Actor, ordering: str) -> None:
    # DRF's OrderingFilter drops terms the resource does not offer; the page is then in the
    # default order (newest crawl first), not in the unknown column's nor in insertion order.
    days = [2, 4, 1, 3]
    for day, pages in zip(days, (40, 10, 30, 20), strict=True):
        SeoAuditFactory(shop=owner_a.shop, crawled_at=T0 + datetime.timedelta(days=day), pages_crawled=pages)
    response = owner_a.client.get(AUDITS, {"ordering": ordering})
    assert response.status_code == 200, response.content
    crawled = [row["crawled_at"] for row in response.json()["results"]]
    assert crawled == [_iso(T0 + datetime.timedelta(days=day)) for day in (4, 3, 2, 1)]


def _audit_rows(count: int, pages: int = 100) -> list[dict[str, Any]]:
    return [
        _audit_payload(crawled_at=_iso(T0 + datetime.timedelta(days=day)), pages_crawled=pages) for day in range(count)
    ]


def test_audit_bulk_creates_then_updates_idempotently(owner_a: Actor, owner_b: Actor) -> None:
    # Another shop's audit at the same moment is a different natural key (shop is part of it).
    SeoAuditFactory(shop=owner_b.shop, crawled_at=T0)
    first = owner_a.client.post(f"{AUDITS}bulk/", _audit_rows(5), format="json")
    assert first.status_code == 200, first.content
    assert first.json() == {"created": 5, "updated": 0, "rows": 5}
    again = owner_a.client.post(f"{AUDITS}bulk/", _audit_rows(5), format="json")
    assert again.json() == {"created": 0, "updated": 5, "rows": 5}
    changed = owner_a.client.post(f"{AUDITS}bulk/", _audit_rows(5, pages=321), format="json")
    assert changed.json() == {"created": 0, "updated": 5, "rows": 5}
    with atomic_scope(service_scope()):
        mine = SeoAudit.objects.filter(shop_id=SHOP_A)
        assert mine.count() == 5
        assert set(mine.values_list("pages_crawled", flat=True)) == {321}
        assert set(mine.values_list("created_by", flat=True)) == {str(owner_a.user.pk)}
        assert SeoAudit.objects.filter(shop_id=owner_b.shop.domain).count() == 1


def test_audit_bulk_with_bad_rows_writes_nothing_and_names_each(owner_a: Actor) -> None:
    rows = _audit_rows(5)
    rows[1]["technical_score"] = 150
    rows[2]["pages"] = 3
    rows[3]["crawled_at"] = rows[0]["crawled_at"]
    body = assert_error(owner_a.client.post(f"{AUDITS}bulk/", rows, format="json"), 400)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "technical_score"), (2, "pages"), (3, None)]
    assert body["errors"][2]["code"] == "duplicate_key"
    assert _count(SeoAudit) == 0


# --- seo-rankings -----------------------------------------------------------------------


def _ranking_payload(**overrides: Any) -> dict[str, Any]:
    return {
        "keyword": "organic cotton t-shirt",
        "position": 4,
        "url": "https://alpha.myshopify.com/products/tee",
        "search_volume": 1200,
        "search_engine": "google",
        "location": "US",
        "featured_snippet": False,
        # 23:30 in New York is already the next day in UTC.
        "tracked_at": "2026-03-01T23:30:00-05:00",
        **overrides,
    }


def test_ranking_tracked_on_defaults_to_the_utc_date_of_tracked_at(owner_a: Actor) -> None:
    response = owner_a.client.post(RANKINGS, _ranking_payload(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "shop_domain", *_ranking_payload(), "tracked_on", *AUDIT_FIELDS}
    assert (body["tracked_at"], body["tracked_on"]) == ("2026-03-02T04:30:00Z", "2026-03-02")
    assert _stored(SeoRanking, body["id"]).tracked_on == datetime.date(2026, 3, 2)


def test_ranking_tracked_on_when_given_must_be_that_date(owner_a: Actor) -> None:
    ok = owner_a.client.post(RANKINGS, _ranking_payload(tracked_on="2026-03-02"), format="json")
    assert ok.status_code == 201, ok.content
    local_day = _ranking_payload(keyword="other", tracked_on="2026-03-01")
    body = assert_error(owner_a.client.post(RANKINGS, local_day, format="json"), 400, field="tracked_on")
    assert "2026-03-02" in body["errors"][0]["message"]
    assert _count(SeoRanking) == 1


def test_ranking_update_keeps_tracked_on_in_step(owner_a: Actor) -> None:
    created = owner_a.client.post(RANKINGS, _ranking_payload(), format="json").json()
    url = f"{RANKINGS}{created['id']}/"
    moved = owner_a.client.patch(url, {"tracked_at": "2026-03-10T08:00:00Z"}, format="json")
    assert moved.status_code == 200 and moved.json()["tracked_on"] == "2026-03-10"
    assert_error(owner_a.client.patch(url, {"tracked_on": "2026-03-11"}, format="json"), 400, field="tracked_on")
    same = owner_a.client.patch(url, {"tracked_on": "2026-03-10", "position": 2}, format="json")
    assert same.status_code == 200 and same.json()["position"] == 2
    stored = _stored(SeoRanking, created["id"])
    assert (stored.tracked_on, stored.position) == (datetime.date(2026, 3, 10), 2)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"position": 0}, "position"),
        ({"position": "first"}, "position"),
        ({"search_volume": -1}, "search_volume"),
        ({"search_engine": "altavista"}, "search_engine"),
        ({"keyword": ""}, "keyword"),
        ({"url": "not a url"}, "url"),
        ({"featured_snippet": "maybe"}, "featured_snippet"),
        ({"tracked_at": "2026-13-01T00:00:00Z"}, "tracked_at"),
        ({"tracked_on": "tomorrow"}, "tracked_on"),
        ({"rank": 3}, "rank"),
    ],
)
def test_invalid_ranking_is_400_naming_the_field_and_writes_nothing(
    owner_a: Actor, overrides: dict[str, Any], field: str
) -> None:
    assert_error(owner_a.client.post(RANKINGS, _ranking_payload(**overrides), format="json"), 400, field=field)
    assert _count(SeoRanking) == 0


def test_ranking_same_keyword_engine_location_and_day_is_400(owner_a: Actor) -> None:
    assert owner_a.client.post(RANKINGS, _ranking_payload(), format="json").status_code == 201
    later_same_day = _ranking_payload(tracked_at="2026-03-02T18:00:00Z", position=9)
    assert_error(owner_a.client.post(RANKINGS, later_same_day, format="json"), 400, code="unique")
    other_location = _ranking_payload(location="GB")
    assert owner_a.client.post(RANKINGS, other_location, format="json").status_code == 201
    assert _count(SeoRanking) == 2


def test_ranking_filters_and_ordering(owner_a: Actor) -> None:
    def make(keyword: str, position: int, days: int, **kwargs: Any) -> None:
        SeoRankingFactory(
            shop=owner_a.shop,
            keyword=keyword,
            position=position,
            tracked_at=T0 + datetime.timedelta(days=days),
            **kwargs,
        )

    make("vegan leather wallet", 1, 0, featured_snippet=True)
    make("vegan leather wallet", 8, 1, featured_snippet=False)
    make("leather belt", 10, 2, featured_snippet=False)
    make("leather belt", 11, 3, featured_snippet=False, search_engine="bing")
    make("ceramic mug", 57, 4, featured_snippet=False, location="GB")

    def positions(params: dict[str, Any]) -> list[int]:
        response = owner_a.client.get(RANKINGS, params)
        assert response.status_code == 200, response.content
        return [row["position"] for row in response.json()["results"]]

    assert positions({}) == [57, 11, 10, 8, 1]
    assert positions({"position_lte": 10}) == [10, 8, 1]
    assert positions({"position_lte": 10, "ordering": "position"}) == [1, 8, 10]
    assert positions({"ordering": "-position"}) == [57, 11, 10, 8, 1]
    assert positions({"keyword": "leather belt"}) == [11, 10]
    assert positions({"keyword__icontains": "LEATHER"}) == [11, 10, 8, 1]
    assert positions({"search_engine": "bing"}) == [11]
    assert positions({"location": "GB"}) == [57]
    assert positions({"featured_snippet": "true"}) == [1]
    assert positions({"tracked_on__gte": "2026-03-02", "tracked_on__lte": "2026-03-03"}) == [10, 8]
    assert positions({"tracked_at__gte": "2026-03-04T00:00:00Z"}) == [57, 11]
    assert_error(owner_a.client.get(RANKINGS, {"search_engine": "altavista"}), 400, field="search_engine")
    assert_error(owner_a.client.get(RANKINGS, {"position_lte": "top"}), 400, field="position_lte")
    wrong_order = {"tracked_on__gte": "2026-03-03", "tracked_on__lte": "2026-03-01"}
    assert_error(owner_a.client.get(RANKINGS, wrong_order), 400, field="tracked_on__lte")


def test_position_lte_can_be_served_by_the_partial_index(owner_a: Actor) -> None:
    # The filter's SQL is a constant `position <= 10`, which the partial index's predicate
    # (position <= 100) implies; with sequential scans off the planner must use that index.
    SeoRankingFactory(shop=owner_a.shop, position=3)
    with atomic_scope(service_scope()), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = SeoRanking.objects.filter(position__lte=10).only("id").explain()
        # SET LOCAL outlives the savepoint; put the planner back for the rest of the test.
        cursor.execute("SET LOCAL enable_seqscan = on")
    # The table is partitioned: the plan scans each partition's copy of the index.
    used = {
        parent_index_name(name)
        for name in re.findall(r"(?:Index (?:Only )?Scan(?: Backward)? using|Bitmap Index Scan on) (\w+)", plan)
    }
    assert used == {"seo_rankings_top100_idx"}, plan


def _ranking_rows(count: int, position: int = 5) -> list[dict[str, Any]]:
    # No tracked_on: the bulk rows derive it as the single endpoint does.
    return [
        {"keyword": f"keyword {n}", "position": position, "tracked_at": _iso(T0 + datetime.timedelta(hours=n))}
        for n in range(count)
    ]


def test_ranking_bulk_creates_then_updates_idempotently(owner_a: Actor) -> None:
    first = owner_a.client.post(f"{RANKINGS}bulk/", _ranking_rows(6), format="json")
    assert first.status_code == 200, first.content
    assert first.json() == {"created": 6, "updated": 0, "rows": 6}
    again = owner_a.client.post(f"{RANKINGS}bulk/", _ranking_rows(6), format="json")
    assert again.json() == {"created": 0, "updated": 6, "rows": 6}
    # A later measurement the same UTC day replaces the day's row (the daily natural key).
    later = [{**row, "tracked_at": "2026-03-01T23:59:00Z"} for row in _ranking_rows(6, position=2)]
    assert owner_a.client.post(f"{RANKINGS}bulk/", later, format="json").json()["updated"] == 6
    with atomic_scope(service_scope()):
        stored = SeoRanking.objects.all()
        assert stored.count() == 6
        assert set(stored.values_list("position", "tracked_on", "search_engine", "location")) == {
            (2, datetime.date(2026, 3, 1), "google", "")
        }


def test_ranking_bulk_with_bad_rows_writes_nothing_and_names_each(owner_a: Actor) -> None:
    rows = _ranking_rows(5)
    rows[1]["position"] = 0
    rows[2]["tracked_on"] = "2026-02-28"
    # Same keyword and day as row 0; the engine spelled out is the default one: same key.
    rows[3] = {**rows[0], "search_engine": "google", "tracked_at": "2026-03-01T20:00:00Z"}
    rows[4]["search_engine"] = "altavista"
    body = assert_error(owner_a.client.post(f"{RANKINGS}bulk/", rows, format="json"), 400)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "position"),
        (2, "tracked_on"),
        (3, None),
        (4, "search_engine"),
    ]
    assert _count(SeoRanking) == 0


# --- social-posts -----------------------------------------------------------------------


def _post_payload(**overrides: Any) -> dict[str, Any]:
    return {
        "platform": "instagram",
        "platform_post_id": "C0ffee123",
        "post_url": "https://instagram.example/p/C0ffee123",
        "caption": "New drop",
        "published_at": "2026-03-01T10:00:00Z",
        **overrides,
    }


def test_post_create_read_update_delete(owner_a: Actor) -> None:
    response = owner_a.client.post(POSTS, _post_payload(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "shop_domain", *_post_payload(), *AUDIT_FIELDS}
    assert (body["shop_domain"], body["platform"], body["published_at"]) == (
        SHOP_A,
        "instagram",
        "2026-03-01T10:00:00Z",
    )
    stored = _stored(SocialPost, body["id"])
    assert (stored.shop_id, stored.platform_post_id, stored.created_by) == (SHOP_A, "C0ffee123", str(owner_a.user.pk))

    url = f"{POSTS}{body['id']}/"
    assert owner_a.client.get(url).json() == body
    # No analytics yet: a wrong platform may still be corrected.
    fixed = owner_a.client.patch(url, {"platform": "tiktok", "caption": "Drop"}, format="json")
    assert fixed.status_code == 200 and fixed.json()["platform"] == "tiktok"
    assert _stored(SocialPost, body["id"]).caption == "Drop"
    SocialAnalyticsFactory(social_post=_stored(SocialPost, body["id"]))
    assert owner_a.client.delete(url).status_code == 204
    assert (_count(SocialPost), _count(SocialAnalytics)) == (0, 0)


def test_post_platform_is_fixed_once_it_has_analytics(owner_a: Actor) -> None:
    post = SocialPostFactory(shop=owner_a.shop, platform="instagram")
    SocialAnalyticsFactory(social_post=post)
    url = f"{POSTS}{post.pk}/"
    assert_error(owner_a.client.patch(url, {"platform": "facebook"}, format="json"), 400, field="platform")
    assert _stored(SocialPost, post.pk).platform == "instagram"
    assert owner_a.client.patch(url, {"platform": "instagram", "caption": "ok"}, format="json").status_code == 200


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"platform": "myspace"}, "platform"),
        ({"platform": None}, "platform"),
        ({"platform_post_id": ""}, "platform_post_id"),
        ({"post_url": "instagram/p/1"}, "post_url"),
        ({"published_at": "last week"}, "published_at"),
        ({"likes": 3}, "likes"),
    ],
)
def test_invalid_post_is_400_naming_the_field_and_writes_nothing(
    owner_a: Actor, overrides: dict[str, Any], field: str
) -> None:
    assert_error(owner_a.client.post(POSTS, _post_payload(**overrides), format="json"), 400, field=field)
    assert _count(SocialPost) == 0


def test_post_duplicate_platform_id_is_400(owner_a: Actor) -> None:
    assert owner_a.client.post(POSTS, _post_payload(), format="json").status_code == 201
    assert_error(owner_a.client.post(POSTS, _post_payload(), format="json"), 400, code="unique")
    assert _count(SocialPost) == 1


def test_post_list_is_page_numbered_and_filtered(owner_a: Actor) -> None:
    for day, platform in enumerate(["instagram", "tiktok", "instagram", "facebook"]):
        SocialPostFactory(shop=owner_a.shop, platform=platform, published_at=T0 + datetime.timedelta(days=day))
    body = owner_a.client.get(POSTS, {"page_size": 3}).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 4 and len(body["results"]) == 3
    assert [r["published_at"][:10] for r in body["results"]] == ["2026-03-04", "2026-03-03", "2026-03-02"]
    instagram = owner_a.client.get(POSTS, {"platform": "instagram"}).json()
    assert [r["published_at"][:10] for r in instagram["results"]] == ["2026-03-03", "2026-03-01"]
    window = owner_a.client.get(
        POSTS, {"published_from": "2026-03-02T00:00:00Z", "published_to": "2026-03-03T23:59:59Z"}
    ).json()
    assert window["count"] == 2
    wrong = {"published_from": "2026-03-03T00:00:00Z", "published_to": "2026-03-01T00:00:00Z"}
    assert_error(owner_a.client.get(POSTS, wrong), 400, field="published_to")
    assert_error(owner_a.client.get(POSTS, {"platform": "myspace"}), 400, field="platform")


def test_nested_post_analytics_newest_first_with_cursor_pages(owner_a: Actor) -> None:
    post = SocialPostFactory(shop=owner_a.shop)
    other = SocialPostFactory(shop=owner_a.shop)
    for hours in range(3):
        SocialAnalyticsFactory(social_post=post, measured_at=T0 + datetime.timedelta(hours=hours))
    SocialAnalyticsFactory(social_post=other, measured_at=T0 + datetime.timedelta(days=9))
    body = owner_a.client.get(f"{POSTS}{post.pk}/analytics/", {"page_size": 2}).json()
    assert set(body) == {"next", "previous", "results"}
    assert [r["measured_at"] for r in body["results"]] == ["2026-03-01T14:00:00Z", "2026-03-01T13:00:00Z"]
    assert {r["social_post"] for r in body["results"]} == {post.pk}
    rest = owner_a.client.get(body["next"]).json()
    assert [r["measured_at"] for r in rest["results"]] == ["2026-03-01T12:00:00Z"]


def test_nested_analytics_of_another_shops_post_is_404(owner_a: Actor, owner_b: Actor) -> None:
    theirs = _analytics_row(owner_b.shop).social_post
    assert_error(owner_a.client.get(f"{POSTS}{theirs.pk}/analytics/"), 404, code="not_found")


# --- social-analytics -------------------------------------------------------------------


def _analytics_payload(post_id: int, **overrides: Any) -> dict[str, Any]:
    return {
        "social_post": post_id,
        "measured_at": "2026-03-02T00:00:00Z",
        "views": 900,
        "likes": 10,
        "comments": 5,
        "shares": 5,
        "reach": 200,
        "impressions": 1000,
        **overrides,
    }


def test_analytics_platform_comes_from_the_post_and_rate_is_generated(owner_a: Actor) -> None:
    post = SocialPostFactory(shop=owner_a.shop, platform="tiktok")
    # platform and engagement_rate are read-only: values in the body are ignored.
    payload = _analytics_payload(post.pk, platform="youtube", engagement_rate="0.99")
    response = owner_a.client.post(ANALYTICS, payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {
        "id",
        "shop_domain",
        *_analytics_payload(post.pk),
        "platform",
        "engagement_rate",
        *AUDIT_FIELDS,
    }
    assert (body["platform"], Decimal(body["engagement_rate"]), body["social_post"]) == (
        "tiktok",
        Decimal("0.1"),
        post.pk,
    )
    stored = _stored(SocialAnalytics, body["id"])
    assert (stored.shop_id, stored.platform, stored.social_post_id) == (SHOP_A, "tiktok", post.pk)

    url = f"{ANALYTICS}{body['id']}/"
    assert owner_a.client.get(url).json() == body
    # No reach: the rate is NULL, not a division error.
    assert owner_a.client.patch(url, {"reach": 0}, format="json").json()["engagement_rate"] is None
    # Moving the snapshot to another post takes that post's platform.
    other = SocialPostFactory(shop=owner_a.shop, platform="facebook")
    moved = owner_a.client.patch(url, {"social_post": other.pk}, format="json")
    assert moved.status_code == 200, moved.content
    assert (moved.json()["platform"], _stored(SocialAnalytics, body["id"]).platform) == ("facebook", "facebook")
    assert owner_a.client.delete(url).status_code == 204
    assert _count(SocialAnalytics) == 0


def test_analytics_cannot_point_at_another_shops_post(owner_a: Actor, owner_b: Actor) -> None:
    theirs = SocialPostFactory(shop=owner_b.shop)
    response = owner_a.client.post(ANALYTICS, _analytics_payload(theirs.pk), format="json")
    assert_error(response, 400, field="social_post", code="does_not_exist")
    mine = _analytics_row(owner_a.shop)
    patch = owner_a.client.patch(f"{ANALYTICS}{mine.pk}/", {"social_post": theirs.pk}, format="json")
    assert_error(patch, 400, field="social_post")
    assert _count(SocialAnalytics) == 1
    assert _stored(SocialAnalytics, mine.pk).social_post_id == mine.social_post_id


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"social_post": 987654321}, "social_post"),
        ({"social_post": "first"}, "social_post"),
        ({"social_post": None}, "social_post"),
        ({"likes": -1}, "likes"),
        ({"reach": 2**31}, "reach"),
        ({"views": "lots"}, "views"),
        ({"measured_at": "2026-02-30T00:00:00Z"}, "measured_at"),
        ({"saves": 4}, "saves"),
    ],
)
def test_invalid_analytics_is_400_naming_the_field_and_writes_nothing(
    owner_a: Actor, overrides: dict[str, Any], field: str
) -> None:
    post = SocialPostFactory(shop=owner_a.shop)
    response = owner_a.client.post(ANALYTICS, _analytics_payload(post.pk, **overrides), format="json")
    assert_error(response, 400, field=field)
    assert _count(SocialAnalytics) == 0


def test_analytics_filters_and_ordering(owner_a: Actor) -> None:
    insta = SocialPostFactory(shop=owner_a.shop, platform="instagram")
    tiktok = SocialPostFactory(shop=owner_a.shop, platform="tiktok")
    # (post, hours after T0, likes per 100 reach; reach 0 means no rate)
    for post, hours, likes, reach in [(insta, 0, 5, 100), (insta, 1, 20, 100), (tiktok, 2, 10, 100), (tiktok, 3, 0, 0)]:
        SocialAnalyticsFactory(
            social_post=post,
            measured_at=T0 + datetime.timedelta(hours=hours),
            likes=likes,
            comments=0,
            shares=0,
            reach=reach,
        )

    def measured(params: dict[str, Any]) -> list[int]:
        response = owner_a.client.get(ANALYTICS, params)
        assert response.status_code == 200, response.content
        return [int(row["measured_at"][11:13]) - 12 for row in response.json()["results"]]

    assert measured({}) == [3, 2, 1, 0]
    assert measured({"ordering": "measured_at"}) == [0, 1, 2, 3]
    assert measured({"social_post": insta.pk}) == [1, 0]
    assert measured({"platform": "tiktok"}) == [3, 2]
    assert measured({"measured_from": "2026-03-01T13:00:00Z", "measured_to": "2026-03-01T14:00:00Z"}) == [2, 1]
    assert measured({"min_engagement_rate": "0.1"}) == [2, 1]
    assert measured({"ordering": "-engagement_rate", "min_engagement_rate": "0"}) == [1, 2, 0]
    wrong = {"measured_from": "2026-03-02T00:00:00Z", "measured_to": "2026-03-01T00:00:00Z"}
    assert_error(owner_a.client.get(ANALYTICS, wrong), 400, field="measured_to")
    assert_error(owner_a.client.get(ANALYTICS, {"min_engagement_rate": "high"}), 400, field="min_engagement_rate")


def test_analytics_cursor_pages_ordered_by_engagement_rate_skip_rows_without_a_rate(owner_a: Actor) -> None:
    post = SocialPostFactory(shop=owner_a.shop)
    # reach 0 means no rate (NULL): a cursor cannot page past it, so the ranking leaves it out.
    for hours, (likes, reach) in enumerate([(30, 100), (10, 0), (10, 100), (20, 0), (20, 100), (40, 100)]):
        SocialAnalyticsFactory(
            social_post=post,
            measured_at=T0 + datetime.timedelta(hours=hours),
            likes=likes,
            comments=0,
            shares=0,
            reach=reach,
        )
    for ordering, expected in [
        ("-engagement_rate", ["0.4", "0.3", "0.2", "0.1"]),
        ("engagement_rate", ["0.1", "0.2", "0.3", "0.4"]),
    ]:
        seen: list[Decimal] = []
        url: str | None = f"{ANALYTICS}?ordering={ordering}&page_size=3"
        while url:
            response = owner_a.client.get(url)
            assert response.status_code == 200, response.content
            seen.extend(Decimal(row["engagement_rate"]) for row in response.json()["results"])
            url = response.json()["next"]
        assert seen == [Decimal(rate) for rate in expected]
    # Any other order lists every snapshot.
    assert len(owner_a.client.get(ANALYTICS).json()["results"]) == 6


def _analytics_rows(post_ids: list[int], snapshots: int, likes: int = 10) -> list[dict[str, Any]]:
    return [
        {
            "social_post_id": post_id,
            "measured_at": _iso(T0 + datetime.timedelta(hours=hour)),
            "views": 500,
            "likes": likes,
            "comments": 2,
            "shares": 1,
            "reach": 400,
            "impressions": 800,
        }
        for post_id in post_ids
        for hour in range(snapshots)
    ]


def test_analytics_bulk_creates_then_updates_idempotently_with_the_posts_platform(owner_a: Actor) -> None:
    insta = SocialPostFactory(shop=owner_a.shop, platform="instagram")
    tiktok = SocialPostFactory(shop=owner_a.shop, platform="tiktok")
    rows = _analytics_rows([insta.pk, tiktok.pk], 4)
    first = owner_a.client.post(f"{ANALYTICS}bulk/", rows, format="json")
    assert first.status_code == 200, first.content
    assert first.json() == {"created": 8, "updated": 0, "rows": 8}
    again = owner_a.client.post(f"{ANALYTICS}bulk/", rows, format="json")
    assert again.json() == {"created": 0, "updated": 8, "rows": 8}
    more_likes = owner_a.client.post(
        f"{ANALYTICS}bulk/", _analytics_rows([insta.pk, tiktok.pk], 4, likes=37), format="json"
    )
    assert more_likes.json() == {"created": 0, "updated": 8, "rows": 8}
    with atomic_scope(service_scope()):
        stored = SocialAnalytics.objects.all()
        assert stored.count() == 8
        assert set(stored.values_list("social_post_id", "platform")) == {(insta.pk, "instagram"), (tiktok.pk, "tiktok")}
        assert set(stored.values_list("likes", "engagement_rate")) == {(37, Decimal("0.1"))}
        assert set(stored.values_list("shop_id", flat=True)) == {SHOP_A}


def test_analytics_bulk_with_bad_rows_writes_nothing_and_names_each(owner_a: Actor, owner_b: Actor) -> None:
    mine = SocialPostFactory(shop=owner_a.shop)
    theirs = SocialPostFactory(shop=owner_b.shop)
    rows = _analytics_rows([mine.pk], 6)
    rows[1]["social_post_id"] = theirs.pk
    rows[2]["likes"] = -4
    rows[3]["platform"] = "x"
    rows[4]["social_post_id"] = 987654321
    rows[5]["measured_at"] = rows[0]["measured_at"]
    body = assert_error(owner_a.client.post(f"{ANALYTICS}bulk/", rows, format="json"), 400)
    assert [(e["index"], e["field"], e["code"]) for e in body["errors"]] == [
        (1, "social_post_id", "does_not_exist"),
        (2, "likes", "min_value"),
        (3, "platform", "unknown_field"),
        (4, "social_post_id", "does_not_exist"),
        (5, None, "duplicate_key"),
    ]
    assert _count(SocialAnalytics) == 0


def test_analytics_bulk_reads_the_posts_once_per_batch(owner_a: Actor) -> None:
    def queries(posts: int) -> int:
        ids = [SocialPostFactory(shop=owner_a.shop).pk for _ in range(posts)]
        with CaptureQueriesContext(connection) as captured:
            response = owner_a.client.post(f"{ANALYTICS}bulk/", _analytics_rows(ids, 2), format="json")
        assert response.json()["created"] == 2 * posts
        return len(captured)

    assert queries(2) == queries(10)
