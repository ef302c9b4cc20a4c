"""Inputs from an outside attack run that ended in a 500 (or in data nobody can find): each is
now a 4xx in the one error shape, and writes nothing.

Crafted cursors, lone surrogates, deep nesting, loose dates and page sizes, unknown paths and
server errors under /api/, form bodies, oversized bodies and free text, degenerate embeddings.
"""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import pytest
from django.db import models
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from advanced.experiments.factories import ExperimentResultFactory
from advanced.knowledge.models import EMBEDDING_DIMENSIONS
from advanced.models import Experiment, KnowledgeDocument
from growth.factories import (
    AdCampaignFactory,
    AdPerformanceFactory,
    SeoAuditFactory,
    SeoRankingFactory,
    SocialAnalyticsFactory,
    SocialPostFactory,
)
from growth.models import AdCampaign, AdPerformance, SocialPost
from tenancy.api.pagination import TimeSeriesPagination
from tenancy.api.parsers import MAX_JSON_DEPTH
from tenancy.factories import UserFactory
from tenancy.scope import atomic_scope, service_scope
from tests.fixtures.api import assert_error
from tests.fixtures.tenants import Actor

pytestmark = pytest.mark.django_db

CAMPAIGNS = "/api/v1/ad-campaigns/"
EXPERIMENTS = "/api/v1/experiments/"
DOCUMENTS = "/api/v1/knowledge-documents/"


def _count(model: type[models.Model], **filters: Any) -> int:
    with atomic_scope(service_scope()):
        return model.objects.filter(**filters).count()


def _raw_post(actor: Actor, path: str, body: str | bytes, content_type: str = "application/json") -> Any:
    return actor.client.generic("POST", path, body, content_type=content_type)


def _cursor(query: str) -> str:
    return base64.b64encode(query.encode()).decode()


# --- Cursors -----------------------------------------------------------------------------


def _cursor_routes() -> list[tuple[str, type]]:
    """Every GET route (URL conf) whose pages are cursors: list actions of views paginated by
    TimeSeriesPagination and actions declaring it (the nested routes)."""
    found: list[tuple[str, type]] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
                continue
            assert isinstance(pattern, URLPattern)
            view = getattr(pattern.callback, "cls", None)
            action = (getattr(pattern.callback, "actions", None) or {}).get("get")
            if view is None or action is None or action == "retrieve":
                continue
            handler = getattr(view, action)
            paginator = view.pagination_class if action == "list" else handler.kwargs.get("pagination_class")
            if paginator is not None and issubclass(paginator, TimeSeriesPagination):
                found.append((prefix + str(pattern.pattern), view))

    walk(get_resolver().url_patterns, "/")
    return found


@pytest.fixture
def cursor_paths(owner_a: Actor) -> list[str]:
    """The cursor routes with real ids, over a shop that has rows on each of them."""
    performance = AdPerformanceFactory(campaign__shop=owner_a.shop)
    analytics = SocialAnalyticsFactory(social_post__shop=owner_a.shop)
    result = ExperimentResultFactory(experiment__shop=owner_a.shop)
    SeoAuditFactory(shop=owner_a.shop)
    SeoRankingFactory(shop=owner_a.shop)
    parents = {
        "ad-campaigns": performance.campaign_id,
        "social-posts": analytics.social_post_id,
        "experiments": result.experiment_id,
    }
    paths = []
    for route, _ in _cursor_routes():
        path = route.replace("^", "").replace("$", "").replace("\\.(?P<format>[a-z0-9]+)/?", "")
        if "(?P<pk>" in path:
            resource = path.split("/")[3]
            path = path.split("(?P<pk>")[0] + str(parents[resource]) + path.split(")", 1)[1]
        if "format" in path:
            continue
        paths.append(path)
    return sorted(set(paths))


