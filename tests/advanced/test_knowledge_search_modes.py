"""The local embedding model, keyword and hybrid search, and re-embedding.

These tests use the real WordLlama model (loaded once per process, ~1 s) on a handful of
texts; no provider is mocked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.urls import reverse

from advanced.knowledge.embeddings import EmbeddingError, HashingEmbeddingProvider, LocalEmbeddingProvider
from advanced.knowledge.factories import unit_vector
from advanced.knowledge.services import (
    KnowledgeSearchHit,
    knowledge_document_save,
    knowledge_reembed_batch,
    knowledge_search,
    reciprocal_rank_fusion,
)
from advanced.models import KnowledgeDocument
from tenancy.factories import ShopFactory, UserFactory
from tenancy.scope import atomic_scope, service_scope, shop_scope
from tests.fixtures.api import assert_error
from tests.fixtures.tenants import SHOP_A, SHOP_B, Actor

SEARCH = "/api/v1/knowledge-documents/search/"
LOCAL_MODEL = "wordllama-l2_supercat-256"

STORE = {
    "refund-damaged": (
        "Refund policy for damaged goods",
        "If an item arrives damaged or defective, contact us within 30 days for a full refund.",
        "policy",
        ["returns"],
    ),
    "shipping": (
        "Shipping times",
        "Standard ground delivery takes 3 to 6 business days within the United States.",
        "policy",
        ["shipping"],
    ),
    "gift-cards": ("Gift cards", "Digital gift cards never expire and carry no fees.", "faq", ["payments"]),
    "kestrel-35": (
        "Kestrel 35 Daypack",
        "SKU NW-PCK-3512. A 35-litre pack for day hikes with hip belt pockets.",
        "product",
        ["packs"],
    ),
    "kestrel-50": (
        "Kestrel 50 Trekking Backpack",
        "SKU NW-PCK-5012. A 50-litre backpack for multi-day treks with a rain cover.",
        "product",
        ["packs"],
    ),
}


@contextmanager
def in_shop(shop: str) -> Iterator[None]:
    with atomic_scope(shop_scope(shop=shop, subject=None, member_role="owner")):
        yield


def save_store(shop: str, provider: Any = None, keys: tuple[str, ...] = tuple(STORE)) -> None:
    with in_shop(shop):
        for key in keys:
            title, content, document_type, tags = STORE[key]
            knowledge_document_save(
                shop_id=shop,
                document_key=key,
                title=title,
                content=content,
                document_type=document_type,
                tags=tags,
                actor=None,
                provider=provider,
            )


def post(actor: Actor, **body: Any) -> Any:
    return actor.client.post(SEARCH, body, format="json")


def stored(shop: str) -> list[tuple[str, int, bool, str, bool, str]]:
    """(key, version, is_current, embedding_model, vector missing, search_language) of every row."""
    with atomic_scope(service_scope()):
        rows = KnowledgeDocument.objects.filter(shop_id=shop).order_by("document_key", "version")
        return [
            (r.document_key, r.version, r.is_current, r.embedding_model, r.embedding is None, r.search_language)
            for r in rows
        ]


# --- the local model ----------------------------------------------------------------------


def test_local_vectors_are_normalised_256_model_dimensions_padded_in_front() -> None:
    provider = LocalEmbeddingProvider()
    first, second = provider.embed(["Free shipping over $75", "Free shipping over $75"])
    vector = np.asarray(first)
    assert vector.shape == (1536,) and first == second
    assert not vector[:-256].any() and np.count_nonzero(vector[-256:]) > 200
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(EmbeddingError, match="empty text"):
        provider.embed(["fine", "  "])


def test_local_model_relates_a_paraphrase_to_its_document_and_not_to_others() -> None:
    provider = LocalEmbeddingProvider()
    refund, shipping, gift = (
        np.asarray(v)
        for v in provider.embed(
            [
                "Refund policy for damaged goods. If an item arrives damaged, contact us for a full refund.",
                "Shipping times. Standard delivery takes 3 to 6 business days.",
                "Gift cards never expire.",
            ]
        )
    )
    question = np.asarray(provider.embed_one("can I get my money back if the product came cracked"))
    assert question @ refund > max(question @ shipping, question @ gift) + 0.2


def embed_offline(code: str) -> list[str]:
    """What a child process prints after running `code` (which leaves a vector in `v`) with
    every socket connection failing and the model hubs offline: a model must come from its
    wheel alone."""
    script = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network disabled by the test')\n"
        "socket.socket.connect = refuse\nsocket.create_connection = refuse\n"
        f"{code}\n"
        "print(len(v), round(sum(x * x for x in v), 3))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HOME": "/nonexistent"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_local_model_loads_and_embeds_with_the_network_unavailable() -> None:
    code = (
        "from advanced.knowledge.embeddings import LocalEmbeddingProvider\n"
        "v = LocalEmbeddingProvider().embed_one('where is my parcel')"
    )
    assert embed_offline(code) == ["1536", "1.0"]


def test_a_query_longer_than_the_model_reads_is_truncated_and_says_so() -> None:
    provider = LocalEmbeddingProvider()
    short = provider.embed_query("where is my parcel")
    # "where is my parcel": four words, five tokens in WordLlama's tokenizer (its start token).
    assert (short.truncated, short.tokens) == (False, 5)
    long = provider.embed_query("tent " * 300 + "refund")
    assert (long.truncated, long.tokens) == (True, 256)
    # Only the first 256 tokens count: the word after them changes nothing.
    assert long.vector == provider.embed_query("tent " * 300 + "gift card").vector


# --- search modes over the API ------------------------------------------------------------


def test_semantic_search_answers_a_paraphrase_with_the_local_model(owner_a: Actor) -> None:
    save_store(SHOP_A)
    body = post(owner_a, query="can I get my money back if the product came cracked", mode="semantic", k=2).json()
    assert (body["mode"], body["embedding_model"], body["scan"]) == ("semantic", LOCAL_MODEL, "exact")
    assert body["results"][0]["document_key"] == "refund-damaged"
    assert body["query_truncated"] is False and body["query_tokens"] > 0
    assert all(r["keyword_rank"] is None and r["score"] == pytest.approx(1 - r["distance"]) for r in body["results"])


def test_keyword_search_finds_a_sku_and_returns_only_matching_documents(owner_a: Actor) -> None:
    save_store(SHOP_A)
    body = post(owner_a, query="NW-PCK-5012", mode="keyword").json()
    assert (body["mode"], body["embedding_model"], body["scan"], body["query_tokens"]) == ("keyword", None, None, None)
    # min(k, matches): one document holds the SKU, not min(k, shop size).
    assert [r["document_key"] for r in body["results"]] == ["kestrel-50"] and body["count"] == 1
    assert body["results"][0]["distance"] is None and body["results"][0]["keyword_rank"] > 0


def test_keyword_search_ranks_by_the_share_of_query_words_a_document_holds(owner_a: Actor) -> None:
    save_store(SHOP_A)
    results = post(owner_a, query="Kestrel rain cover", mode="keyword").json()["results"]
    # Both packs say "Kestrel"; only the 50 also has the rain cover.
    assert [r["document_key"] for r in results] == ["kestrel-50", "kestrel-35"]


def test_keyword_coverage_counts_lexemes_holding_a_quote(owner_a: Actor) -> None:
    # The parser makes lexemes such as "shop.example.com/o'neil" of a URL: each query lexeme is
    # matched as quoted tsquery input, so a quote in it is neither a syntax error nor a miss.
    save_store(SHOP_A, keys=("shipping",))
    with in_shop(SHOP_A):
        knowledge_document_save(
            shop_id=SHOP_A,
            document_key="links",
            title="Links",
            content="See shop.example.com/o'neil\\x?y=1 for sizes.",
            actor=None,
        )
    body = post(owner_a, query="shop.example.com/o'neil\\x?y=1 sizes", mode="keyword").json()
    assert [r["document_key"] for r in body["results"]] == ["links"]
    assert body["results"][0]["keyword_rank"] > 0
    # Stop words only: no lexeme, no match, no error.
    assert post(owner_a, query="the and of it", mode="keyword").json()["count"] == 0


def test_hybrid_is_the_default_for_text_and_puts_the_exact_product_first(owner_a: Actor) -> None:
    save_store(SHOP_A)
    body = post(owner_a, query="Kestrel 50", k=3).json()
    assert (body["mode"], body["embedding_model"]) == ("hybrid", LOCAL_MODEL)
    assert body["results"][0]["document_key"] == "kestrel-50" and body["count"] == 3
    first = body["results"][0]
    assert first["distance"] is not None and first["keyword_rank"] is not None
    assert [r["score"] for r in body["results"]] == sorted((r["score"] for r in body["results"]), reverse=True)


def test_hybrid_returns_min_k_and_candidates_even_when_no_word_matches(owner_a: Actor) -> None:
    save_store(SHOP_A)
    body = post(owner_a, query="zzyzx qwertyuiop", k=10).json()
    assert body["count"] == len(STORE) and {r["keyword_rank"] for r in body["results"]} == {None}


def test_keyword_and_hybrid_apply_the_tag_and_type_filters(owner_a: Actor) -> None:
    save_store(SHOP_A)
    for mode in ("keyword", "hybrid"):
        body = post(owner_a, query="Kestrel pack refund", mode=mode, tags=["packs"], document_type="product").json()
        assert {r["document_key"] for r in body["results"]} == {"kestrel-35", "kestrel-50"}, mode
    # Unfiltered, "refund damaged" finds the damaged-goods policy first in both modes; filtered to
    # FAQs, keyword search has no document left that has the words, and hybrid returns the one FAQ
    # through its semantic list.
    for mode in ("keyword", "hybrid"):
        body = post(owner_a, query="refund damaged", mode=mode).json()
        assert body["results"][0]["document_key"] == "refund-damaged", mode
    assert post(owner_a, query="refund damaged", mode="keyword", document_type="faq").json()["results"] == []
    body = post(owner_a, query="refund damaged", mode="hybrid", document_type="faq").json()
    assert [r["document_key"] for r in body["results"]] == ["gift-cards"]


def test_keyword_search_never_sees_another_shop(owner_a: Actor, owner_b: Actor) -> None:
    save_store(SHOP_A, keys=("kestrel-50",))
    save_store(SHOP_B, keys=("shipping",))
    assert post(owner_b, query="NW-PCK-5012", mode="keyword").json()["count"] == 0
    hybrid = post(owner_b, query="NW-PCK-5012 Kestrel", mode="hybrid").json()["results"]
    assert [r["document_key"] for r in hybrid] == ["shipping"]
    with in_shop(SHOP_B):
        assert knowledge_search(query="Kestrel", mode="keyword").documents == []


def test_a_long_query_is_truncated_and_the_answer_says_so(owner_a: Actor) -> None:
    save_store(SHOP_A, keys=("shipping",))
    body = post(owner_a, query="how long does shipping take " * 80).json()
    assert body["query_truncated"] is True and body["query_tokens"] == 256 and body["count"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   \n\t "}, "query"),
        ({"query": "refund", "mode": "fuzzy"}, "mode"),
        ({"query": "refund", "mode": ""}, "mode"),
        ({"query": "refund", "k": 0}, "k"),
        ({"query": "refund", "k": 101}, "k"),
        ({"query": "refund", "k": "ten"}, "k"),
        ({"vector": [1.0] + [0.0] * 1535, "mode": "keyword"}, "mode"),
        ({"vector": [1.0] + [0.0] * 1535, "mode": "hybrid"}, "mode"),
    ],
)
def test_bad_search_input_is_a_400_naming_the_field(owner_a: Actor, body: dict[str, Any], field: str) -> None:
    assert_error(post(owner_a, **body), 400, field=field)


def test_service_refuses_an_unknown_mode_and_a_vector_in_keyword_mode(owner_a: Actor) -> None:
    from tenancy.errors import Refused

    with in_shop(SHOP_A), pytest.raises(Refused) as unknown:
        knowledge_search(query="refund", mode="fuzzy")
    assert "mode" in unknown.value.detail
    with in_shop(SHOP_A), pytest.raises(Refused) as vector:
        knowledge_search(vector=[1.0] * 1536, mode="keyword")
    assert "mode" in vector.value.detail


def hit(pk: int, key: str, *, distance: float | None = None, keyword_rank: float | None = None) -> KnowledgeSearchHit:
    """A hit of one list: semantic (`distance`) or keyword (`keyword_rank`)."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return KnowledgeSearchHit(
        id=pk,
        shop_id=SHOP_A,
        document_key=key,
        version=1,
        title=key,
        content=key,
        document_type="note",
        tags=(),
        source_url="",
        embedding_model=LOCAL_MODEL,
        created_at=now,
        updated_at=now,
        distance=distance,
        distance_model=None if distance is None else LOCAL_MODEL,
        keyword_rank=keyword_rank,
        score=(1.0 - distance) if distance is not None else (keyword_rank or 0.0),
    )


