"""Knowledge search: k nearest current documents of the shop, filtered, for small and large shops."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from advanced.knowledge.factories import KnowledgeDocumentFactory, unit_vector
from advanced.knowledge.services import (
    IvfflatIndexState,
    KnowledgeSearchResult,
    exact_search_limit,
    ivfflat_index_state,
    knowledge_document_save,
    knowledge_index_rebuild,
    knowledge_search,
    search_probes,
)
from advanced.models import KnowledgeDocument
from tenancy.scope import atomic_scope, service_scope, shop_scope
from tests.fixtures.api import assert_error
from tests.fixtures.embeddings import FakeOpenAI
from tests.fixtures.tenants import SHOP_A, SHOP_B, Actor

SEARCH = "/api/v1/knowledge-documents/search/"
DIMENSIONS = 1536
# The synthetic data lives in the first 16 dimensions (short SQL, real cosine geometry).
SUBSPACE = 16
QUERY = [math.sin(d) for d in range(1, SUBSPACE + 1)] + [0.0] * (DIMENSIONS - SUBSPACE)


@contextmanager
def in_shop(shop: str) -> Iterator[None]:
    with atomic_scope(shop_scope(shop=shop, subject=None, member_role="owner")):
        yield


def search(shop: str = SHOP_A, **arguments: Any) -> KnowledgeSearchResult:
    with in_shop(shop):
        return knowledge_search(**arguments)


def keys(result: KnowledgeSearchResult) -> list[str]:
    return [d.document_key for d in result.documents]


def exact_order(shop: str, *, vector: list[float], k: int, **filters: Any) -> list[int]:
    """The ids an exhaustive search must return, computed here in float64 from the stored vectors."""
    with atomic_scope(service_scope()):
        rows = list(KnowledgeDocument.objects.filter(shop_id=shop).searchable(**filters).values_list("id", "embedding"))
    ids = np.array([r[0] for r in rows])
    matrix = np.array([np.asarray(r[1], dtype=np.float64) for r in rows])
    q = np.asarray(vector, dtype=np.float64)
    distances = 1.0 - (matrix @ q) / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(q))
    order = np.lexsort((ids, distances))
    return [int(i) for i in ids[order][:k]]


# --- over the API -------------------------------------------------------------------------


def _post(actor: Actor, **body: Any) -> Any:
    return actor.client.post(SEARCH, body, format="json")


def _save(actor: Actor, key: str, title: str, content: str, **extra: Any) -> KnowledgeDocument:
    with in_shop(actor.shop.domain):
        return knowledge_document_save(
            shop_id=actor.shop.domain, document_key=key, title=title, content=content, actor=None, **extra
        )


@pytest.fixture
def shop_corpus(owner_a: Actor) -> Actor:
    _save(owner_a, "returns", "Returns and refunds", "Items can be returned within 30 days for a full refund.")
    _save(owner_a, "shipping", "Shipping policy", "We ship worldwide; delivery takes 3-7 business days.")
    _save(owner_a, "sizing", "Size guide", "Our shirts run small: order one size up.")
    _save(owner_a, "brand", "Brand voice", "Friendly, concise, never pushy.")
    return owner_a


def test_text_query_returns_the_relevant_document_first(shop_corpus: Actor) -> None:
    response = _post(shop_corpus, query="can I return an item for a refund?", k=3, mode="semantic")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 3 and body["scan"] == "exact" and body["mode"] == "semantic"
    results = body["results"]
    assert results[0]["document_key"] == "returns"
    distances = [r["distance"] for r in results]
    assert distances == sorted(distances) and 0 <= distances[0] < distances[-1] <= 2
    assert set(results[0]) == {
        "id",
        "shop_domain",
        "document_key",
        "version",
        "title",
        "content",
        "document_type",
        "tags",
        "source_url",
        "embedding_model",
        "created_at",
        "updated_at",
        "distance",
        "distance_model",
        "keyword_rank",
        "score",
    }
    assert results[0]["distance_model"] == results[0]["embedding_model"] == body["embedding_model"]


def test_k_defaults_to_10_and_never_exceeds_the_matching_documents(shop_corpus: Actor) -> None:
    for n in range(8):
        _save(shop_corpus, f"faq-{n}", f"Question {n}", f"Answer number {n} about orders and parcels.")
    # 12 documents: with no k the answer stops at 10; a larger k returns the 12 there are.
    body = _post(shop_corpus, query="shipping").json()
    assert body["count"] == 10 and len(body["results"]) == 10
    body = _post(shop_corpus, query="shipping", k=50).json()
    assert body["count"] == 12 and len(body["results"]) == 12


def test_only_current_versions_are_returned(owner_a: Actor) -> None:
    _save(owner_a, "returns", "Refunds", "Refunds within 30 days, refunds for everything.")
    _save(owner_a, "returns", "Returns", "Exchanges only, no money back.")
    _save(owner_a, "brand", "Brand voice", "Friendly.")
    results = _post(owner_a, query="refunds within 30 days").json()["results"]
    # Version 1 matches the query word for word, yet only version 2 is found.
    assert sorted((r["document_key"], r["version"]) for r in results) == [("brand", 1), ("returns", 2)]


def test_another_shops_documents_are_never_returned(owner_a: Actor, owner_b: Actor) -> None:
    _save(owner_b, "returns", "Returns and refunds", "Items can be returned within 30 days for a full refund.")
    _save(owner_a, "brand", "Brand voice", "Friendly, concise, never pushy.")
    for body in (
        {"query": "Returns and refunds: items can be returned within 30 days for a full refund."},
        {"vector": QUERY},
    ):
        response = _post(owner_a, k=100, **body).json()
        assert [r["shop_domain"] for r in response["results"]] == [SHOP_A], response


def test_tag_modes_and_document_type_filter(owner_a: Actor) -> None:
    both = KnowledgeDocumentFactory(shop=owner_a.shop, tags=["returns", "shipping"], document_type="faq")
    returns = KnowledgeDocumentFactory(shop=owner_a.shop, tags=["returns"], document_type="policy")
    sizing = KnowledgeDocumentFactory(shop=owner_a.shop, tags=["sizing"], document_type="faq")
    KnowledgeDocumentFactory(shop=owner_a.shop, tags=[], document_type="note")
    KnowledgeDocumentFactory(shop=owner_a.shop, tags=["returns"], embedding=None)

    def ids(**body: Any) -> set[int]:
        response = _post(owner_a, vector=unit_vector(7), k=100, **body)
        assert response.status_code == 200, response.content
        return {r["id"] for r in response.json()["results"]}

    assert ids(tags=["returns", "shipping"]) == {both.pk}
    assert ids(tags=["returns", "shipping"], tags_mode="all") == {both.pk}
    assert ids(tags=["shipping", "sizing"], tags_mode="any") == {both.pk, sizing.pk}
    assert ids(tags=["returns"]) == {both.pk, returns.pk}
    assert ids(document_type="faq") == {both.pk, sizing.pk}
    assert ids(tags=["returns"], tags_mode="any", document_type="faq") == {both.pk}
    assert len(ids()) == 4 and len(ids(tags=[])) == 4
    assert ids(tags=["nothing"]) == set()


def test_text_queries_compare_only_documents_of_the_providers_model(owner_a: Actor) -> None:
    # Fixed words: Faker's random sentences could hold "voice", and a keyword hit is a hit in the
    # default (hybrid) mode whatever the document's model (seen once in a whole-suite run).
    KnowledgeDocumentFactory(
        shop=owner_a.shop, embedding_model="synthetic-gaussian", title="Gaussian probe", content="Synthetic."
    )
    hashed = _save(owner_a, "brand", "Brand voice", "Friendly.")
    for mode in ("semantic", "hybrid"):
        answer = _post(owner_a, query="brand voice", mode=mode).json()
        assert [r["id"] for r in answer["results"]] == [hashed.pk], (mode, answer)
    assert _post(owner_a, vector=QUERY).json()["count"] == 2
    only = _post(owner_a, vector=QUERY, embedding_model="synthetic-gaussian").json()["results"]
    assert [r["embedding_model"] for r in only] == ["synthetic-gaussian"]


def test_viewer_may_search(viewer_a: Actor) -> None:
    KnowledgeDocumentFactory(shop=viewer_a.shop)
    response = _post(viewer_a, vector=QUERY, k=1)
    assert response.status_code == 200, response.content
    assert response.json()["count"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"vector": [0.1] * 1535}, "vector"),
        ({"vector": [0.1] * 1537}, "vector"),
        ({"vector": [0.0] * 1536}, "vector"),
        ({"vector": [0.1] * 1535 + ["x"]}, "vector.1535"),
        ({"vector": "[0.1, 0.2]"}, "vector"),
        ({"query": "   "}, "query"),
        ({"query": "x" * 20_001}, "query"),
        ({"query": "ok", "vector": QUERY}, None),
        ({}, None),
        ({"query": "ok", "k": 0}, "k"),
        ({"query": "ok", "k": 101}, "k"),
        ({"query": "ok", "tags_mode": "some"}, "tags_mode"),
        ({"query": "ok", "tags": ["ok", ""]}, "tags.1"),
        ({"query": "ok", "tags": "returns"}, "tags"),
        ({"query": "ok", "document_type": "memo"}, "document_type"),
        ({"query": "ok", "embedding_model": "m"}, "embedding_model"),
        ({"query": "ok", "limit": 3}, "limit"),
    ],
)
def test_invalid_search_is_400_naming_the_field(owner_a: Actor, body: dict, field: str | None) -> None:
    response = _post(owner_a, **body)
    result = assert_error(response, 400, field=field)
    if field is None:
        assert "either query" in result["errors"][0]["message"], result


def test_search_fails_with_502_when_the_provider_does(owner_a: Actor, settings: Any, fake_openai: FakeOpenAI) -> None:
    settings.EMBEDDING_PROVIDER, settings.OPENAI_API_KEY = "openai", "sk-wrong"
    settings.OPENAI_BASE_URL = fake_openai.url
    assert_error(_post(owner_a, query="refunds"), 502, code="embedding_failed")
    # A vector query needs no provider.
    assert _post(owner_a, vector=QUERY).status_code == 200


def test_text_search_through_openai_compares_openai_vectors(
    owner_a: Actor, settings: Any, fake_openai: FakeOpenAI
) -> None:
    _save(owner_a, "hashed", "Returns", "Within 30 days.")
    settings.EMBEDDING_PROVIDER, settings.OPENAI_API_KEY = "openai", "sk-test"
    settings.OPENAI_BASE_URL = fake_openai.url
    _save(owner_a, "returns", "Returns", "Within 30 days.")
    body = _post(owner_a, query="Returns", mode="semantic").json()
    assert [(r["document_key"], r["embedding_model"]) for r in body["results"]] == [
        ("returns", "text-embedding-3-small")
    ]
    assert body["embedding_model"] == "text-embedding-3-small"
    assert fake_openai.requests[-1]["body"]["input"] == ["Returns"]
    # Hybrid also finds the other model's document by its words, without comparing its vector.
    hybrid = _post(owner_a, query="Returns", mode="hybrid").json()["results"]
    assert {r["document_key"]: r["distance"] is None for r in hybrid} == {"returns": False, "hashed": True}


# --- k results for small and large shops ---------------------------------------------------

SEED_SQL = """
INSERT INTO knowledge_base (shop_domain, document_key, title, content, document_type, embedding,
                            embedding_model, version, is_current, tags, source_url)