def test_cursor_routes_are_derived_from_the_url_conf(cursor_paths: list[str]) -> None:
    # Every time series list and every nested route; the schema documents `cursor` on each.
    resources = {path.split("/")[3] + ("/nested" if path.count("/") > 5 else "") for path in cursor_paths}
    assert resources == {
        "ad-performance",
        "seo-rankings",
        "seo-audits",
        "social-analytics",
        "experiment-results",
        "ad-campaigns/nested",
        "social-posts/nested",
        "experiments/nested",
    }, cursor_paths
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    documented = {
        path
        for path, operations in schema["paths"].items()
        if any(p["name"] == "cursor" for p in operations.get("get", {}).get("parameters", []))
    }
    assert len(documented) == len(cursor_paths), documented


HOSTILE_POSITIONS = [
    "garbage",
    "%00",
    "2026-01-01%00",
    "1e999999",
    "NaN",
    "Infinity",
    "99999999999999999999999999",
    "-99999999999999999999999999",
    "2026-13-45",
    "0000-00-00",
    "2026-01-01T00:00:00-23:59",
    "10000-01-01",
    "",
]


def test_a_crafted_cursor_is_404_invalid_cursor_on_every_cursor_route(owner_a: Actor, cursor_paths: list[str]) -> None:
    for path in cursor_paths:
        body = assert_error(owner_a.client.get(path, {"cursor": _cursor("o=0&p=garbage")}), 404, code="invalid_cursor")
        assert body["detail"] == "Invalid cursor."
        assert_error(owner_a.client.get(path, {"cursor": _cursor("o=0&r=1&p=garbage")}), 404, code="invalid_cursor")
        assert_error(owner_a.client.get(path, {"cursor": "!!not-base64"}), 404, code="invalid_cursor")
        assert_error(owner_a.client.get(path, {"cursor": _cursor("o=x")}), 404, code="invalid_cursor")
        for position in HOSTILE_POSITIONS:
            for reverse in ("0", "1"):
                response = owner_a.client.get(path, {"cursor": _cursor(f"o=0&r={reverse}&p={position}")})
                # A position the column can hold pages normally; anything else is an invalid cursor.
                if response.status_code != 200:
                    assert_error(response, 404, code="invalid_cursor")


def test_cursor_pages_walk_ties_forward_and_back_without_loss(owner_a: Actor) -> None:
    # Seven rows on two dates, ordered by (-date, -id): pages of 2 split the tied dates.
    campaigns = [AdCampaignFactory(shop=owner_a.shop) for _ in range(7)]
    days = [datetime.date(2026, 3, 1), datetime.date(2026, 3, 2)]
    for index, campaign in enumerate(campaigns):
        AdPerformanceFactory(campaign=campaign, date=days[index % 2])
    with atomic_scope(service_scope()):
        expected = list(
            AdPerformance.objects.filter(shop_id=owner_a.shop.pk).order_by("-date", "-id").values_list("id", flat=True)
        )
    assert len(expected) == 7

    pages: list[list[int]] = []
    url: str | None = "/api/v1/ad-performance/?page_size=2"
    while url:
        body = owner_a.client.get(url).json()
        pages.append([row["id"] for row in body["results"]])
        url = body["next"]
    assert [row for page in pages for row in page] == expected
    assert [len(page) for page in pages] == [2, 2, 2, 1]

    # From the last page back to the first through the previous links: the same pages.
    url = f"/api/v1/ad-performance/?page_size=2&cursor={_last_cursor(owner_a)}"
    back: list[list[int]] = []
    while url:
        body = owner_a.client.get(url).json()
        back.append([row["id"] for row in body["results"]])
        url = body["previous"]
    assert back[::-1] == pages


def _last_cursor(actor: Actor) -> str:
    url: str | None = "/api/v1/ad-performance/?page_size=2"
    cursor = ""
    while url:
        body = actor.client.get(url).json()
        if body["next"] is None:
            break
        cursor = body["next"].split("cursor=")[1].split("&")[0]
        url = body["next"]
    from urllib.parse import unquote

    return unquote(cursor)


