"""The local model's HNSW index (migration 0013) and the candidate count's index-only scan.

The local model's vectors fill the last 256 of the column's 1536 dimensions; its HNSW index
holds exactly that part, for that model's rows. Above hnsw_exact_search_limit() candidates a
search walks it; below, it is exact. These tests lower the limit so a few hundred rows take
the index, and compare its answers with an exhaustive search computed here in numpy.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from advanced.knowledge.embeddings import LOCAL_EMBEDDING_MODEL, HashingEmbeddingProvider
from advanced.knowledge.models import LOCAL_INDEX_NAME
from advanced.knowledge.services import knowledge_document_save, knowledge_search
from advanced.knowledge.services.index import (
    INDEX_PLAN_SETTINGS,
    hnsw_index_state,
    hnsw_search_settings,
    local_settings,
)
from advanced.knowledge.services.search import local_nearest
from advanced.models import KnowledgeDocument
from tenancy.factories import ShopFactory
from tenancy.scope import atomic_scope, service_scope, shop_scope
from tests.fixtures.tenants import SHOP_A, SHOP_B, Actor

DIMENSIONS = 1536
MODEL_DIMENSIONS = 256
QUERY = np.random.default_rng(14).normal(size=MODEL_DIMENSIONS)
QUERY /= np.linalg.norm(QUERY)


@contextmanager
def in_shop(shop: str) -> Iterator[None]:
    with atomic_scope(shop_scope(shop=shop, subject=None, member_role="owner")):
        yield


def padded(vector: np.ndarray) -> list[float]:
    """A local-model vector as the provider stores it: zeros first, the model's 256 values last."""
    return [0.0] * (DIMENSIONS - MODEL_DIMENSIONS) + [float(v) for v in vector]