SELECT %(shop)s, %(prefix)s || g, 'Document ' || g, 'Synthetic body ' || g,
       CASE WHEN g %% 2 = 0 THEN 'faq' ELSE 'policy' END,
       (ARRAY(SELECT %(sign)s * sin(d)
                     + %(spread)s * ((sin(g * 12.9898 + d * 78.233) * 43758.5453)
                                     - floor(sin(g * 12.9898 + d * 78.233) * 43758.5453) - 0.5)
                FROM generate_series(1, 16) d ORDER BY d)
        || array_fill(0::float8, ARRAY[1520]))::vector,
       'synthetic', 1, %(current)s,
       CASE WHEN g %% 3 = 0 THEN ARRAY[%(tag)s, 'shipping'] ELSE ARRAY[%(tag)s, 'policy'] END, ''
  FROM generate_series(1, %(n)s) g
"""


def seed(shop: str, prefix: str, n: int, *, near: bool, tag: str, current: bool = True) -> None:
    """`n` documents of `shop`; `near` ones cluster around QUERY, the others around -QUERY."""
    params = {
        "shop": shop,
        "prefix": prefix,
        "n": n,
        "sign": 1.0 if near else -1.0,
        "spread": 0.6,
        "tag": tag,
        "current": current,
    }
    with atomic_scope(service_scope()), connection.cursor() as cursor:
        cursor.execute(SEED_SQL, params)


@pytest.fixture
def large_table(owner_a: Actor, owner_b: Actor) -> None:
    """2,990 rows: shop A's 40 `returns` documents are a small fraction of the table, and most
    other rows (B's returns, A's noise and A's old versions) are nearer to the query than they are.
    B's far documents make the far cluster large enough for the index's k-means sample."""
    seed(SHOP_B, "b-returns-", 2000, near=True, tag="returns")
    seed(SHOP_B, "b-far-", 500, near=False, tag="returns")
    seed(SHOP_A, "a-noise-", 400, near=True, tag="noise")
    seed(SHOP_A, "a-old-", 50, near=True, tag="returns", current=False)
    seed(SHOP_A, "a-returns-", 40, near=False, tag="returns")


def test_a_shop_with_fewer_documents_than_lists_gets_them_all_in_exact_order(owner_a: Actor) -> None:
    seed(SHOP_A, "doc-", 5, near=True, tag="returns")
    with in_shop(SHOP_A):
        state = ivfflat_index_state()
    assert state is not None and state.lists == 100
    for k in (3, 10):
        result = search(vector=QUERY, k=k)
        assert result.scan == "exact"
        assert [d.pk for d in result.documents] == exact_order(SHOP_A, vector=QUERY, k=k)
        assert len(result.documents) == min(k, 5)


FILTER_CASES = [
    # (k, filters, documents of shop A that match)
    (10, {"tags": ["returns"]}, 40),
    (100, {"tags": ["returns"]}, 40),
    (10, {"tags": ["returns", "shipping"]}, 13),
    (20, {"tags": ["returns", "shipping"], "tags_mode": "all"}, 13),
    (100, {"tags": ["shipping", "nothing"], "tags_mode": "any"}, 146),
    (5, {"tags": ["returns"], "document_type": "faq"}, 20),
]


@pytest.mark.usefixtures("large_table")
def test_a_small_fraction_of_a_large_table_gives_min_k_matching_in_exact_order() -> None:
    for k, filters, matching in FILTER_CASES:
        with CaptureQueriesContext(connection) as statements:
            result = search(vector=QUERY, k=k, **filters)
        assert result.scan == "exact", (k, filters)
        assert len(result.documents) == min(k, matching), (k, filters)
        # exact_order ranks current versions only.
        assert [d.pk for d in result.documents] == exact_order(SHOP_A, vector=QUERY, k=k, **filters), (k, filters)
        assert all(d.shop_id == SHOP_A for d in result.documents)
        # The vectors are compared in the database, never loaded: no statement selects the column
        # itself (only `embedding <=> query`).
        selected = [statement["sql"].split(" FROM ", 1)[0] for statement in statements.captured_queries]
        assert not [s for s in selected if re.search(r'"knowledge_base"\."embedding"(?!\s*<=>)', s)], selected


@contextmanager
def planner_prefers_indexes() -> Iterator[None]:
    """Small test tables are cheaper to scan than to probe; make the planner take the vector
    index whenever it can serve the query, as it does on a large table."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('enable_seqscan', 'off', true), set_config('enable_sort', 'off', true)")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('enable_seqscan', 'on', true), set_config('enable_sort', 'on', true)")


