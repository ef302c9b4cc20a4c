"""Knowledge documents are versioned: every save is a new row, history is never edited."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection, connections

from advanced.knowledge.embeddings import EmbeddingError, EmbeddingProvider, LocalEmbeddingProvider, document_text
from advanced.knowledge.factories import KnowledgeDocumentFactory, unit_vector
from advanced.knowledge.services import (
    CLIENT_EMBEDDING_MODEL,
    EmbeddingUnavailable,
    KnowledgeConflict,
    knowledge_document_delete,
    knowledge_document_revise,
    knowledge_document_save,
)
from advanced.models import KnowledgeDocument
from tenancy.errors import Refused
from tenancy.factories import ShopFactory
from tenancy.scope import atomic_scope, service_scope, shop_scope
from tests.fixtures.api import assert_error
from tests.fixtures.embeddings import FakeOpenAI
from tests.fixtures.tenants import SHOP_A, Actor

# The default provider (EMBEDDING_PROVIDER=local).
LOCAL_MODEL = "wordllama-l2_supercat-256"


DOCUMENTS = "/api/v1/knowledge-documents/"
HISTORY = "/api/v1/knowledge-documents/history/"


class FailingProvider(EmbeddingProvider):
    """An embedding service that is down (the boundary the service talks to, not our code)."""

    name = "failing"
    model = "failing-v1"

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        raise EmbeddingError("connection reset by peer")


@contextmanager
def as_owner(actor: Actor) -> Iterator[None]:
    with atomic_scope(shop_scope(shop=actor.shop.domain, subject=str(actor.user.pk), member_role="owner")):
        yield


def versions(key: str, shop: str = SHOP_A) -> list[tuple[int, bool, int | None, int]]:
    """(version, is_current, previous_version_id, id) of every version of a key, oldest first."""
    with atomic_scope(service_scope()):
        return list(
            KnowledgeDocument.objects.filter(shop_id=shop, document_key=key)
            .order_by("version")
            .values_list("version", "is_current", "previous_version_id", "id")
        )


def save(actor: Actor, key: str = "returns-policy", **changes: Any) -> KnowledgeDocument:
    values: dict[str, Any] = {
        "shop_id": actor.shop.domain,
        "document_key": key,
        "title": "Returns",
        "content": "Items can be returned within 30 days.",
        "document_type": "policy",
        "tags": ["returns"],
        "actor": str(actor.user.pk),
        **changes,
    }
    with as_owner(actor):
        return knowledge_document_save(**values)


def assert_chain(rows: list[tuple[int, bool, int | None, int]]) -> None:
    """Versions 1..n, only the last current, each pointing at the one before."""
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1)), rows
    assert [r[1] for r in rows] == [False] * (len(rows) - 1) + [True], rows
    assert [r[2] for r in rows] == [None, *(r[3] for r in rows[:-1])], rows


# --- the service --------------------------------------------------------------------------


def test_first_save_is_version_1_embedded_by_the_local_model(owner_a: Actor) -> None:
    document = save(owner_a)
    assert (document.version, document.is_current, document.previous_version_id) == (1, True, None)
    assert document.embedding_model == LOCAL_MODEL and document.created_by == str(owner_a.user.pk)
    expected = LocalEmbeddingProvider().embed_one(document_text(title="Returns", content=document.content))
    with atomic_scope(service_scope()):
        stored = KnowledgeDocument.objects.get(pk=document.pk)
    assert list(stored.embedding) == pytest.approx(expected, abs=1e-6)


def test_each_save_adds_a_version_and_leaves_history_untouched(owner_a: Actor) -> None:
    first = save(owner_a, title="Returns v1")
    save(owner_a, title="Returns v2", tags=["returns", "refunds"])
    third = save(owner_a, title="Returns v3")
    rows = versions("returns-policy")
    assert_chain(rows)
    assert third.version == 3 and third.previous_version_id == rows[1][3]
    with atomic_scope(service_scope()):
        old = KnowledgeDocument.objects.get(pk=first.pk)
    # The only change an old version ever sees: it is no longer current.
    assert (old.title, old.tags, old.is_current) == ("Returns v1", ["returns"], False)


class CountingProvider(LocalEmbeddingProvider):
    """The local model, counting the texts it is asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.texts = 0

    def embed(self, texts: list[str]) -> list[list[float]]:
        self.texts += len(texts)
        return super().embed(texts)


