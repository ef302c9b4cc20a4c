"""experiments, experiment-results, knowledge-documents and ceo-briefings over the API."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from advanced.briefings.factories import CeoBriefingFactory
from advanced.experiments.factories import ExperimentFactory, ExperimentResultFactory, two_variants
from advanced.knowledge.factories import KnowledgeDocumentFactory, unit_vector
from advanced.knowledge.models import EMBEDDING_DIMENSIONS
from advanced.models import CeoBriefing, Experiment, ExperimentResult, KnowledgeDocument
from tenancy.factories import ShopMembershipFactory, UserFactory
from tenancy.scope import atomic_scope, service_scope
from tests.fixtures.api import assert_error, client_for
from tests.fixtures.tenants import SHOP_A, Actor

pytestmark = pytest.mark.django_db

EXPERIMENTS = "/api/v1/experiments/"
RESULTS = "/api/v1/experiment-results/"
DOCUMENTS = "/api/v1/knowledge-documents/"
BRIEFINGS = "/api/v1/ceo-briefings/"


def _count(model: type, **filters: object) -> int:
    with atomic_scope(service_scope()):
        return model.objects.filter(**filters).count()


def _stored(model: type, pk: int) -> object:
    with atomic_scope(service_scope()):
        return model.objects.get(pk=pk)


def _flat_queries(client: APIClient, url: str, make_more: object, params: dict | None = None) -> tuple[int, int]:
    """Queries of one list request before and after `make_more()` adds rows."""
    with CaptureQueriesContext(connection) as small:
        assert client.get(url, params or {}).status_code == 200
    make_more()  # type: ignore[operator]
    with CaptureQueriesContext(connection) as large:
        assert client.get(url, params or {}).status_code == 200
    return len(small), len(large)


@pytest.fixture
def ceo_a(owner_a: Actor) -> Actor:
    user = UserFactory(username="alpha-ceo")
    ShopMembershipFactory(user=user, shop=owner_a.shop, role="ceo")
    return Actor(user=user, shop=owner_a.shop, client=client_for(user, SHOP_A))


def test_unauthenticated_and_non_member_requests_are_refused(
    owner_a: Actor, outsider: APIClient, client: Client
) -> None:
    for url in (EXPERIMENTS, RESULTS, DOCUMENTS, BRIEFINGS):
        assert_error(client.get(url, HTTP_X_SHOP_DOMAIN=SHOP_A), 401)
        assert_error(outsider.get(url), 403, code="not_a_member")
        assert_error(outsider.post(url, {}, format="json"), 403, code="not_a_member")
        assert_error(client_for(owner_a.user, None).get(url), 400, code="shop_header_missing")


# --- experiments -------------------------------------------------------------------------

EXPERIMENT = {
    "experiment_key": "free-shipping",
    "experiment_name": "Free shipping banner",
    "variants": two_variants(),
}


def test_create_experiment_takes_shop_from_scope(owner_a: Actor, owner_b: Actor) -> None:
    response = owner_a.client.post(EXPERIMENTS, {**EXPERIMENT, "shop_domain": owner_b.shop.domain}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["shop_domain"] == SHOP_A and body["variants"] == two_variants()
    assert body["confidence_threshold"] == "0.9500" and body["winning_variant"] is None
    stored = _stored(Experiment, body["id"])
    assert (stored.shop_id, stored.experiment_key, stored.created_by) == (SHOP_A, "free-shipping", str(owner_a.user.pk))


def test_weights_may_be_percentages(owner_a: Actor) -> None:
    variants = [
        {"key": "a", "weight": 33.3, "is_control": True},
        {"key": "b", "weight": 33.3},
        {"key": "c", "weight": 33.4, "is_control": False},
    ]
    response = owner_a.client.post(EXPERIMENTS, {**EXPERIMENT, "variants": variants}, format="json")
    assert response.status_code == 201, response.content


def _variants(**changes: object) -> list[dict]:
    variants = two_variants()
    for path, value in changes.items():
        index, key = path.split("__")
        variants[int(index[1:])][key] = value
    return variants


@pytest.mark.parametrize(
    ("variants", "words"),
    [
        ({"key": "a"}, "array"),
        ([{"key": "a", "weight": 1, "is_control": True}], "at least two"),
        ([{"key": "a", "weight": 0.5, "is_control": True}, "b"], "variants[1] must be an object"),
        (_variants(v1__key="control"), "variants[1].key 'control'"),
        (_variants(v0__key=""), "variants[0].key"),
        (_variants(v1__key=7), "variants[1].key"),
        (_variants(v1__key="k" * 101), "at most 100"),
        (_variants(v1__weight=0), "variants[1].weight"),
        (_variants(v0__weight=-0.5, v1__weight=1.5), "variants[0].weight"),
        (_variants(v1__weight="0.5"), "variants[1].weight"),
        (_variants(v1__weight=True), "variants[1].weight"),
        (_variants(v1__weight=0.4), "sum to 1 or to 100"),
        (_variants(v1__is_control=True), "Exactly one"),
        (_variants(v0__is_control=False), "Exactly one"),
        (_variants(v0__is_control="yes"), "variants[0].is_control"),
        (_variants(v0__name="a\u0000"), "Null characters"),
    ],
)
def test_invalid_variants_name_the_variant_and_the_rule(owner_a: Actor, variants: object, words: str) -> None:
    body = assert_error(owner_a.client.post(EXPERIMENTS, {**EXPERIMENT, "variants": variants}, format="json"), 400)
    messages = [e["message"] for e in body["errors"] if e["field"] == "variants"]
    assert any(words in message for message in messages), body
    assert _count(Experiment) == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"variants": None}, "variants"),
        ({"status": "flying"}, "status"),
        ({"confidence_threshold": "1.5"}, "confidence_threshold"),
        ({"confidence_level": "-0.1"}, "confidence_level"),
        ({"min_sample_size": -1}, "min_sample_size"),
        ({"min_sample_size": "lots"}, "min_sample_size"),
        ({"ended_at": "2025-12-31T00:00:00Z"}, "ended_at"),
        ({"winning_variant": "nope"}, "winning_variant"),
        ({"experiment_key": "Not A Slug"}, "experiment_key"),
        ({"shop": "x"}, "shop"),
    ],
)
def test_invalid_experiment_is_refused_and_nothing_written(owner_a: Actor, payload: dict, field: str) -> None:
    assert_error(owner_a.client.post(EXPERIMENTS, {**EXPERIMENT, **payload}, format="json"), 400, field=field)
    assert _count(Experiment) == 0


def test_experiment_without_variants_and_malformed_json_are_400(owner_a: Actor) -> None:
    payload = {k: v for k, v in EXPERIMENT.items() if k != "variants"}
    assert_error(owner_a.client.post(EXPERIMENTS, payload, format="json"), 400, field="variants")
    response = owner_a.client.post(EXPERIMENTS, '{"variants": [', content_type="application/json")
    assert_error(response, 400, code="parse_error")
    assert _count(Experiment) == 0


def test_lifecycle_fields_change_only_through_the_actions(owner_a: Actor) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop, started_at=datetime.datetime(2026, 1, 10, tzinfo=datetime.UTC))
    url = f"{EXPERIMENTS}{experiment.pk}/"
    for field, value in (("winning_variant", "treatment"), ("ended_at", "2026-02-01T00:00:00Z"), ("status", "paused")):
        assert_error(owner_a.client.patch(url, {field: value}, format="json"), 400, field=field, code="read_only")
    response = owner_a.client.post(f"{url}complete/", {"winner": "other"}, format="json")
    assert_error(response, 400, field="winner")
    response = owner_a.client.post(f"{url}complete/", {"winner": "treatment"}, format="json")
    assert response.status_code == 200, response.content
    # Once it has run, its variants are its history: even renaming one is refused.
    renamed = _variants(v1__key="renamed")
    assert_error(owner_a.client.patch(url, {"variants": renamed}, format="json"), 400, field="variants")
    stored = _stored(Experiment, experiment.pk)
    assert (stored.winning_variant, stored.status, stored.variants) == ("treatment", "completed", two_variants())
    assert stored.ended_at is not None and stored.ended_at >= stored.started_at


@pytest.mark.parametrize(("status", "expected"), [("draft", 200), ("running", 400), ("paused", 400)])
def test_variants_change_only_while_the_experiment_is_a_draft(owner_a: Actor, status: str, expected: int) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop, status=status)
    heavier = _variants(v1__weight=70, v0__weight=30)
    response = owner_a.client.patch(f"{EXPERIMENTS}{experiment.pk}/", {"variants": heavier}, format="json")
    if expected == 400:
        body = assert_error(response, 400, field="variants")
        assert f"only change while the experiment is a draft; it is {status}" in body["errors"][0]["message"]
    else:
        assert response.status_code == 200, response.content
    stored = _stored(Experiment, experiment.pk)
    assert stored.variants == (heavier if expected == 200 else two_variants())
    # The same variants sent back (a full PUT-style body) are not a change.
    same = owner_a.client.patch(f"{EXPERIMENTS}{experiment.pk}/", {"variants": stored.variants}, format="json")
    assert same.status_code == 200, same.content


def test_duplicate_experiment_key_is_400(owner_a: Actor) -> None:
    ExperimentFactory(shop=owner_a.shop, experiment_key="free-shipping")
    assert_error(owner_a.client.post(EXPERIMENTS, EXPERIMENT, format="json"), 400, code="unique")
    assert _count(Experiment) == 1


def test_other_shops_experiment_is_404(owner_a: Actor, owner_b: Actor) -> None:
    theirs = ExperimentFactory(shop=owner_b.shop)
    ExperimentResultFactory(experiment=theirs)
    assert_error(owner_a.client.get(f"{EXPERIMENTS}{theirs.pk}/"), 404, code="not_found")
    for method in ("patch", "put", "delete"):
        response = getattr(owner_a.client, method)(f"{EXPERIMENTS}{theirs.pk}/", EXPERIMENT, format="json")
        assert_error(response, 404, code="not_found")
    assert_error(owner_a.client.get(f"{EXPERIMENTS}{theirs.pk}/results/"), 404)
    assert _count(Experiment, pk=theirs.pk) == 1


def test_experiment_update_and_delete_cascades_results(owner_a: Actor) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop)
    ExperimentResultFactory(experiment=experiment)
    response = owner_a.client.put(f"{EXPERIMENTS}{experiment.pk}/", EXPERIMENT, format="json")
    assert response.status_code == 200, response.content
    assert _stored(Experiment, experiment.pk).experiment_key == "free-shipping"
    assert owner_a.client.delete(f"{EXPERIMENTS}{experiment.pk}/").status_code == 204
    assert (_count(Experiment), _count(ExperimentResult)) == (0, 0)


def test_viewer_reads_experiments_but_cannot_write(viewer_a: Actor) -> None:
    ExperimentFactory(shop=viewer_a.shop)
    assert viewer_a.client.get(EXPERIMENTS).json()["count"] == 1
    assert_error(viewer_a.client.post(EXPERIMENTS, EXPERIMENT, format="json"), 403)
    assert _count(Experiment) == 1


def test_nested_results_newest_snapshot_first(owner_a: Actor) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop)
    other = ExperimentFactory(shop=owner_a.shop)
    start = datetime.date(2026, 1, 1)
    for days in range(3):
        for key in ("control", "treatment"):
            ExperimentResultFactory(
                experiment=experiment, variant_key=key, snapshot_date=start + datetime.timedelta(days)
            )
    ExperimentResultFactory(experiment=other)
    body = owner_a.client.get(f"{EXPERIMENTS}{experiment.pk}/results/", {"page_size": 4}).json()
    assert set(body) == {"next", "previous", "results"}
    assert [r["snapshot_date"] for r in body["results"]] == ["2026-01-03", "2026-01-03", "2026-01-02", "2026-01-02"]
    assert {r["experiment"] for r in body["results"]} == {experiment.pk}
    rest = owner_a.client.get(body["next"]).json()
    assert [r["snapshot_date"] for r in rest["results"]] == ["2026-01-01", "2026-01-01"]


def test_experiment_list_filters_and_query_count_is_flat(owner_a: Actor, owner_b: Actor) -> None:
    def make(n: int) -> None:
        for _ in range(n):
            experiment = ExperimentFactory(shop=owner_a.shop, status="running")
            ExperimentResultFactory(experiment=experiment)
            ExperimentResultFactory(experiment=experiment, variant_key="treatment")

    make(2)
    ExperimentFactory(shop=owner_a.shop, status="draft", experiment_key="draft-one")
    ExperimentFactory(shop=owner_b.shop, status="running")
    small, large = _flat_queries(owner_a.client, EXPERIMENTS, lambda: make(8), {"status": "running"})
    assert large == small <= 12, (small, large)
    body = owner_a.client.get(EXPERIMENTS, {"status": "running"}).json()
    assert body["count"] == 10 and {r["shop_domain"] for r in body["results"]} == {SHOP_A}
    by_key = owner_a.client.get(EXPERIMENTS, {"experiment_key": "draft-one"}).json()["results"]
    assert [r["status"] for r in by_key] == ["draft"]


# --- experiment-results ------------------------------------------------------------------


def _result(experiment_id: int, **changes: object) -> dict:
    return {
        "experiment": experiment_id,
        "variant_key": "treatment",
        "snapshot_date": "2026-02-01",
        "participants": 1000,
        "conversions": 50,
        "p_value": "0.03",
        "confidence_interval_lower": "0.01",
        "confidence_interval_upper": "0.04",
        **changes,
    }


def test_create_result_copies_shop_and_generates_conversion_rate(owner_a: Actor) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop)
    response = owner_a.client.post(RESULTS, _result(experiment.pk, conversion_rate="0.9"), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["shop_domain"] == SHOP_A and body["experiment"] == experiment.pk
    assert Decimal(body["conversion_rate"]) == Decimal("0.05")
    stored = _stored(ExperimentResult, body["id"])
    assert (stored.shop_id, stored.experiment_id, stored.conversions) == (SHOP_A, experiment.pk, 50)
    assert stored.conversion_rate == Decimal("0.05")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"variant_key": "ghost"}, "variant_key"),
        ({"conversions": 1001}, "conversions"),
        ({"confidence_interval_lower": "0.05"}, "confidence_interval_lower"),
        ({"p_value": "1.5"}, "p_value"),
        ({"participants": -1}, "participants"),
        ({"avg_order_value": "-3"}, "avg_order_value"),
        ({"snapshot_date": "02/01/2026"}, "snapshot_date"),
        ({"experiment": 999999}, "experiment"),
        ({"experiment": "abc"}, "experiment"),
        ({"ratio": 1}, "ratio"),
    ],
)
def test_invalid_result_is_refused_and_nothing_written(owner_a: Actor, changes: dict, field: str) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop)
    body = assert_error(
        owner_a.client.post(RESULTS, _result(experiment.pk, **changes), format="json"), 400, field=field
    )
    if field == "variant_key":
        assert "control, treatment" in body["errors"][0]["message"]
    assert _count(ExperimentResult) == 0


def test_result_cannot_point_at_another_shops_experiment(owner_a: Actor, owner_b: Actor) -> None:
    theirs = ExperimentFactory(shop=owner_b.shop)
    assert_error(owner_a.client.post(RESULTS, _result(theirs.pk), format="json"), 400, field="experiment")
    assert _count(ExperimentResult) == 0


def test_result_patch_rechecks_against_stored_values(owner_a: Actor) -> None:
    result = ExperimentResultFactory(experiment__shop=owner_a.shop, participants=100, conversions=10)
    url = f"{RESULTS}{result.pk}/"
    assert_error(owner_a.client.patch(url, {"conversions": 101}, format="json"), 400, field="conversions")
    assert_error(owner_a.client.patch(url, {"variant_key": "ghost"}, format="json"), 400, field="variant_key")
    response = owner_a.client.patch(url, {"conversions": 20, "variant_key": "treatment"}, format="json")
    assert response.status_code == 200, response.content
    assert Decimal(response.json()["conversion_rate"]) == Decimal("0.2")
    stored = _stored(ExperimentResult, result.pk)
    assert (stored.conversions, stored.variant_key) == (20, "treatment")
    assert owner_a.client.delete(url).status_code == 204
    assert _count(ExperimentResult) == 0


def test_duplicate_snapshot_is_400(owner_a: Actor) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop)
    assert owner_a.client.post(RESULTS, _result(experiment.pk), format="json").status_code == 201
    assert_error(owner_a.client.post(RESULTS, _result(experiment.pk), format="json"), 400, code="unique")
    assert _count(ExperimentResult) == 1


def test_other_shops_result_is_404(owner_a: Actor, owner_b: Actor) -> None:
    theirs = ExperimentResultFactory(experiment__shop=owner_b.shop)
    for method in ("get", "patch", "delete"):
        assert_error(getattr(owner_a.client, method)(f"{RESULTS}{theirs.pk}/", {}, format="json"), 404)
    assert _count(ExperimentResult, pk=theirs.pk) == 1


def test_results_are_cursor_paged_newest_first_and_filtered(owner_a: Actor, owner_b: Actor) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop)
    other = ExperimentFactory(shop=owner_a.shop)
    start = datetime.date(2026, 1, 1)
    for days in range(5):
        ExperimentResultFactory(experiment=experiment, snapshot_date=start + datetime.timedelta(days))
        ExperimentResultFactory(
            experiment=experiment, variant_key="treatment", snapshot_date=start + datetime.timedelta(days)
        )
    ExperimentResultFactory(experiment=other, snapshot_date=start)
    ExperimentResultFactory(experiment__shop=owner_b.shop)
    body = owner_a.client.get(RESULTS, {"page_size": 3}).json()
    assert set(body) == {"next", "previous", "results"} and body["next"]
    assert [r["snapshot_date"] for r in body["results"]] == ["2026-01-05", "2026-01-05", "2026-01-04"]
    params = {"experiment": experiment.pk, "variant_key": "treatment", "snapshot_date__gte": "2026-01-02"}
    filtered = owner_a.client.get(RESULTS, {**params, "snapshot_date__lte": "2026-01-04"}).json()["results"]
    assert [r["snapshot_date"] for r in filtered] == ["2026-01-04", "2026-01-03", "2026-01-02"]
    assert {(r["experiment"], r["variant_key"]) for r in filtered} == {(experiment.pk, "treatment")}


def test_result_list_query_count_is_flat(owner_a: Actor) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop)

    def make(n: int, offset: int) -> None:
        for days in range(offset, offset + n):
            ExperimentResultFactory(experiment=experiment, snapshot_date=datetime.date(2026, 1, 1 + days))

    make(2, 0)
    small, large = _flat_queries(owner_a.client, RESULTS, lambda: make(8, 2))
    assert large == small <= 12, (small, large)


# --- knowledge-documents -----------------------------------------------------------------


def _document(**changes: object) -> dict:
    return {
        "document_key": "returns-policy",
        "title": "Returns",
        "content": "30 days, no questions asked.",
        "document_type": "policy",
        "tags": ["returns", "shipping"],
        **changes,
    }


def test_create_document_with_embedding_does_not_echo_the_vector(owner_a: Actor) -> None:
    vector = unit_vector(1)
    payload = _document(embedding=vector, embedding_model="text-embedding-3-small", version=7, is_current=False)
    response = owner_a.client.post(DOCUMENTS, payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert "embedding" not in body
    assert body["has_embedding"] is True and body["embedding_model"] == "text-embedding-3-small"
    # Versioning fields are read-only here.
    assert (body["version"], body["is_current"], body["previous_version"]) == (1, True, None)
    assert body["shop_domain"] == SHOP_A and body["tags"] == ["returns", "shipping"]
    stored = _stored(KnowledgeDocument, body["id"])
    assert stored.shop_id == SHOP_A and len(stored.embedding) == EMBEDDING_DIMENSIONS
    assert stored.embedding[:3] == pytest.approx(vector[:3], rel=1e-6)


def test_embedding_is_returned_only_by_retrieve_with_include(owner_a: Actor) -> None:
    document = KnowledgeDocumentFactory(shop=owner_a.shop)
    KnowledgeDocumentFactory(shop=owner_a.shop, embedding=None)
    listed = owner_a.client.get(DOCUMENTS).json()["results"]
    assert all("embedding" not in r for r in listed)
    assert sorted(r["has_embedding"] for r in listed) == [False, True]
    assert "embedding" not in owner_a.client.get(f"{DOCUMENTS}{document.pk}/").json()
    body = owner_a.client.get(f"{DOCUMENTS}{document.pk}/", {"include": "embedding"}).json()
    assert len(body["embedding"]) == EMBEDDING_DIMENSIONS and body["has_embedding"] is True
    # Listing with the parameter still leaves vectors out.
    assert all("embedding" not in r for r in owner_a.client.get(DOCUMENTS, {"include": "embedding"}).json()["results"])


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"embedding": [0.1, 0.2, 0.3]}, "embedding", "got 3"),
        ({"embedding": [0.0] * 1537}, "embedding", "exactly 1536"),
        ({"embedding": [0.0] * 1535 + ["x"]}, "embedding.1535", None),
        ({"embedding": [0.0] * 1535 + ["NaN"]}, "embedding.1535", None),
        ({"embedding": [0.0] * 1535 + [1e39]}, "embedding.1535", None),
        ({"embedding": "[0.1, 0.2]"}, "embedding", None),
        ({"tags": ["ok", ""]}, "tags.1", None),
        ({"tags": "returns"}, "tags", None),
        ({"tags": ["t" * 101]}, "tags.0", None),
        ({"document_type": "memo"}, "document_type", None),
        ({"document_key": "Not a slug"}, "document_key", None),
        ({"title": ""}, "title", None),
        ({"source_url": "not a url"}, "source_url", None),
        ({"vector": []}, "vector", None),
    ],
)
def test_invalid_document_is_refused_and_nothing_written(
    owner_a: Actor, changes: dict, field: str, words: str | None
) -> None:
    body = assert_error(owner_a.client.post(DOCUMENTS, _document(**changes), format="json"), 400, field=field)
    if words:
        assert any(words in e["message"] for e in body["errors"] if e["field"] == field), body
    assert _count(KnowledgeDocument) == 0


def test_posting_an_existing_document_key_adds_a_version(owner_a: Actor) -> None:
    first = KnowledgeDocumentFactory(shop=owner_a.shop, document_key="returns-policy")
    response = owner_a.client.post(DOCUMENTS, _document(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["document_key"], body["version"], body["is_current"]) == ("returns-policy", 2, True)
    assert body["previous_version"] == first.pk
    assert _stored(KnowledgeDocument, first.pk).is_current is False
    assert _count(KnowledgeDocument) == 2


def test_document_update_adds_a_version_and_keeps_history(owner_a: Actor) -> None:
    document = KnowledgeDocumentFactory(shop=owner_a.shop, embedding=unit_vector(5), tags=["a"])
    response = owner_a.client.patch(
        f"{DOCUMENTS}{document.pk}/", {"title": "New title", "tags": ["b", "b", "c"]}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] != document.pk and body["version"] == document.version + 1
    assert body["has_embedding"] is True and body["tags"] == ["b", "c"]
    old = _stored(KnowledgeDocument, document.pk)
    assert (old.title, old.is_current) == (document.title, False)
    assert _stored(KnowledgeDocument, body["id"]).title == "New title"
    # History is immutable: the old version can no longer be edited or deleted on its own.
    assert_error(owner_a.client.patch(f"{DOCUMENTS}{document.pk}/", {"title": "x"}, format="json"), 409)
    assert owner_a.client.delete(f"{DOCUMENTS}{body['id']}/").status_code == 204
    assert _count(KnowledgeDocument) == 0


def test_document_filters_tags_versions_and_type(owner_a: Actor) -> None:
    both = KnowledgeDocumentFactory(shop=owner_a.shop, tags=["returns", "shipping"], document_type="faq")
    KnowledgeDocumentFactory(shop=owner_a.shop, tags=["returns"], document_type="policy")
    sizing = KnowledgeDocumentFactory(shop=owner_a.shop, tags=["sizing"], document_type="faq")
    old = KnowledgeDocumentFactory(
        shop=owner_a.shop, document_key="doc-v", version=1, is_current=False, tags=[], document_type="policy"
    )
    new = KnowledgeDocumentFactory(
        shop=owner_a.shop,
        document_key="doc-v",
        version=2,
        previous_version=old,
        tags=["returns", "shipping"],
        document_type="policy",
    )

    def ids(**params: str) -> set[int]:
        response = owner_a.client.get(DOCUMENTS, params)
        assert response.status_code == 200, response.content
        return {r["id"] for r in response.json()["results"]}

    assert ids(tags="returns,shipping") == {both.pk, new.pk}
    assert len(ids(tags="returns")) == 3
    assert ids(tags_any="shipping,sizing") == {both.pk, new.pk, sizing.pk}
    assert ids(document_type="faq") == {both.pk, sizing.pk}
    assert ids(document_key="doc-v") == {new.pk}
    assert ids(document_key="doc-v", is_current="false") == {old.pk}
    assert ids(document_key="doc-v", is_current="") == {old.pk, new.pk}
    # An older version is still reachable by its id.
    assert owner_a.client.get(f"{DOCUMENTS}{old.pk}/").json()["is_current"] is False
    assert owner_a.client.get(f"{DOCUMENTS}{new.pk}/").json()["previous_version"] == old.pk


def test_other_shops_document_is_404(owner_a: Actor, owner_b: Actor) -> None:
    theirs = KnowledgeDocumentFactory(shop=owner_b.shop)
    for method in ("get", "patch", "delete"):
        assert_error(getattr(owner_a.client, method)(f"{DOCUMENTS}{theirs.pk}/", {}, format="json"), 404)
    assert owner_a.client.get(DOCUMENTS).json()["count"] == 0
    assert _count(KnowledgeDocument, pk=theirs.pk) == 1


def test_document_list_query_count_is_flat(owner_a: Actor) -> None:
    def make(n: int) -> None:
        for _ in range(n):
            previous = KnowledgeDocumentFactory(shop=owner_a.shop, is_current=False)
            KnowledgeDocumentFactory(
                shop=owner_a.shop, document_key=previous.document_key, version=2, previous_version=previous
            )

    make(2)
    small, large = _flat_queries(owner_a.client, DOCUMENTS, lambda: make(8))
    assert large == small <= 12, (small, large)
    assert owner_a.client.get(DOCUMENTS).json()["count"] == 10


def test_document_list_does_not_load_vectors(owner_a: Actor) -> None:
    KnowledgeDocumentFactory(shop=owner_a.shop)
    with CaptureQueriesContext(connection) as queries:
        owner_a.client.get(DOCUMENTS)
    select = next(q["sql"] for q in queries if 'FROM "knowledge_base"' in q["sql"] and "COUNT" not in q["sql"])
    assert '"knowledge_base"."embedding",' not in select and "IS NOT NULL" in select


# --- ceo-briefings -----------------------------------------------------------------------

BRIEFING = {
    "briefing_type": "weekly",
    "period_start": "2026-01-05",
    "period_end": "2026-01-11",
    "executive_summary": "Revenue up, spend flat.",
    "key_metrics": {"revenue": {"value": 1200.5, "change_pct": 4.2}},
    "insights": [{"rank": 1, "title": "ROAS improved"}],
}


def test_ceo_and_owner_see_the_shops_briefings_member_and_viewer_do_not(
    owner_a: Actor, ceo_a: Actor, member_a: Actor, viewer_a: Actor, owner_b: Actor
) -> None:
    ours = [CeoBriefingFactory(shop=owner_a.shop) for _ in range(2)]
    CeoBriefingFactory(shop=owner_b.shop)
    for actor in (owner_a, ceo_a):
        body = actor.client.get(BRIEFINGS).json()
        assert body["count"] == 2 and {r["id"] for r in body["results"]} == {b.pk for b in ours}
        assert actor.client.get(f"{BRIEFINGS}{ours[0].pk}/").status_code == 200
    for actor in (member_a, viewer_a):
        assert actor.client.get(BRIEFINGS).json() == {"count": 0, "next": None, "previous": None, "results": []}
        assert_error(actor.client.get(f"{BRIEFINGS}{ours[0].pk}/"), 404, code="not_found")


def test_ceo_creates_a_briefing(ceo_a: Actor) -> None:
    response = ceo_a.client.post(BRIEFINGS, BRIEFING, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["shop_domain"] == SHOP_A and body["key_metrics"] == BRIEFING["key_metrics"]
    assert body["rating"] is None and body["reviewed_by"] is None
    stored = _stored(CeoBriefing, body["id"])
    assert (stored.shop_id, stored.insights, stored.created_by) == (SHOP_A, BRIEFING["insights"], str(ceo_a.user.pk))


def test_member_and_viewer_cannot_write_briefings(owner_a: Actor, member_a: Actor, viewer_a: Actor) -> None:
    briefing = CeoBriefingFactory(shop=owner_a.shop)
    for actor in (member_a, viewer_a):
        assert_error(actor.client.post(BRIEFINGS, BRIEFING, format="json"), 403)
        assert_error(actor.client.patch(f"{BRIEFINGS}{briefing.pk}/", {"rating": 1}, format="json"), 403)
        assert_error(actor.client.delete(f"{BRIEFINGS}{briefing.pk}/"), 403)
    assert _count(CeoBriefing) == 1 and _stored(CeoBriefing, briefing.pk).rating is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"key_metrics": [1, 2]}, "key_metrics"),
        ({"key_metrics": "revenue up"}, "key_metrics"),
        ({"insights": {"rank": 1}}, "insights"),
        ({"insights": [{"title": "\u0000"}]}, "insights"),
        ({"key_metrics": {"\u0000": 1}}, "key_metrics"),
        ({"period_end": "2026-01-01"}, "period_end"),
        ({"rating": 6}, "rating"),
        ({"rating": 0}, "rating"),
        ({"generation_tokens": -1}, "generation_tokens"),
        ({"briefing_type": "hourly"}, "briefing_type"),
        ({"period_start": "soon"}, "period_start"),
        ({"reviewer": "me"}, "reviewer"),
    ],
)
def test_invalid_briefing_is_refused_and_nothing_written(owner_a: Actor, payload: dict, field: str) -> None:
    assert_error(owner_a.client.post(BRIEFINGS, {**BRIEFING, **payload}, format="json"), 400, field=field)
    assert _count(CeoBriefing) == 0


def test_rating_a_briefing_records_the_reviewer(owner_a: Actor, ceo_a: Actor) -> None:
    briefing = CeoBriefingFactory(shop=owner_a.shop)
    url = f"{BRIEFINGS}{briefing.pk}/"
    assert_error(ceo_a.client.patch(url, {"rating": 9}, format="json"), 400, field="rating")
    response = ceo_a.client.patch(url, {"rating": 4, "feedback_notes": "Useful."}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["rating"], body["feedback_notes"], body["reviewed_by"]) == (4, "Useful.", str(ceo_a.user.pk))
    stored = _stored(CeoBriefing, briefing.pk)
    assert (stored.rating, stored.reviewed_by_id) == (4, ceo_a.user.pk) and stored.reviewed_at is not None
    assert_error(owner_a.client.patch(url, {"period_end": "2000-01-01"}, format="json"), 400, field="period_end")
    assert owner_a.client.delete(url).status_code == 204
    assert _count(CeoBriefing) == 0


def test_duplicate_briefing_period_is_400(owner_a: Actor) -> None:
    assert owner_a.client.post(BRIEFINGS, BRIEFING, format="json").status_code == 201
    assert_error(owner_a.client.post(BRIEFINGS, BRIEFING, format="json"), 400, code="unique")
    assert _count(CeoBriefing) == 1


def test_other_shops_briefing_is_404_for_its_owner_elsewhere(owner_a: Actor, owner_b: Actor) -> None:
    theirs = CeoBriefingFactory(shop=owner_b.shop)
    for method in ("get", "patch", "delete"):
        assert_error(getattr(owner_a.client, method)(f"{BRIEFINGS}{theirs.pk}/", {}, format="json"), 404)
    assert _count(CeoBriefing, pk=theirs.pk) == 1


def test_briefing_filters_ordering_and_query_count_is_flat(owner_a: Actor, ceo_a: Actor) -> None:
    def make(n: int) -> None:
        for _ in range(n):
            CeoBriefingFactory(shop=owner_a.shop, reviewed_by=ceo_a.user, rating=3)

    make(2)
    CeoBriefingFactory(shop=owner_a.shop, briefing_type="monthly", rating=5, period_end=datetime.date(2020, 1, 31))
    small, large = _flat_queries(owner_a.client, BRIEFINGS, lambda: make(8), {"briefing_type": "weekly"})
    assert large == small <= 12, (small, large)
    weekly = owner_a.client.get(BRIEFINGS, {"briefing_type": "weekly"}).json()
    ends = [r["period_end"] for r in weekly["results"]]
    assert weekly["count"] == 10 and ends == sorted(ends, reverse=True)
    assert owner_a.client.get(BRIEFINGS, {"rating": 5}).json()["count"] == 1
    assert owner_a.client.get(BRIEFINGS, {"rating__gte": 3}).json()["count"] == 11
    assert owner_a.client.get(BRIEFINGS, {"period_end__lte": "2020-12-31"}).json()["count"] == 1
    assert owner_a.client.get(BRIEFINGS, {"period_end__gte": "2021-01-01"}).json()["count"] == 10
    by_rating = owner_a.client.get(BRIEFINGS, {"ordering": "-rating"}).json()["results"]
    assert by_rating[0]["rating"] == 5
