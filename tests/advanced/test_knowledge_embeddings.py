"""Embedding providers: the offline hashing embedder, and the OpenAI client against a local server."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from advanced.knowledge.embeddings import (
    EMBEDDING_DIMENSIONS,
    EmbeddingError,
    HashingEmbeddingProvider,
    LocalEmbeddingProvider,
    OpenAIEmbeddingProvider,
    document_text,
    embedding_provider,
    normalize_text,
)
from advanced.knowledge.models import EMBEDDING_DIMENSIONS as MODEL_DIMENSIONS
from tests.fixtures.embeddings import FakeOpenAI


def cosine_distance(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return 1.0 - dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


# --- hashing ------------------------------------------------------------------------------


def test_hashing_dimensions_match_the_column() -> None:
    assert EMBEDDING_DIMENSIONS == MODEL_DIMENSIONS == 1536
    [vector] = HashingEmbeddingProvider().embed(["Free shipping on orders over $50"])
    assert len(vector) == 1536 and all(isinstance(v, float) for v in vector)


def test_hashing_vectors_are_l2_normalised() -> None:
    texts = ["a", "Returns within 30 days", "x" * 5000, "Größe: 42 — ÜBERGRÖSSE?"]
    for vector in HashingEmbeddingProvider().embed(texts):
        assert math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0, abs=1e-12)


def test_hashing_is_deterministic_and_ignores_case_and_whitespace() -> None:
    provider = HashingEmbeddingProvider()
    first = provider.embed_one("Returns are accepted within 30 days.")
    assert provider.embed_one("Returns are accepted within 30 days.") == first
    assert HashingEmbeddingProvider().embed_one("  RETURNS are   accepted\nwithin 30 DAYS. ") == first
    assert normalize_text("  A\tb\n\nC ") == "a b c"


HASH_SCRIPT = """
import hashlib, sys
from advanced.knowledge.embeddings import HashingEmbeddingProvider
vector = HashingEmbeddingProvider().embed_one("Shipping to Canada takes 5-7 business days")
sys.stdout.write(hashlib.sha256(repr(vector).encode()).hexdigest())
"""


def test_hashing_is_the_same_in_processes_with_different_hash_seeds() -> None:
    # Python's hash() of str changes per process (PYTHONHASHSEED); the embedder must not use it.
    digests = set()
    for seed in ("1", "2", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", HASH_SCRIPT], capture_output=True, text=True, check=True, env=env, timeout=60
        )
        digests.add(out.stdout)
    assert len(digests) == 1, digests


def test_similar_texts_are_closer_than_unrelated_ones() -> None:
    provider = HashingEmbeddingProvider()
    anchor, paraphrase, typo, unrelated = provider.embed(
        [
            "How long does shipping to Canada take?",
            "Shipping times to Canada: how long it takes",
            "How long does shiping to Canda take?",
            "Our brand voice is playful, warm and a little cheeky.",
        ]
    )
    assert cosine_distance(anchor, paraphrase) < cosine_distance(anchor, unrelated)
    # Character n-grams make misspellings land near the original.
    assert cosine_distance(anchor, typo) < cosine_distance(anchor, paraphrase) < 0.8
    assert cosine_distance(anchor, unrelated) > 0.85


def test_similarity_ranks_a_small_corpus_sensibly() -> None:
    provider = HashingEmbeddingProvider()
    corpus = {
        "returns": "Returns and refunds: items can be returned within 30 days for a full refund.",
        "shipping": "Shipping policy: we ship worldwide; delivery takes 3-7 business days.",
        "sizing": "Size guide: our shirts run small, order one size up.",
        "brand": "Brand voice: friendly, concise, never pushy.",
    }
    vectors = dict(zip(corpus, provider.embed(list(corpus.values())), strict=True))
    for query, expected in [
        ("can I return an item for a refund?", "returns"),
        ("how many days does delivery take", "shipping"),
        ("which size should I order", "sizing"),
    ]:
        q = provider.embed_one(query)
        assert min(vectors, key=lambda key: cosine_distance(q, vectors[key])) == expected, query


def test_hashing_refuses_an_empty_text() -> None:
    provider = HashingEmbeddingProvider()
    with pytest.raises(EmbeddingError, match="empty"):
        provider.embed(["ok", "  \n "])
    # A single punctuation mark is still text: the padded 3-gram " ? " embeds it.
    assert len(provider.embed_one("?")) == 1536


def test_document_text_joins_title_and_content() -> None:
    assert document_text(title=" Returns ", content="30 days.\n") == "Returns\n\n30 days."


# --- OpenAI against a local server --------------------------------------------------------


def _openai(fake: FakeOpenAI, **kwargs: Any) -> OpenAIEmbeddingProvider:
    options: dict[str, Any] = {"api_key": "sk-test", "base_url": fake.url + "/", "backoff": 0.0, **kwargs}
    return OpenAIEmbeddingProvider(**options)


def test_openai_provider_posts_batches_and_keeps_input_order(fake_openai: FakeOpenAI) -> None:
    texts = [f"document number {i}" for i in range(5)]
    vectors = _openai(fake_openai, batch_size=2).embed(texts)
    assert vectors == HashingEmbeddingProvider().embed(texts)
    assert [len(r["body"]["input"]) for r in fake_openai.requests] == [2, 2, 1]
    first = fake_openai.requests[0]
    assert first["path"] == "/v1/embeddings" and first["auth"] == "Bearer sk-test"
    assert first["body"] == {
        "model": "text-embedding-3-small",
        "input": texts[:2],
        "dimensions": 1536,
        "encoding_format": "float",
    }


def test_openai_provider_retries_transient_failures(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = [503, 429]
    assert len(_openai(fake_openai, retries=2).embed_one("hello")) == 1536
    assert len(fake_openai.requests) == 3


def test_openai_provider_gives_up_with_the_servers_message(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = [500, 500, 500]
    with pytest.raises(EmbeddingError, match=r"HTTP 500: scripted failure 500"):
        _openai(fake_openai, retries=2).embed_one("hello")
    assert len(fake_openai.requests) == 3


def test_openai_provider_reports_a_refused_key_without_retrying(fake_openai: FakeOpenAI) -> None:
    with pytest.raises(EmbeddingError, match=r"HTTP 401: Incorrect API key provided"):
        _openai(fake_openai, api_key="sk-wrong").embed_one("hello")
    assert len(fake_openai.requests) == 1


def test_openai_provider_refuses_wrong_dimensions(fake_openai: FakeOpenAI) -> None:
    fake_openai.dimensions_override = 512
    with pytest.raises(EmbeddingError, match=r"returned 512 dimensions .* expected 1536"):
        _openai(fake_openai).embed_one("hello")


@pytest.mark.parametrize(
    "raw", [b"not json", b'{"data": [{"index": 0}]}', b'{"data": []}', b'{"data": [{"index": 0, "embedding": "x"}]}']
)
def test_openai_provider_refuses_a_malformed_answer(fake_openai: FakeOpenAI, raw: bytes) -> None:
    fake_openai.raw_body = raw
    with pytest.raises(EmbeddingError, match=r"Malformed answer|returned 0 embeddings"):
        _openai(fake_openai).embed_one("hello")


def test_openai_provider_reports_an_unreachable_endpoint() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()  # nothing listens on the port any more
    provider = OpenAIEmbeddingProvider(api_key="sk-test", base_url=f"http://127.0.0.1:{port}/v1", retries=1, backoff=0)
    with pytest.raises(EmbeddingError, match="unreachable"):
        provider.embed_one("hello")


def test_openai_provider_checks_its_configuration() -> None:
    with pytest.raises(EmbeddingError, match="OPENAI_API_KEY"):
        OpenAIEmbeddingProvider(api_key="")
    with pytest.raises(EmbeddingError, match="batch_size"):
        OpenAIEmbeddingProvider(api_key="k", batch_size=0)
    with pytest.raises(EmbeddingError, match="empty text"):
        OpenAIEmbeddingProvider(api_key="k").embed(["fine", " "])


def test_settings_choose_the_provider(settings: Any, fake_openai: FakeOpenAI) -> None:
    settings.EMBEDDING_PROVIDER, settings.OPENAI_API_KEY = "local", "sk-test"
    assert isinstance(embedding_provider(), LocalEmbeddingProvider)
    settings.EMBEDDING_PROVIDER = "hashing"
    assert isinstance(embedding_provider(), HashingEmbeddingProvider)
    settings.EMBEDDING_PROVIDER = "openai"
    settings.OPENAI_BASE_URL = fake_openai.url
    settings.EMBEDDING_MODEL = "text-embedding-3-large"
    provider = embedding_provider()
    assert isinstance(provider, OpenAIEmbeddingProvider)
    assert (provider.name, provider.model) == ("openai", "text-embedding-3-large")
    provider.embed_one("hello")
    assert fake_openai.requests[0]["body"]["model"] == "text-embedding-3-large"


def test_embed_array_gives_every_provider_s_vectors_as_float32_rows(fake_openai: FakeOpenAI) -> None:
    texts = ["Free shipping over $75", "Refund policy for damaged goods", "Kestrel 50 rain cover"]
    for provider in (LocalEmbeddingProvider(), HashingEmbeddingProvider(), _openai(fake_openai)):
        array = provider.embed_array(texts)
        assert array.dtype == np.float32 and array.shape == (3, MODEL_DIMENSIONS), provider.name
        assert np.allclose(array, np.asarray(provider.embed(texts)), rtol=0, atol=1e-7), provider.name
        assert provider.embed_array([]).shape == (0, MODEL_DIMENSIONS), provider.name
    with pytest.raises(EmbeddingError, match="empty text"):
        LocalEmbeddingProvider().embed_array(["fine", " "])