# --- Pages -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [CAMPAIGNS, "/api/v1/ad-performance/"])
@pytest.mark.parametrize("page_size", ["abc", "0", "-1", "501", "1.5", "", "१"])
def test_a_bad_page_size_is_400_naming_it(owner_a: Actor, path: str, page_size: str) -> None:
    body = assert_error(owner_a.client.get(path, {"page_size": page_size}), 400, field="page_size")
    assert "500" in body["errors"][0]["message"]


@pytest.mark.parametrize("page", ["abc", "0", "", "last", "1.0"])
def test_a_bad_page_number_is_400_and_past_the_end_404(owner_a: Actor, page: str) -> None:
    assert_error(owner_a.client.get(CAMPAIGNS, {"page": page}), 400, field="page")
    assert_error(owner_a.client.get(CAMPAIGNS, {"page": "9"}), 404)
    assert owner_a.client.get(CAMPAIGNS, {"page": "1", "page_size": "500"}).status_code == 200


# --- JSON bodies: Unicode, nesting, size, media type ---------------------------------------------


def _campaign(**fields: Any) -> dict[str, Any]:
    return {"campaign_name": "Spring", "platform_campaign_id": "c-1", "platform": "google_ads", **fields}


@pytest.mark.parametrize(
    "body",
    [
        '{"campaign_name": "Spring", "platform_campaign_id": "c-1", "\\ud800": 1}',  # a field name
        '{"campaign_name": "Spring", "platform_campaign_id": "c-1", "platform": "\\ud800"}',  # a choice
        '{"campaign_name": "Spr\\udfffing", "platform_campaign_id": "c-1"}',  # a lone low surrogate
        '{"campaign_name": "Spring", "platform_campaign_id": "c-1", "currency": "\\udbff"}',
    ],
)
def test_a_lone_surrogate_is_400_at_parse_time(owner_a: Actor, body: str) -> None:
    assert_error(_raw_post(owner_a, CAMPAIGNS, body), 400, code="invalid_unicode")
    assert _count(AdCampaign) == 0


def test_a_surrogate_pair_is_a_character_and_accepted(owner_a: Actor) -> None:
    response = _raw_post(owner_a, CAMPAIGNS, json.dumps(_campaign(campaign_name="Spring \U0001f331")))
    assert response.status_code == 201, response.content
    assert response.json()["campaign_name"] == "Spring \U0001f331"


def test_a_lone_surrogate_inside_a_json_column_is_400_and_nothing_written(owner_a: Actor) -> None:
    body = (
        '{"experiment_key": "k", "experiment_name": "n", "variants": ['
        '{"key": "control", "name": "\\ud800", "weight": 50}, {"key": "b", "name": "B", "weight": 50}]}'
    )
    assert_error(_raw_post(owner_a, EXPERIMENTS, body), 400, code="invalid_unicode")
    bulk = '[{"campaign_id": 1, "date": "2026-03-01", "\\udc00": 1}]'
    assert_error(_raw_post(owner_a, "/api/v1/ad-performance/bulk/", bulk), 400, code="invalid_unicode")
    assert _count(Experiment) == 0


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("path", "body"),
    [
        # ~330 levels inside a JSON column was a RecursionError in the NUL check.
        (EXPERIMENTS, {"experiment_key": "k", "experiment_name": "n", "variants": _nested(330)}),
        ("/api/v1/feature-tours/", {"tour_key": "t", "tour_name": "T", "steps": _nested(330)}),
        (CAMPAIGNS, _campaign(platform=_nested(40))),
    ],
)
def test_deep_nesting_is_400_too_deep(owner_a: Actor, path: str, body: Any) -> None:
    body_text = json.dumps(body)
    assert_error(_raw_post(owner_a, path, body_text), 400, code="too_deep")


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_nesting_that_exhausts_the_json_decoder_is_400_too_deep(owner_a: Actor, depth: int) -> None:
    # ~1,000 levels was a RecursionError inside json.loads itself, bulk included.
    body = "[" * depth + "]" * depth
    for path in (CAMPAIGNS, "/api/v1/ad-performance/bulk/"):
        assert_error(_raw_post(owner_a, path, body), 400, code="too_deep")