def test_unchanged_text_reuses_the_vector_of_the_same_model_without_calling_the_provider(owner_a: Actor) -> None:
    first = save(owner_a)
    counting = CountingProvider()
    second = save(owner_a, tags=["returns", "policy"], document_type="faq", provider=counting)
    assert counting.texts == 0 and second.version == 2
    assert second.embedding_model == first.embedding_model == LOCAL_MODEL
    save(owner_a, content="Now 60 days.", provider=counting)
    assert counting.texts == 1
    # Another model never reuses a hashing vector: after a provider switch a save re-embeds.
    failing = FailingProvider()
    with pytest.raises(EmbeddingUnavailable, match="connection reset"):
        save(owner_a, content="Now 60 days.", provider=failing)
    assert failing.calls == 1 and len(versions("returns-policy")) == 3


def test_client_vector_is_stored_with_the_model_it_names(owner_a: Actor) -> None:
    named = save(owner_a, embedding=unit_vector(3), embedding_model="text-embedding-3-large")
    unnamed = save(owner_a, key="sizing", embedding=unit_vector(4))
    assert named.embedding_model == "text-embedding-3-large" and unnamed.embedding_model == CLIENT_EMBEDDING_MODEL


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"document_key": "Not a slug"}, "document_key"),
        ({"document_type": "memo"}, "document_type"),
        ({"title": ""}, "title"),
        ({"source_url": "not a url"}, "source_url"),
        ({"embedding": [0.5] * 3}, "embedding"),
        ({"embedding": [0.0] * 1536}, "embedding"),
        ({"embedding": [float("nan")] * 1536}, "embedding"),
        ({"embedding_model": "mine"}, "embedding_model"),
    ],
)
def test_invalid_document_is_refused_and_nothing_written(owner_a: Actor, changes: dict, field: str) -> None:
    with pytest.raises(Refused) as caught:
        save(owner_a, **changes)
    assert field in caught.value.detail
    with atomic_scope(service_scope()):
        assert KnowledgeDocument.objects.count() == 0


def test_stale_expected_version_is_a_conflict_and_writes_nothing(owner_a: Actor) -> None:
    save(owner_a)
    save(owner_a, title="v2")
    with pytest.raises(KnowledgeConflict, match=r"Version 1 .* no longer current; version 2"):
        save(owner_a, title="edited from v1", expected_version=1)
    assert len(versions("returns-policy")) == 2


def test_revising_history_is_a_conflict(owner_a: Actor) -> None:
    first = save(owner_a)
    save(owner_a, title="v2")
    with as_owner(owner_a):
        old = KnowledgeDocument.objects.get(pk=first.pk)
        with pytest.raises(KnowledgeConflict, match="history"):
            knowledge_document_revise(document=old, changes={"title": "rewrite"}, actor="x")
        with pytest.raises(KnowledgeConflict, match="history"):
            knowledge_document_delete(document=old)
    assert len(versions("returns-policy")) == 2


def test_delete_through_the_current_version_removes_every_version(owner_a: Actor) -> None:
    save(owner_a)
    save(owner_a, key="sizing")
    current = save(owner_a, title="v2")
    with as_owner(owner_a):
        assert knowledge_document_delete(document=current) == 2
    assert versions("returns-policy") == [] and len(versions("sizing")) == 1


# --- concurrent writers -------------------------------------------------------------------


def _concurrent_saves(shop: str, key: str, writers: int) -> list[BaseException]:
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            with atomic_scope(shop_scope(shop=shop, subject=None, member_role="owner")):
                knowledge_document_save(
                    shop_id=shop,
                    document_key=key,
                    title=f"Writer {n}",
                    content=f"Text from writer {n}.",
                    document_type="note",
                    tags=[],
                    embedding=unit_vector(n),
                    actor=f"writer-{n}",
                )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("existing", [0, 1])
def test_concurrent_saves_of_one_key_give_consecutive_versions_and_one_current(existing: int) -> None:
    shop = ShopFactory(domain="race.myshopify.com").domain
    if existing:
        with atomic_scope(service_scope()):
            knowledge_document_save(
                shop_id=shop, document_key="faq", title="Seed", content="Seed.", embedding=unit_vector(99), actor=None
            )
    writers = 8
    assert _concurrent_saves(shop, "faq", writers) == []
    rows = versions("faq", shop)
    assert len(rows) == writers + existing
    assert_chain(rows)