def seed_local(shop: str, prefix: str, n: int, *, near: float, model: str = LOCAL_EMBEDDING_MODEL) -> None:
    """`n` current documents of `model` around `near` x QUERY (1: close to it, -1: opposite)."""
    # Each call draws from its own stream, seeded by what it builds: a corpus does not depend on
    # which tests ran before it (a module-level generator made every test order-dependent).
    rng = np.random.default_rng(zlib.crc32(f"{shop}:{prefix}:{n}:{near}:{model}".encode()))
    vectors = near * QUERY + 0.9 * rng.normal(size=(n, MODEL_DIMENSIONS)) / np.sqrt(MODEL_DIMENSIONS)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with atomic_scope(service_scope()), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO knowledge_base (shop_domain, document_key, title, content, document_type, tags,
                embedding, embedding_model, version, is_current, source_url, created_at, updated_at)
            SELECT %s, %s || g, 'Document ' || g, 'Body ' || g,
                   CASE WHEN g %% 2 = 0 THEN 'faq' ELSE 'policy' END,
                   CASE WHEN g %% 10 = 0 THEN ARRAY['rare'] ELSE ARRAY['common'] END,
                   v::vector, %s, 1, true, '', now(), now()
              FROM unnest(%s::text[]) WITH ORDINALITY AS t(v, g)
            """,
            [shop, prefix, model, ["[" + ",".join(map(repr, padded(v))) + "]" for v in vectors]],
        )


def exhaustive(shop: str, k: int, **filters: Any) -> list[int]:
    with atomic_scope(service_scope()):
        rows = list(
            KnowledgeDocument.objects.filter(shop_id=shop)
            .searchable(embedding_model=LOCAL_EMBEDDING_MODEL, **filters)
            .values_list("id", "embedding")
        )
    ids = np.array([r[0] for r in rows])
    matrix = np.array([np.asarray(r[1], dtype=np.float64)[-MODEL_DIMENSIONS:] for r in rows])
    distances = 1.0 - matrix @ QUERY / np.linalg.norm(matrix, axis=1)
    return [int(i) for i in ids[np.lexsort((ids, distances))][:k]]


def search(shop: str, **arguments: Any) -> Any:
    with in_shop(shop):
        return knowledge_search(vector=padded(QUERY), embedding_model=LOCAL_EMBEDDING_MODEL, **arguments)


@pytest.fixture
def two_shops(owner_a: Actor, owner_b: Actor, settings: Any) -> None:
    """Shop A: 300 local-model documents; shop B: 300 nearer to the query and 100 of another model."""
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES = 50
    seed_local(SHOP_A, "a-", 300, near=0.3)
    seed_local(SHOP_B, "b-", 300, near=1.0)
    seed_local(SHOP_B, "b-other-", 100, near=1.0, model="other-model")


@pytest.mark.usefixtures("two_shops")
def test_above_the_exact_limit_the_local_model_walks_its_hnsw_index_and_finds_the_exact_neighbours() -> None:
    for k, filters, matching in [(10, {}, 300), (100, {}, 300), (5, {"document_type": "faq"}, 150)]:
        result = search(SHOP_A, k=k, **filters)
        assert result.scan == "hnsw", (k, filters)
        assert len(result.documents) == min(k, matching)
        assert [d.pk for d in result.documents] == exhaustive(SHOP_A, k, **filters), (k, filters)
        # Shop B's nearer rows are in the same graph; the policy keeps them out.
        assert {d.shop_id for d in result.documents} == {SHOP_A}


@pytest.mark.usefixtures("two_shops")
def test_a_filter_leaving_few_candidates_is_answered_exactly_with_min_k_matches() -> None:
    result = search(SHOP_A, k=50, tags=["rare"])
    assert result.scan == "exact" and len(result.documents) == 30
    assert [d.pk for d in result.documents] == exhaustive(SHOP_A, 50, tags=["rare"])


@pytest.mark.usefixtures("two_shops")
def test_the_hnsw_search_is_an_ordered_scan_of_the_local_index_over_256_dimensions() -> None:
    with in_shop(SHOP_A), CaptureQueriesContext(connection) as captured:
        knowledge_search(vector=padded(QUERY), embedding_model=LOCAL_EMBEDDING_MODEL, k=10)
    [ranked] = [q["sql"] for q in captured.captured_queries if "<=>" in q["sql"]]
    assert "subvector" in ranked and "::vector(256)" in ranked
    state = hnsw_index_state()
    assert state is not None
    plan_settings = {**hnsw_search_settings(state, 10), **INDEX_PLAN_SETTINGS}
    with in_shop(SHOP_A), local_settings(plan_settings), connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + ranked.replace("%", "%%"))
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert f"Index Scan using {LOCAL_INDEX_NAME}" in plan, plan
    assert "Disabled" not in plan, plan


@pytest.mark.usefixtures("two_shops")
def test_another_model_s_vectors_are_not_in_the_local_index_and_search_without_it() -> None:
    with in_shop(SHOP_B):
        result = knowledge_search(vector=padded(QUERY), embedding_model="other-model", k=10)
    assert result.scan in ("exact", "ivfflat") and len(result.documents) == 10
    assert {d.embedding_model for d in result.documents} == {"other-model"}
    with atomic_scope(service_scope()), connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_indexdef(%s::regclass)", [LOCAL_INDEX_NAME])
        definition = cursor.fetchone()[0]
    assert "hnsw" in definition and "subvector(embedding, 1281, 256)" in definition
    assert f"WHERE ((embedding_model)::text = '{LOCAL_EMBEDDING_MODEL}'::text)" in definition


def test_a_text_query_of_another_provider_never_takes_the_local_index(owner_a: Actor, settings: Any) -> None:
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES = 0
    provider = HashingEmbeddingProvider()
    with in_shop(SHOP_A):
        for key in ("a", "b"):
            knowledge_document_save(
                shop_id=SHOP_A, document_key=key, title=f"Doc {key}", content="Tents", actor=None, provider=provider
            )
        result = knowledge_search(query="tents", mode="semantic", provider=provider, k=5)
    assert result.embedding_model == "hashing-v1" and result.scan != "hnsw" and len(result.documents) == 2


# --- the candidate count ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_candidate_count_is_an_index_only_scan_once_the_rows_are_committed_and_vacuumed() -> None:
    """knowledge_base_searchable_idx (migrations 0009, 0013) holds exactly what the count reads: the
    shop, the model (a text query counts its own model's rows), the id, and the predicates
    (current, with a vector) in the index's own WHERE.

    Committed and vacuumed (all-visible pages, fresh statistics), so the plan does not depend on
    what earlier tests left in the statistics: rows inserted inside a test's transaction are
    never all-visible, and the planner then prices heap fetches into an index-only scan."""
    ShopFactory(domain=SHOP_A)
    ShopFactory(domain=SHOP_B)
    seed_local(SHOP_A, "a-", 400, near=0.3)
    seed_local(SHOP_B, "b-", 2000, near=1.0)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) knowledge_base")
    with in_shop(SHOP_A), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true)")
        for model in (None, LOCAL_EMBEDDING_MODEL):
            candidates = KnowledgeDocument.objects.searchable(embedding_model=model).order_by()[:1001]
            plan = candidates.values("pk").explain()
            assert "Index Only Scan using knowledge_base_searchable_idx" in plan, (model, plan)
            assert candidates.count() == 400


def test_over_the_api_a_text_query_above_the_limit_says_it_walked_the_hnsw_index(owner_a: Actor, settings: Any) -> None:
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES = 2
    documents = {
        "refund-damaged": ("Refund policy for damaged goods", "Items that arrive broken are refunded in full."),
        "shipping": ("Shipping times", "Standard delivery takes 3 to 6 business days."),
        "gift-cards": ("Gift cards", "Digital gift cards never expire."),
        "headlamp": ("Beacon 400 Rechargeable Headlamp", "A 400-lumen headlamp with a USB-C battery."),
    }
    with in_shop(SHOP_A):
        for key, (title, content) in documents.items():
            knowledge_document_save(shop_id=SHOP_A, document_key=key, title=title, content=content, actor=None)
    for mode in ("semantic", "hybrid"):
        response = owner_a.client.post(
            "/api/v1/knowledge-documents/search/",
            {"query": "my parcel arrived broken, can I get my money back", "mode": mode, "k": 3},
            format="json",
        )
        body = response.json()
        assert response.status_code == 200, body
        assert (body["scan"], body["embedding_model"], body["count"]) == ("hnsw", LOCAL_EMBEDDING_MODEL, 3), mode
        assert body["results"][0]["document_key"] == "refund-damaged", mode


@pytest.mark.usefixtures("two_shops")
def test_when_the_hnsw_walk_falls_short_the_exact_search_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    from advanced.knowledge.services import search as search_module

    # A walk that keeps one candidate and never iterates: most of its rows are shop B's.
    monkeypatch.setattr(
        search_module, "hnsw_search_settings", lambda state, k: {"hnsw.ef_search": "1", "hnsw.iterative_scan": "off"}
    )
    result = search(SHOP_A, k=20)
    assert result.scan == "hnsw+exact"
    assert [d.pk for d in result.documents] == exhaustive(SHOP_A, 20)


@pytest.mark.usefixtures("two_shops")
def test_a_prepared_statement_s_generic_plan_still_walks_the_hnsw_index() -> None:
    """With DATABASE_PREPARED_STATEMENTS psycopg prepares a statement from its sixth execution,
    and PostgreSQL may then run a generic plan, made without the parameters' values: the index
    expression and the partial predicate must then be in the SQL text, not in parameters."""
    with in_shop(SHOP_A):
        candidates = KnowledgeDocument.objects.searchable(embedding_model=LOCAL_EMBEDDING_MODEL)
        sql, params = local_nearest(candidates, padded(QUERY))[:10].query.sql_with_params()
        numbered = iter(range(1, len(params) + 1))
        generic = re.sub(r"%s", lambda _match: f"${next(numbered)}", sql)
        state = hnsw_index_state()
        assert state is not None
        plan_settings = {**hnsw_search_settings(state, 10), **INDEX_PLAN_SETTINGS}
        with local_settings(plan_settings), connection.cursor() as cursor:
            cursor.execute("EXPLAIN (GENERIC_PLAN) " + generic.replace("%", "%%"))
            plan = "\n".join(row[0] for row in cursor.fetchall())
    assert f"Index Scan using {LOCAL_INDEX_NAME}" in plan, plan
    assert "Disabled" not in plan, plan