@pytest.fixture
def clustered_index(large_table: None) -> None:
    """The index rebuilt on the data, as after `rebuild_knowledge_index`: A's far documents and
    the near ones end up in different lists."""
    with connection.cursor() as cursor:
        # The seeded rows' deferred foreign key checks would otherwise block CREATE INDEX in
        # the test's transaction (the command runs in a transaction of its own).
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    assert knowledge_index_rebuild(lists=4).lists_after == 4


def _plan(*, exact: bool, **filters: Any) -> str:
    with in_shop(SHOP_A):
        queryset = KnowledgeDocument.objects.searchable(**filters).nearest(QUERY, exact=exact)[:10]
        return queryset.explain()


@pytest.mark.usefixtures("clustered_index")
def test_without_iterative_scans_a_filtered_index_search_returns_too_few_rows() -> None:
    """The failure the search design avoids: one probe reaches only the near lists, where A has
    no `returns` document, and filtering after the index leaves nothing."""
    with planner_prefers_indexes(), in_shop(SHOP_A):
        assert "knowledge_base_embedding_idx" in _plan(exact=False, tags=["returns"])
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('ivfflat.probes'), current_setting('ivfflat.iterative_scan')")
            assert cursor.fetchone() == ("1", "off")  # pgvector's defaults
        found = list(KnowledgeDocument.objects.searchable(tags=["returns"]).nearest(QUERY, exact=False)[:10])
    assert len(found) < 10