def test_reciprocal_rank_fusion_sums_both_lists_and_keeps_each_side_s_evidence() -> None:
    a, b = hit(1, "a", distance=0.1), hit(2, "b", distance=0.2)
    b_kw, c_kw = hit(2, "b", keyword_rank=0.5), hit(3, "c", keyword_rank=0.4)
    fused = reciprocal_rank_fusion([a, b], [b_kw, c_kw])
    # b: 1/62 + 1/61 beats a: 1/61 and c: 1/62.
    assert [d.document_key for d in fused] == ["b", "a", "c"]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert (fused[0].distance, fused[0].keyword_rank) == (0.2, 0.5)
    assert (fused[2].distance, fused[2].keyword_rank) == (None, 0.4)


# --- storage ------------------------------------------------------------------------------


def test_vectors_are_stored_compressed_out_of_the_row_and_the_search_vector_in_it(owner_a: Actor) -> None:
    save_store(SHOP_A, keys=("shipping",))
    with in_shop(SHOP_A):
        # A dense 1536-d vector, such as OpenAI's.
        knowledge_document_save(
            shop_id=SHOP_A, document_key="dense", title="Dense", content="x", embedding=unit_vector(1), actor=None
        )
    # Where the values are is read with pg_column_toast_chunk_id (PostgreSQL 17+); the layout
    # that puts them there is in the catalog on any version.
    located = connection.pg_version >= 170000
    where = (
        "pg_column_toast_chunk_id(embedding) IS NOT NULL, pg_column_toast_chunk_id(search_vector) IS NOT NULL"
        if located
        else "true, false"
    )
    with atomic_scope(service_scope()), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT document_key, pg_column_size(embedding), pg_column_compression(embedding), {where},"
            " pg_column_compression(search_vector) FROM knowledge_base WHERE shop_domain = %s ORDER BY document_key",
            [SHOP_A],
        )
        rows = {key: rest for key, *rest in cursor.fetchall()}
        cursor.execute(
            "SELECT attname, attstorage FROM pg_attribute WHERE attrelid = 'knowledge_base'::regclass"
            " AND attname IN ('embedding', 'refined_embedding', 'search_vector')"
        )
        storage = dict(cursor.fetchall())
        cursor.execute("SELECT reloptions FROM pg_class WHERE oid = 'knowledge_base'::regclass")
        options = cursor.fetchone()[0]
    # Compressed and movable out of line; rows toasted down to 1 kB; the tsvector kept in the row.
    assert storage == {"embedding": "x", "refined_embedding": "e", "search_vector": "m"}, storage
    assert "toast_tuple_target=1024" in options, options
    # 1536 floats are 6,152 bytes; the padded local vector compresses to about 1.2 kB, a dense
    # vector does not compress. Both live in TOAST, so a keyword search, which reads every row of
    # the shop, reads ~1 kB rows (migration advanced/0015); the tsvector stays in the row as it is.
    size, compression, vector_out_of_line, tsvector_out_of_line, tsvector_compression = rows["shipping"]
    assert size < 1500 and compression == "pglz" and vector_out_of_line, rows
    assert (tsvector_out_of_line, tsvector_compression) == (False, None), rows
    size, compression, vector_out_of_line, *_ = rows["dense"]
    assert size > 6000 and compression is None and vector_out_of_line, rows