def test_the_nesting_limit_is_exact(owner_a: Actor) -> None:
    # The body is level 1, the variants array level 2, so a column may hold MAX_JSON_DEPTH - 1.
    within = {"experiment_key": "k", "experiment_name": "n", "variants": _nested(MAX_JSON_DEPTH - 2)}
    response = _raw_post(owner_a, EXPERIMENTS, json.dumps(within))
    # Parsed, then refused by the variants' own rules (not a list of variant objects).
    assert response.status_code == 400 and "too_deep" not in response.content.decode(), response.content
    beyond = {**within, "variants": _nested(MAX_JSON_DEPTH)}
    assert_error(_raw_post(owner_a, EXPERIMENTS, json.dumps(beyond)), 400, code="too_deep")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", "campaign_name=Spring&platform_campaign_id=c-1"),
        (
            "multipart/form-data; boundary=XX",
            '--XX\r\nContent-Disposition: form-data; name="campaign_name"\r\n\r\nS\r\n--XX--\r\n',
        ),
        ("text/plain", "hello"),
    ],
)
def test_a_body_that_is_not_json_is_415_and_writes_nothing(owner_a: Actor, content_type: str, body: str) -> None:
    assert_error(_raw_post(owner_a, CAMPAIGNS, body, content_type), 415, code="unsupported_media_type")
    assert _count(AdCampaign) == 0


def test_a_body_larger_than_the_upload_limit_is_413(owner_a: Actor, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    body = json.dumps(_campaign(campaign_name="x" * 200, platform_campaign_id="y" * 900))
    body_error = assert_error(_raw_post(owner_a, CAMPAIGNS, body), 413, code="too_large")
    assert "1000 bytes" in body_error["detail"]
    assert _count(AdCampaign) == 0


def test_the_body_limit_holds_a_full_bulk_batch_of_the_widest_rows(settings: Any) -> None:
    # From the schema: every bulk row type with each text field at its maxLength (ASCII) and
    # every other value 25 characters; API_BULK_MAX_ROWS of them must fit the body limit.
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    rows = {
        name: {
            key: "x" * prop["maxLength"] if "maxLength" in prop else "9" * 25
            for key, prop in component["properties"].items()
        }
        for name, component in schema["components"]["schemas"].items()
        if name.endswith("RowRequest")
    }
    assert len(rows) >= 4, sorted(rows)  # one per bulk resource
    sizes = {name: len(json.dumps([row] * settings.API_BULK_MAX_ROWS)) for name, row in rows.items()}
    assert max(sizes.values()) < settings.DATA_UPLOAD_MAX_MEMORY_SIZE, sizes


# --- Free text limits ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field", "limit"),
    [
        (
            "/api/v1/social-posts/",
            {"platform": "instagram", "platform_post_id": "p1", "caption": "x" * 63_207},
            "caption",
            63_206,
        ),
        (DOCUMENTS, {"document_key": "faq", "title": "FAQ", "content": "x" * 100_001}, "content", 100_000),
        (
            EXPERIMENTS,
            {"experiment_key": "k", "experiment_name": "n", "description": "x" * 10_001},
            "description",
            10_000,
        ),
    ],
)
def test_free_text_over_its_limit_is_400_naming_the_field_and_the_limit(
    owner_a: Actor, path: str, body: dict[str, Any], field: str, limit: int
) -> None:
    response = owner_a.client.post(path, body, format="json")
    errors = assert_error(response, 400, field=field, code="max_length")["errors"]
    assert f"{limit:,}".replace(",", "") in next(e["message"] for e in errors if e["field"] == field)
    assert _count(SocialPost) + _count(KnowledgeDocument) == 0