@pytest.mark.usefixtures("clustered_index")
@pytest.mark.parametrize(("k", "probes"), [(100, 1), (10, 4)])
def test_index_search_with_iterative_scans_gives_min_k_in_exact_order(settings: Any, k: int, probes: int) -> None:
    """k above the matches (every list ends up scanned) or probes = lists: the index answer is exact."""
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES = 0
    settings.KNOWLEDGE_IVFFLAT_PROBES = probes
    with planner_prefers_indexes():
        result = search(vector=QUERY, k=k, tags=["returns"])
    assert result.scan == "ivfflat"
    assert len(result.documents) == min(k, 40)
    assert [d.pk for d in result.documents] == exact_order(SHOP_A, vector=QUERY, k=k, tags=["returns"])


@pytest.mark.usefixtures("clustered_index")
def test_index_search_with_one_probe_still_returns_k_matching_documents(settings: Any) -> None:
    """The first probed list holds none of A's matches; iterative scanning goes on to the next
    lists until k rows pass the filters. Which 10 depends on how k-means split the far cluster
    (approximate search), but there are always 10, nearest first, all matching."""
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES = 0
    settings.KNOWLEDGE_IVFFLAT_PROBES = 1
    with planner_prefers_indexes():
        result = search(vector=QUERY, k=10, tags=["returns"])
    assert result.scan == "ivfflat"
    distances = [d.distance for d in result.documents if d.distance is not None]
    assert len(distances) == 10 and distances == sorted(distances)
    matching = set(exact_order(SHOP_A, vector=QUERY, k=100, tags=["returns"]))
    assert {d.pk for d in result.documents} <= matching