# --- re-embedding -------------------------------------------------------------------------


def test_reembed_moves_every_current_version_to_the_configured_model_and_is_idempotent(
    owner_a: Actor, owner_b: Actor
) -> None:
    hashing = HashingEmbeddingProvider()
    save_store(SHOP_A, provider=hashing, keys=("shipping", "gift-cards"))
    save_store(SHOP_A, provider=hashing, keys=("shipping",))  # version 2 of shipping
    save_store(SHOP_B, provider=hashing, keys=("shipping",))
    out = _call("reembed_knowledge", "--shop", SHOP_A.upper(), "--batch-size", "1")
    assert "2 current versions of shop alpha.myshopify.com to move" in out and "Re-embedded 2 documents" in out
    assert stored(SHOP_A) == [
        ("gift-cards", 1, True, LOCAL_MODEL, False, "english"),
        ("shipping", 1, False, "hashing-v1", False, "english"),
        ("shipping", 2, True, LOCAL_MODEL, False, "english"),
    ]
    assert [row[3] for row in stored(SHOP_B)] == ["hashing-v1"]
    # The stored vector is the model's vector of the row's text.
    with atomic_scope(service_scope()):
        vector = KnowledgeDocument.objects.get(shop_id=SHOP_A, document_key="gift-cards").embedding
    title, content, *_ = STORE["gift-cards"]
    assert list(vector) == pytest.approx(LocalEmbeddingProvider().embed_one(f"{title}\n\n{content}"), abs=1e-6)
    assert "Re-embedded 0 documents" in _call("reembed_knowledge", "--shop", SHOP_A)
    # A text search now reaches them.
    body = post(owner_a, query="how long is delivery", mode="semantic").json()
    assert [r["document_key"] for r in body["results"]] == ["shipping", "gift-cards"]