@pytest.mark.django_db(transaction=True)
def test_a_writer_outside_the_service_is_caught_by_the_indexes_and_the_save_retries() -> None:
    """A raw insert (no advisory lock) commits version 1 while the service is inserting its own
    version 1: the unique indexes make the service wait, fail, and retry as version 2."""
    shop = ShopFactory(domain="race.myshopify.com").domain
    inserted, release = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def outsider() -> None:
        try:
            with atomic_scope(service_scope()):
                KnowledgeDocumentFactory(shop_id=shop, document_key="faq", title="Outsider")
                inserted.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    def service() -> None:
        try:
            with atomic_scope(service_scope()):
                outcome["document"] = knowledge_document_save(
                    shop_id=shop, document_key="faq", title="Service", content="Text.", actor=None
                )
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            connections.close_all()

    first = threading.Thread(target=outsider)
    first.start()
    assert inserted.wait(timeout=30)
    second = threading.Thread(target=service)
    second.start()
    # Let the outsider commit only once the service's insert is waiting on its row.
    deadline = time.monotonic() + 30
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'")
            if cursor.fetchone()[0]:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the service never waited on the outsider's row")
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert "error" not in outcome, outcome
    assert outcome["document"].version == 2
    rows = versions("faq", shop)
    assert_chain(rows)
    assert len(rows) == 2


# --- over the API -------------------------------------------------------------------------


def _document(**changes: object) -> dict:
    return {
        "document_key": "returns-policy",
        "title": "Returns",
        "content": "30 days, no questions asked.",
        "document_type": "policy",
        "tags": ["returns"],
        **changes,
    }


def test_post_with_an_existing_key_adds_a_version(owner_a: Actor) -> None:
    first = owner_a.client.post(DOCUMENTS, _document(), format="json")
    assert first.status_code == 201, first.content
    second = owner_a.client.post(DOCUMENTS, _document(content="Now 60 days."), format="json")
    assert second.status_code == 201, second.content
    body = second.json()
    assert (body["version"], body["is_current"], body["previous_version"]) == (2, True, first.json()["id"])
    assert body["has_embedding"] is True and body["embedding_model"] == LOCAL_MODEL
    listed = owner_a.client.get(DOCUMENTS).json()
    assert [r["id"] for r in listed["results"]] == [body["id"]]
    assert owner_a.client.get(f"{DOCUMENTS}{first.json()['id']}/").json()["is_current"] is False


@pytest.mark.parametrize("method", ["patch", "put"])
def test_edit_creates_a_new_version_and_keeps_the_old_one(owner_a: Actor, method: str) -> None:
    old = owner_a.client.post(DOCUMENTS, _document(tags=["returns", "policy"]), format="json").json()
    payload = {"title": "Returns and refunds"} if method == "patch" else _document(title="Returns and refunds")
    response = getattr(owner_a.client, method)(f"{DOCUMENTS}{old['id']}/", payload, format="json")
    assert response.status_code == 200, response.content
    new = response.json()
    assert new["id"] != old["id"]
    assert (new["version"], new["previous_version"], new["title"]) == (2, old["id"], "Returns and refunds")
    # PATCH keeps what it does not name; PUT sent the tags again.
    assert new["tags"] == (["returns", "policy"] if method == "patch" else ["returns"])
    stored_old = owner_a.client.get(f"{DOCUMENTS}{old['id']}/").json()
    assert (stored_old["title"], stored_old["is_current"]) == ("Returns", False)
    assert_chain(versions("returns-policy"))


def test_patch_of_other_fields_keeps_a_client_vector_and_a_text_change_re_embeds(owner_a: Actor) -> None:
    created = owner_a.client.post(
        DOCUMENTS, _document(embedding=unit_vector(5), embedding_model="text-embedding-3-large"), format="json"
    ).json()
    url = f"{DOCUMENTS}{created['id']}/"
    tagged = owner_a.client.patch(url, {"tags": ["returns", "refunds"]}, format="json").json()
    assert tagged["embedding_model"] == "text-embedding-3-large"
    vector = owner_a.client.get(f"{DOCUMENTS}{tagged['id']}/", {"include": "embedding"}).json()["embedding"]
    assert vector == pytest.approx(unit_vector(5), abs=1e-6)
    # A new text needs a new vector, and the server makes it.
    edited = owner_a.client.patch(f"{DOCUMENTS}{tagged['id']}/", {"content": "60 days."}, format="json").json()
    assert (edited["version"], edited["embedding_model"]) == (3, LOCAL_MODEL)
    # PUT replaces the document: a vector it does not send is the server's to make.
    put = owner_a.client.put(f"{DOCUMENTS}{edited['id']}/", _document(), format="json").json()
    assert (put["version"], put["embedding_model"]) == (4, LOCAL_MODEL)