def _api_serializers() -> set[type]:
    """Every serializer a route of the URL conf writes with (request bodies and bulk rows)."""
    found: set[type] = set()

    def walk(patterns: list[Any]) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
                continue
            view = getattr(pattern.callback, "cls", None)
            for name in ("serializer_class", "bulk_serializer_class"):
                if getattr(view, name, None) is not None:
                    found.add(getattr(view, name))

    walk(get_resolver().url_patterns)
    return found


def test_every_text_field_the_api_writes_has_a_length_limit() -> None:
    # Derived from the routes' serializers: a writable text field without max_length accepted
    # 10 MB (a caption, a knowledge document).
    from rest_framework import serializers

    serializer_classes = _api_serializers()
    assert len(serializer_classes) >= 12
    unbounded = []
    for serializer_class in serializer_classes:
        for name, field in serializer_class().fields.items():
            text = field.child if isinstance(field, serializers.ListField) else field
            if not field.read_only and isinstance(text, serializers.CharField) and text.max_length is None:
                unbounded.append(f"{serializer_class.__name__}.{name}")
    assert unbounded == []


# --- Dates -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["20260301", "2026-W09-1", "03/01/2026", "2026-03-01T00:00:00Z", "Mar 1 2026"])
def test_a_loose_date_in_a_body_is_400(owner_a: Actor, value: str) -> None:
    assert_error(owner_a.client.post(CAMPAIGNS, _campaign(start_date=value), format="json"), 400, field="start_date")
    assert _count(AdCampaign) == 0


@pytest.mark.parametrize("value", ["2026-03-01", "2026-03-01T00:00:00", "20260301T000000Z", "2026-03-01 00:00"])
def test_a_moment_without_rfc3339_form_or_offset_is_400(owner_a: Actor, value: str) -> None:
    post = SocialPostFactory(shop=owner_a.shop)
    response = owner_a.client.post(
        "/api/v1/social-analytics/", {"social_post": post.pk, "measured_at": value}, format="json"
    )
    assert_error(response, 400, field="measured_at")


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/ad-performance/", {"date_from": "03/01/2026"}, "date_from"),
        ("/api/v1/ad-performance/", {"date_from": ""}, "date_from"),
        ("/api/v1/seo-audits/", {"crawled_from": "2026-03-01"}, "crawled_from"),
        ("/api/v1/seo-audits/", {"crawled_from": "2026-03-01T00:00:00"}, "crawled_from"),
        ("/api/v1/seo-rankings/", {"featured_snippet": "yes"}, "featured_snippet"),
        ("/api/v1/seo-rankings/", {"featured_snippet": ""}, "featured_snippet"),
    ],
)
def test_loose_or_empty_typed_filters_are_400(owner_a: Actor, path: str, params: dict[str, str], field: str) -> None:
    assert_error(owner_a.client.get(path, params), 400, field=field)


def test_strict_filters_still_accept_the_documented_forms(owner_a: Actor) -> None:
    ranking = SeoRankingFactory(shop=owner_a.shop, featured_snippet=True)
    for value, expected in (("true", [ranking.pk]), ("false", [])):
        body = owner_a.client.get("/api/v1/seo-rankings/", {"featured_snippet": value}).json()
        assert [row["id"] for row in body["results"]] == expected, value
    # `1` and `0` are not how the document's `type: boolean` is written.
    for value in ("1", "0"):
        assert_error(owner_a.client.get("/api/v1/seo-rankings/", {"featured_snippet": value}), 400)
    params = {"crawled_from": "2026-03-01T00:00:00+02:00", "crawled_to": "2999-01-01T00:00:00.5Z"}
    assert owner_a.client.get("/api/v1/seo-audits/", params).status_code == 200