@pytest.mark.usefixtures("clustered_index")
def test_index_search_that_falls_short_is_answered_exactly(settings: Any) -> None:
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES = 0
    settings.KNOWLEDGE_IVFFLAT_PROBES = 1
    settings.KNOWLEDGE_IVFFLAT_MAX_PROBES = 1
    with planner_prefers_indexes():
        result = search(vector=QUERY, k=10, tags=["returns"])
    assert result.scan == "ivfflat+exact"
    assert [d.pk for d in result.documents] == exact_order(SHOP_A, vector=QUERY, k=10, tags=["returns"])


@pytest.mark.usefixtures("clustered_index")
def test_exact_search_never_uses_the_vector_index() -> None:
    with planner_prefers_indexes():
        assert "knowledge_base_embedding_idx" in _plan(exact=False)
        assert "knowledge_base_embedding_idx" not in _plan(exact=True)
        assert "knowledge_base_embedding_idx" not in _plan(exact=True, tags=["returns"])


@pytest.mark.usefixtures("clustered_index")
def test_index_search_restores_the_sessions_ivfflat_settings(settings: Any) -> None:
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES = 0
    names = ("ivfflat.probes", "ivfflat.iterative_scan", "ivfflat.max_probes")

    def current() -> tuple[str, ...]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT " + ", ".join("current_setting(%s)" for _ in names), names)
            return tuple(cursor.fetchone())

    with in_shop(SHOP_A):
        before = current()
        assert before[:2] == ("1", "off")
        assert knowledge_search(vector=QUERY, k=5).scan == "ivfflat"
        assert current() == before


def test_search_with_no_candidates_is_empty(owner_a: Actor) -> None:
    assert search(vector=QUERY, k=10).documents == []
    assert search(vector=QUERY, k=10, tags=["nothing"]).scan == "exact"


@contextmanager
def search_plans() -> Iterator[list[str]]:
    """EXPLAIN of every search statement (the one ordering by distance) the service runs,
    taken just before it executes: with the settings the service applied for it."""
    plans: list[str] = []

    def explain(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        if "<=>" in sql and "ORDER BY" in sql:
            with context["connection"].connection.cursor() as cursor:
                cursor.execute("EXPLAIN " + sql, params)
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain):
        yield plans