def test_editing_an_old_version_is_409_and_writes_nothing(owner_a: Actor) -> None:
    old = owner_a.client.post(DOCUMENTS, _document(), format="json").json()
    owner_a.client.post(DOCUMENTS, _document(content="v2"), format="json")
    url = f"{DOCUMENTS}{old['id']}/"
    body = assert_error(owner_a.client.patch(url, {"title": "rewrite"}, format="json"), 409, code="conflict")
    assert "history" in body["detail"]
    assert_error(owner_a.client.delete(url), 409, code="conflict")
    assert [r[0] for r in versions("returns-policy")] == [1, 2]


def test_a_document_key_cannot_change(owner_a: Actor) -> None:
    old = owner_a.client.post(DOCUMENTS, _document(), format="json").json()
    response = owner_a.client.patch(f"{DOCUMENTS}{old['id']}/", {"document_key": "other"}, format="json")
    assert_error(response, 400, field="document_key", code="immutable")
    assert len(versions("returns-policy")) == 1 and versions("other") == []


def test_embedding_model_without_embedding_is_400(owner_a: Actor) -> None:
    response = owner_a.client.post(DOCUMENTS, _document(embedding_model="mine"), format="json")
    assert_error(response, 400, field="embedding_model")
    assert versions("returns-policy") == []


def test_history_lists_every_version_newest_first(owner_a: Actor, owner_b: Actor, viewer_a: Actor) -> None:
    ids = [owner_a.client.post(DOCUMENTS, _document(content=f"v{n}"), format="json").json()["id"] for n in range(3)]
    owner_a.client.post(DOCUMENTS, _document(document_key="sizing"), format="json")
    # Shop B's document under the same key is not part of A's history.
    owner_b.client.post(DOCUMENTS, _document(), format="json")
    response = viewer_a.client.get(f"{HISTORY}returns-policy/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["count"] == 3
    assert [r["id"] for r in body["results"]] == ids[::-1]
    assert [(r["version"], r["is_current"]) for r in body["results"]] == [(3, True), (2, False), (1, False)]
    assert all("embedding" not in r and r["has_embedding"] for r in body["results"])
    assert owner_b.client.get(f"{HISTORY}returns-policy/").json()["count"] == 1


def test_history_of_an_unknown_key_is_404(owner_a: Actor, owner_b: Actor) -> None:
    owner_b.client.post(DOCUMENTS, _document(document_key="only-in-b"), format="json")
    assert_error(owner_a.client.get(f"{HISTORY}nothing-here/"), 404)
    assert_error(owner_a.client.get(f"{HISTORY}only-in-b/"), 404)


def test_delete_of_the_current_version_removes_the_document(owner_a: Actor) -> None:
    owner_a.client.post(DOCUMENTS, _document(), format="json")
    current = owner_a.client.post(DOCUMENTS, _document(content="v2"), format="json").json()
    assert owner_a.client.delete(f"{DOCUMENTS}{current['id']}/").status_code == 204
    assert versions("returns-policy") == []
    assert_error(owner_a.client.get(f"{HISTORY}returns-policy/"), 404)


def test_viewer_cannot_write_documents(viewer_a: Actor) -> None:
    assert_error(viewer_a.client.post(DOCUMENTS, _document(), format="json"), 403)
    assert versions("returns-policy") == []


def test_documents_are_embedded_by_openai_when_configured(
    owner_a: Actor, settings: Any, fake_openai: FakeOpenAI
) -> None:
    settings.EMBEDDING_PROVIDER, settings.OPENAI_API_KEY = "openai", "sk-test"
    settings.OPENAI_BASE_URL = fake_openai.url
    response = owner_a.client.post(DOCUMENTS, _document(), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["embedding_model"] == "text-embedding-3-small"
    assert fake_openai.requests[0]["body"]["input"] == ["Returns\n\n30 days, no questions asked."]


def test_provider_failure_is_502_and_writes_nothing(owner_a: Actor, settings: Any, fake_openai: FakeOpenAI) -> None:
    settings.EMBEDDING_PROVIDER, settings.OPENAI_API_KEY = "openai", "sk-wrong"
    settings.OPENAI_BASE_URL = fake_openai.url
    body = assert_error(owner_a.client.post(DOCUMENTS, _document(), format="json"), 502, code="embedding_failed")
    assert "Incorrect API key" in body["detail"]
    assert versions("returns-policy") == []