def test_nul_in_a_query_parameter_is_400_not_a_database_error(owner_a: Actor) -> None:
    for path, params in (
        (CAMPAIGNS, {"search": "a\x00b"}),
        ("/api/v1/seo-rankings/", {"keyword": "a\x00"}),
        (DOCUMENTS, {"document_key": "\x00"}),
    ):
        assert_error(owner_a.client.get(path, params), 400)


# --- Embeddings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (1e-46, "zero"),  # float64 not zero; rounds to 0 in float4
        (1e-23, "zero"),  # float4 not zero; its square underflows, so the norm is zero
        (3e38, "out_of_range"),  # fits float4; the squared norm overflows (cosine NaN)
        (2e19, "out_of_range"),
    ],
)
def test_a_degenerate_embedding_is_400_and_not_stored(owner_a: Actor, value: float, code: str) -> None:
    body = {"document_key": "faq", "title": "FAQ", "content": "text", "embedding": [value] * EMBEDDING_DIMENSIONS}
    assert_error(owner_a.client.post(DOCUMENTS, body, format="json"), 400, field="embedding", code=code)
    search = {"vector": [value] * EMBEDDING_DIMENSIONS}
    assert_error(owner_a.client.post(f"{DOCUMENTS}search/", search, format="json"), 400, field="vector", code=code)
    assert _count(KnowledgeDocument) == 0


def test_a_small_but_searchable_embedding_is_stored_and_found(owner_a: Actor) -> None:
    vector = [1e-10] * EMBEDDING_DIMENSIONS  # squares 1e-20: representable in float4
    body = {"document_key": "faq", "title": "FAQ", "content": "text", "embedding": vector}
    response = owner_a.client.post(DOCUMENTS, body, format="json")
    assert response.status_code == 201, response.content
    found = owner_a.client.post(f"{DOCUMENTS}search/", {"vector": [1.0] * EMBEDDING_DIMENSIONS}, format="json")
    assert [hit["document_key"] for hit in found.json()["results"]] == ["faq"]
    assert found.json()["results"][0]["distance"] == pytest.approx(0.0, abs=1e-5)


# --- Unknown paths and server errors -------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing-here/", "/api/v1/ad-campaigns/not-a-number/", "/api/v2/", "/api/v1/ad-campaigns/1/x/"]
)
def test_an_unknown_api_path_is_the_json_404(owner_a: Actor, path: str) -> None:
    response = owner_a.client.get(path)
    assert response["Content-Type"] == "application/json"
    assert_error(response, 404, code="not_found")


def test_an_api_write_without_the_trailing_slash_is_a_json_404_not_a_redirect_to_a_get(owner_a: Actor) -> None:
    # A 301 is followed with a GET: the write was lost and the client saw a 200 list.
    response = owner_a.client.post("/api/v1/ad-campaigns", _campaign(), format="json")
    body = assert_error(response, 404, code="not_found")
    assert "/api/v1/ad-campaigns/ (with the trailing slash)" in body["detail"]
    assert _count(AdCampaign) == 0
    assert owner_a.client.get("/api/v1/ad-campaigns").status_code == 301


def test_unknown_admin_paths_stay_html(client: Client) -> None:
    # Anonymous: the admin sends every path of its own to the sign-in page first.
    response = client.get("/admin/nothing-here/x/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    # Signed in as staff: Django's HTML 404, not the API's JSON error.
    staff = UserFactory.create(is_staff=True, is_superuser=True)
    client.force_login(staff)
    response = client.get("/admin/nothing-here/x/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")
    response = client.get("/nothing/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


def test_a_server_error_under_the_api_is_the_json_500(owner_a: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    from tenancy.api import views

    def boom(self: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(views.MeView, "get_object", boom)
    owner_a.client.raise_request_exception = False
    response = owner_a.client.get("/api/v1/me/")
    assert response["Content-Type"] == "application/json"
    body = assert_error(response, 500, code="server_error")
    assert "boom" not in json.dumps(body)