def test_reembed_all_versions_and_every_shop(owner_a: Actor, owner_b: Actor) -> None:
    hashing = HashingEmbeddingProvider()
    save_store(SHOP_A, provider=hashing, keys=("shipping",))
    save_store(SHOP_A, provider=hashing, keys=("shipping",))
    save_store(SHOP_B, provider=hashing, keys=("gift-cards",))
    out = _call("reembed_knowledge", "--all-versions")
    assert "3 versions of every shop" in out and "Re-embedded 3 documents" in out
    assert {row[3] for row in stored(SHOP_A) + stored(SHOP_B)} == {LOCAL_MODEL}


def test_an_interrupted_reembed_keeps_its_batches_and_the_next_run_finishes(owner_a: Actor) -> None:
    save_store(SHOP_A, provider=HashingEmbeddingProvider(), keys=("shipping", "gift-cards", "kestrel-35"))
    with atomic_scope(service_scope()):
        first = knowledge_reembed_batch(batch_size=1)
    assert first.updated == 1
    assert sorted(row[3] for row in stored(SHOP_A)) == ["hashing-v1", "hashing-v1", LOCAL_MODEL]
    assert "Re-embedded 2 documents" in _call("reembed_knowledge")
    # Never a row without a vector, never two current versions.
    rows = stored(SHOP_A)
    assert not any(row[4] for row in rows) and len({row[0] for row in rows if row[2]}) == len(rows)