def test_the_exact_search_limit_is_the_measured_break_even(settings: Any) -> None:
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES = None
    version = (0, 8, 6)
    # 200,000 rows after the rebuild: 14 probes of 200 lists read ~14,000 vectors, the cost of
    # an exact scan of ~3,500 candidates.
    assert exact_search_limit(IvfflatIndexState(lists=200, pgvector_version=version, rows=200_000)) == 3500
    # Before it (lists=100 for 200,000 rows: not fitted, 20 probes): 40,000 vectors probed.
    assert exact_search_limit(IvfflatIndexState(lists=100, pgvector_version=version, rows=200_000)) == 10_000
    # Small tables (and unknown statistics) stay exact up to 1,000 candidates.
    assert exact_search_limit(IvfflatIndexState(lists=20, pgvector_version=version, rows=20_000)) == 1000
    assert exact_search_limit(IvfflatIndexState(lists=100, pgvector_version=version)) == 1000
    settings.KNOWLEDGE_IVFFLAT_PROBES = 50
    assert exact_search_limit(IvfflatIndexState(lists=200, pgvector_version=version, rows=200_000)) == 12500
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES = 20_000
    assert exact_search_limit(IvfflatIndexState(lists=200, pgvector_version=version, rows=200_000)) == 20_000


def test_an_index_not_fitted_to_its_rows_probes_a_fifth_of_its_lists(settings: Any) -> None:
    settings.KNOWLEDGE_IVFFLAT_PROBES = 0
    version = (0, 8, 6)
    # Fitted (what rebuild_knowledge_index chooses, within a factor of 2): sqrt(lists).
    assert search_probes(IvfflatIndexState(lists=200, pgvector_version=version, rows=200_000)) == 14
    assert search_probes(IvfflatIndexState(lists=20, pgvector_version=version, rows=30_000)) == 4
    # The migration's 100 lists for 20,000 or 200,000 rows, or statistics not known yet.
    assert search_probes(IvfflatIndexState(lists=100, pgvector_version=version, rows=20_000)) == 20
    assert search_probes(IvfflatIndexState(lists=100, pgvector_version=version, rows=200_000)) == 20
    assert search_probes(IvfflatIndexState(lists=100, pgvector_version=version)) == 20
    # An explicit setting wins.
    settings.KNOWLEDGE_IVFFLAT_PROBES = 7
    assert search_probes(IvfflatIndexState(lists=100, pgvector_version=version, rows=20_000)) == 7


@pytest.mark.usefixtures("clustered_index")
def test_above_the_limit_the_search_runs_on_the_ivfflat_index_whatever_the_planner_prefers(settings: Any) -> None:
    """On a table this small the planner would scan it (the bitmap scan of A's rows is cheaper
    than reading lists); the index branch still gets the index scan, with the shop's policy
    and the filters applied to what it yields, and k rows of shop A only."""
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES = 0
    assert "knowledge_base_embedding_idx" not in _plan(exact=False, tags=["returns"])
    with search_plans() as plans:
        result = search(vector=QUERY, k=10, tags=["returns"])
    assert result.scan == "ivfflat"
    [plan] = plans
    assert "Index Scan using knowledge_base_embedding_idx" in plan
    assert "Seq Scan" not in plan and "Sort" not in plan and "Gather" not in plan
    # The policy's shop filter (an InitPlan reading app.current_shop) and the tag filter.
    assert "shop_domain" in plan and "tags @>" in plan
    assert len(result.documents) == 10
    assert {d.pk for d in result.documents} <= set(exact_order(SHOP_A, vector=QUERY, k=100, tags=["returns"]))
    # Shop B's documents are nearer to the query and in the probed lists; still never A's answer.
    b_result = search(SHOP_B, vector=QUERY, k=10, tags=["returns"])
    assert b_result.scan == "ivfflat" and all(d.shop_id == SHOP_B for d in b_result.documents)
    assert {d.pk for d in b_result.documents}.isdisjoint(d.pk for d in result.documents)


@pytest.mark.usefixtures("clustered_index")
def test_below_the_limit_the_search_is_exact_computing_each_distance_once(settings: Any) -> None:
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES = None  # the break-even: at least 1,000
    with search_plans() as plans, CaptureQueriesContext(connection) as captured:
        result = search(vector=QUERY, k=10, tags=["returns"])
    assert result.scan == "exact"
    assert [d.pk for d in result.documents] == exact_order(SHOP_A, vector=QUERY, k=10, tags=["returns"])
    [plan] = plans
    assert "knowledge_base_embedding_idx" not in plan
    statements = [q["sql"] for q in captured.captured_queries]
    [count] = [sql for sql in statements if sql.startswith("SELECT COUNT(*)")]
    # Counting the candidates does not sort them (the model's default ordering).
    assert "ORDER BY" not in count
    [ranked] = [sql for sql in statements if "<=>" in sql]
    # One distance per candidate: the ORDER BY names the selected expression.
    assert ranked.count("<=>") == 1
