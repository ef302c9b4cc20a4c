"""manage.py rebuild_knowledge_index: lists fitted to the rows, same index name, probes advice."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from advanced.knowledge.factories import KnowledgeDocumentFactory
from advanced.knowledge.services import (
    IvfflatIndexState,
    ivfflat_build_memory_mb,
    ivfflat_index_state,
    ivfflat_search_settings,
    knowledge_index_rebuild,
    recommended_lists,
    recommended_probes,
)
from tenancy.factories import ShopFactory
from tenancy.scope import atomic_scope, service_scope

pytestmark = pytest.mark.django_db

INDEX_DEF = (
    "CREATE INDEX knowledge_base_embedding_idx ON public.knowledge_base USING ivfflat (embedding vector_cosine_ops)"
)


def index_definition() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_indexdef('knowledge_base_embedding_idx'::regclass)")
        return str(cursor.fetchone()[0])


def rebuild(*args: str) -> str:
    out = StringIO()
    call_command("rebuild_knowledge_index", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def documents() -> None:
    shop = ShopFactory()
    KnowledgeDocumentFactory.create_batch(30, shop=shop)
    KnowledgeDocumentFactory.create_batch(5, shop=shop, embedding=None)
    with connection.cursor() as cursor:
        # The factories' deferred foreign key checks would block CREATE INDEX inside the test's
        # transaction; the command itself always runs in a transaction of its own.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_recommended_lists_follow_pgvector_guidance() -> None:
    assert [recommended_lists(rows) for rows in (0, 999, 1000, 5_500, 1_000_000)] == [1, 1, 1, 5, 1000]
    # Above a million rows: sqrt(rows), within pgvector's 32768 maximum.
    assert recommended_lists(4_000_000) == 2000 and recommended_lists(2_000_000_000) == 32768
    assert [recommended_probes(lists) for lists in (1, 3, 9, 100, 1000)] == [1, 2, 3, 10, 32]


@pytest.mark.usefixtures("documents")
def test_dry_run_reports_and_changes_nothing() -> None:
    before = index_definition()
    out = rebuild("--dry-run")
    assert "35" not in out and "30 rows with an embedding" in out
    assert "knowledge_base_embedding_idx has lists=100" in out
    # 73 MB: pgvector's k-means check for one list of 1536 dimensions, with headroom (pinned below).
    assert "Dry run: would rebuild with lists=1 (maintenance_work_mem 73MB); nothing changed." in out
    assert "Probes: searches will use 1" in out
    assert index_definition() == before == f"{INDEX_DEF} WITH (lists='100')"


@pytest.mark.usefixtures("documents")
def test_rebuild_fits_lists_to_the_rows_and_keeps_the_index_definition() -> None:
    out = rebuild()
    assert "Recreated knowledge_base_embedding_idx: lists 100 -> 1." in out
    assert index_definition() == f"{INDEX_DEF} WITH (lists='1')"
    state = ivfflat_index_state()
    assert state is not None and state.lists == 1 and state.pgvector_version >= (0, 8, 0)


@pytest.mark.usefixtures("documents")
def test_explicit_lists_then_the_same_lists_again_is_a_reindex() -> None:
    assert "lists 100 -> 3." in rebuild("--lists", "3")
    assert "Reindexed knowledge_base_embedding_idx: lists 3 -> 3." in rebuild("--lists", "3")
    assert index_definition() == f"{INDEX_DEF} WITH (lists='3')"


@pytest.mark.usefixtures("documents")
def test_probes_option_is_checked_against_the_new_lists() -> None:
    out = rebuild("--lists", "9", "--probes", "2")
    assert "Probes: set KNOWLEDGE_IVFFLAT_PROBES=2 (recommended for 9 lists: 3)." in out
    with pytest.raises(CommandError, match="--probes 10 exceeds the index's 9 lists"):
        rebuild("--lists", "9", "--probes", "10")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--lists", "0"), "--lists must be between 1 and 32768; got 0"),
        (("--lists", "40000"), "--lists must be between 1 and 32768; got 40000"),
        (("--probes", "0"), "--probes must be at least 1; got 0"),
        (("--maintenance-work-mem", "lots"), "Rebuilding knowledge_base_embedding_idx failed"),
    ],
)
@pytest.mark.usefixtures("documents")
def test_bad_arguments_are_refused_and_change_nothing(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        rebuild(*args)
    assert index_definition() == f"{INDEX_DEF} WITH (lists='100')"


def test_the_rebuild_refuses_to_run_inside_a_scope() -> None:
    with atomic_scope(service_scope()), pytest.raises(ValueError, match="outside any tenant scope"):
        knowledge_index_rebuild(lists=1)


@pytest.mark.usefixtures("documents")
def test_search_settings_follow_the_rebuilt_index(settings: Any) -> None:
    rebuild("--lists", "9")
    state = ivfflat_index_state()
    assert state is not None
    assert ivfflat_search_settings(state) == {
        "ivfflat.probes": "3",
        "ivfflat.iterative_scan": "relaxed_order",
        "ivfflat.max_probes": "9",
    }
    settings.KNOWLEDGE_IVFFLAT_PROBES = 5
    settings.KNOWLEDGE_IVFFLAT_MAX_PROBES = 6
    assert ivfflat_search_settings(state)["ivfflat.probes"] == "5"
    assert ivfflat_search_settings(state)["ivfflat.max_probes"] == "6"
    settings.KNOWLEDGE_IVFFLAT_PROBES = 50
    assert ivfflat_search_settings(state)["ivfflat.probes"] == "9"
    # Before pgvector 0.8 there is no iterative scan: only every list guarantees k rows.
    assert ivfflat_search_settings(IvfflatIndexState(lists=9, pgvector_version=(0, 7, 4))) == {"ivfflat.probes": "9"}


@pytest.mark.usefixtures("documents")
def test_the_rebuild_leaves_the_migration_state_alone() -> None:
    rebuild("--lists", "2")
    # The autodetector compares models with migrations, never with the physical index.
    call_command("makemigrations", "advanced", "--check", "--dry-run", stdout=StringIO())


def maintenance_work_mem() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('maintenance_work_mem')")
        return str(cursor.fetchone()[0])


def test_build_memory_follows_pgvectors_kmeans_check() -> None:
    # pgvector refused lists=200 at 200,000 rows with 64MB: "memory required is 71 MB".
    assert 71 < ivfflat_build_memory_mb(200) < 100
    # 10,000 samples at least (61.5 MB of 1536-d vectors), then 50 a list.
    assert ivfflat_build_memory_mb(1) == ivfflat_build_memory_mb(3) == 73
    assert 500 < ivfflat_build_memory_mb(1000) < 700
    assert ivfflat_build_memory_mb(1000, dimensions=768) < ivfflat_build_memory_mb(1000)


@pytest.mark.usefixtures("documents")
def test_the_build_runs_with_memory_sized_for_it_and_restores_the_session() -> None:
    before = maintenance_work_mem()
    with CaptureQueriesContext(connection) as captured:
        result = knowledge_index_rebuild(lists=3)
    # pgvector's own sum for 3 lists of 1536-d vectors (10,000 samples at least: 61.5 MB), with
    # the headroom: pinned, not recomputed by the function under test.
    assert result.maintenance_work_mem == "73MB"
    sizing = [q["sql"] for q in captured.captured_queries if "set_config" in q["sql"] and "maintenance" in q["sql"]]
    assert f"'{result.maintenance_work_mem}'" in sizing[0]
    assert maintenance_work_mem() == before


@pytest.mark.usefixtures("documents")
def test_a_server_with_more_memory_keeps_its_setting_and_the_option_overrides() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
    assert knowledge_index_rebuild(lists=2, dry_run=True).maintenance_work_mem == "1GB"
    assert "lists 100 -> 2." in rebuild("--lists", "2", "--maintenance-work-mem", "200MB")
    assert knowledge_index_rebuild(lists=2, maintenance_work_mem="300MB").maintenance_work_mem == "300MB"


@pytest.mark.usefixtures("documents")
def test_memory_above_the_cap_is_refused_with_advice_unless_given(settings: Any) -> None:
    settings.KNOWLEDGE_INDEX_BUILD_MAX_MEMORY_MB = 50
    message = "needs about 73 MB of maintenance_work_mem, above KNOWLEDGE_INDEX_BUILD_MAX_MEMORY_MB=50"
    with pytest.raises(CommandError, match=message):
        rebuild("--lists", "2")
    assert index_definition() == f"{INDEX_DEF} WITH (lists='100')"
    assert "lists 100 -> 2." in rebuild("--lists", "2", "--maintenance-work-mem", "100MB")