def test_reembed_follows_a_change_of_search_language_without_re_embedding(owner_a: Actor, settings: Any) -> None:
    save_store(SHOP_A, keys=("shipping",))
    settings.KNOWLEDGE_SEARCH_LANGUAGE = "simple"
    assert "Re-embedded 1 documents" in _call("reembed_knowledge")
    assert stored(SHOP_A)[0][3:] == (LOCAL_MODEL, False, "simple")
    # "simple" does not stem: "times" no longer matches "time".
    assert post(owner_a, query="time", mode="keyword").json()["count"] == 0
    assert post(owner_a, query="times", mode="keyword").json()["count"] == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--batch-size", "0"), "--batch-size must be between 1 and 10000"),
        (("--batch-size", "10001"), "--batch-size must be between 1 and 10000"),
        (("--shop", "nowhere.myshopify.com"), "No shop 'nowhere.myshopify.com'"),
    ],
)
def test_reembed_refuses_bad_arguments(db: None, arguments: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        _call("reembed_knowledge", *arguments)


def test_admin_action_reembeds_one_shop_and_refuses_a_mixed_selection(db: None, client: Client) -> None:
    staff = UserFactory.create(username="kb-staff", is_staff=True, is_superuser=True)
    client.force_login(staff)
    alpha, bravo = ShopFactory.create(domain=SHOP_A), ShopFactory.create(domain=SHOP_B)
    hashing = HashingEmbeddingProvider()
    save_store(alpha.domain, provider=hashing, keys=("shipping", "gift-cards"))
    save_store(bravo.domain, provider=hashing, keys=("shipping",))
    with atomic_scope(service_scope()):
        ids = dict(KnowledgeDocument.objects.values_list("shop_id", "pk"))
    changelist = reverse("admin:advanced_knowledgedocument_changelist")

    mixed = client.post(changelist, {"action": "reembed_shop", "_selected_action": list(ids.values())}, follow=True)
    assert any("exactly one shop" in str(m) for m in mixed.context["messages"])
    assert {row[3] for row in stored(SHOP_A) + stored(SHOP_B)} == {"hashing-v1"}

    one = client.post(changelist, {"action": "reembed_shop", "_selected_action": [ids[SHOP_A]]}, follow=True)
    assert any(f"Re-embedded 2 document(s) of {SHOP_A} with {LOCAL_MODEL}" in str(m) for m in one.context["messages"])
    assert {row[3] for row in stored(SHOP_A)} == {LOCAL_MODEL}
    assert {row[3] for row in stored(SHOP_B)} == {"hashing-v1"}


def _call(*arguments: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*arguments, stdout=out)
    return out.getvalue()


def test_hybrid_fetches_each_list_at_least_k_deep_so_k_above_the_fusion_depth_still_gets_k(owner_a: Actor) -> None:
    provider = HashingEmbeddingProvider()
    with in_shop(SHOP_A):
        for i in range(25):
            knowledge_document_save(
                shop_id=SHOP_A,
                document_key=f"tent-{i}",
                title=f"Tent model {i}",
                content=f"A tent for {i} nights of camping.",
                actor=None,
                provider=provider,
            )
        for k in (5, 10, 20, 25, 40):
            result = knowledge_search(query="tent for camping", k=k, provider=provider)
            assert result.mode == "hybrid" and len(result.documents) == min(k, 25), k
            assert len({d.pk for d in result.documents}) == len(result.documents)
        # At k = 40 both lists went 40 deep: every document holds every lexeme and has a vector,
        # so each result carries both sides' evidence.
        assert all(d.keyword_rank is not None and d.distance is not None for d in result.documents)
