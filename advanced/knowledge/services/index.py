"""The vector indexes: the IVFFlat index's physical state, the settings a search probes it
with, the exact/index break-even, and its rebuild with lists fitted to the rows; the local
model's HNSW index (advanced.knowledge.models.LOCAL_INDEX_NAME) and the settings a search walks it with."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from psycopg.pq import TransactionStatus

from tenancy.scope import active_scope, atomic_scope, service_scope

from ..models import EMBEDDING_DIMENSIONS, LOCAL_INDEX_NAME, REFINED_INDEX_NAME, KnowledgeDocument

INDEX_NAME = "knowledge_base_embedding_idx"
# pgvector's bounds for `lists` (IVFFLAT_MIN_LISTS, IVFFLAT_MAX_LISTS) and its default.
IVFFLAT_MIN_LISTS = 1
IVFFLAT_MAX_LISTS = 32768
IVFFLAT_DEFAULT_LISTS = 100
# pgvector guidance: lists = rows / 1000 up to a million rows, sqrt(rows) above.
ROWS_PER_LIST = 1000
SQRT_LISTS_ABOVE_ROWS = 1_000_000
# pgvector 0.8.0 added iterative index scans.
ITERATIVE_SCAN_VERSION = (0, 8, 0)
FLOAT32_MAX = 3.4028234663852886e38
# The exact/index break-even (bench/vectors.py, 2 shared cores, pgvector 0.8, 1536-d): an exact
# candidate reads ~4.8 buffers (heap page, TOAST index and chunks; 48,220 for 10,000 rows,
# 120 ms), a vector the index probes ~1 (its page; 13,000-18,000 for 14 lists of 1,000, 40-52
# ms): one candidate costs about 4 probed vectors.
INDEX_VECTORS_PER_CANDIDATE = 4
# Below this an exact search costs a few milliseconds and is never approximate.
EXACT_SEARCH_MIN_CANDIDATES = 1000
# The planner prices an IVFFlat scan that must read whole lists above a bitmap scan of a
# shop's rows or a parallel sequential scan + top-N sort of the shared table, and then sorts
# every candidate (540 ms for a 100,000-document shop, against 53 ms on the index). The index
# branch leaves it the ordered index scan as the only plan without a disabled node; the
# shop's policy and the filters are then applied to the rows the iterative scan yields.
INDEX_PLAN_SETTINGS = {
    "enable_seqscan": "off",
    "enable_bitmapscan": "off",
    "enable_sort": "off",
    "max_parallel_workers_per_gather": "0",
}


@dataclass(frozen=True)
class IvfflatIndexState:
    lists: int
    pgvector_version: tuple[int, ...]
    # Vectors in the index as the statistics know them (pg_class.reltuples; 0: unknown).
    rows: int = 0


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def ivfflat_index_state() -> IvfflatIndexState | None:
    """The physical index's `lists` and the installed pgvector version (None: no index)."""
    with connection.cursor() as cursor:
        # The cast loads pgvector's library in this session, which defines the ivfflat.*
        # settings: until then current_setting() would not know them.
        cursor.execute(
            """
            SELECT e.extversion, c.reloptions, '[1]'::vector IS NOT NULL,
                   -- -1 until the index is built, vacuumed or analyzed: then the table's.
                   GREATEST(c.reltuples, t.reltuples, 0)::bigint
              FROM pg_extension e
              JOIN pg_class c ON c.oid = to_regclass(%s)
              JOIN pg_index i ON i.indexrelid = c.oid
              JOIN pg_class t ON t.oid = i.indrelid
             WHERE e.extname = 'vector'
            """,
            [INDEX_NAME],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    options = dict(str(option).split("=", 1) for option in row[1] or [])
    return IvfflatIndexState(
        lists=int(options.get("lists", IVFFLAT_DEFAULT_LISTS)),
        pgvector_version=_version_tuple(str(row[0])),
        rows=int(row[3]),
    )


# --- the local model's HNSW index -------------------------------------------------------

# The candidate list a search keeps while walking the graph (pgvector's default is 40). The
# 10,000-document shop of bench/retrieval.py is full of near-duplicate product pages, where a
# short list stops in a local minimum: paraphrase recall@3 0.561 at 40, 0.597 at 100, 0.612
# at 200, 0.647 at 400, against 0.676 for the exact search; the search stays ~1-3 ms.
HNSW_MIN_EF_SEARCH = 400
# An HNSW search costs about the same whatever the shop (~1 ms for 50 neighbours of 10,000
# 256-d vectors, bench/retrieval.py); an exact one ~5 us a candidate (52 ms for 10,000). Up to
# this many candidates the exact search costs a few milliseconds and is never approximate, and
# a small shop in a large shared table never walks a graph mostly made of other shops' rows.
HNSW_EXACT_SEARCH_MAX_CANDIDATES = 1000


@dataclass(frozen=True)
class HnswIndexState:
    pgvector_version: tuple[int, ...]


def refined_index_state() -> HnswIndexState | None:
    """The installed pgvector version when the refined model's HNSW index exists (None: it does not)."""
    return hnsw_index_state(REFINED_INDEX_NAME)


def hnsw_index_state(name: str = LOCAL_INDEX_NAME) -> HnswIndexState | None:
    """The installed pgvector version when the local model's HNSW index exists (None: it does not)."""
    with connection.cursor() as cursor:
        # The cast loads pgvector's library in this session, which defines the hnsw.* settings.
        cursor.execute(
            "SELECT e.extversion, '[1]'::vector IS NOT NULL FROM pg_extension e "
            "WHERE e.extname = 'vector' AND to_regclass(%s) IS NOT NULL",
            [name],
        )
        row = cursor.fetchone()
    return None if row is None else HnswIndexState(pgvector_version=_version_tuple(str(row[0])))


def hnsw_exact_search_limit() -> int:
    """The most candidates an exact search scans before the HNSW index answers instead."""
    configured = settings.KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES
    return HNSW_EXACT_SEARCH_MAX_CANDIDATES if configured is None else int(configured)


def hnsw_search_settings(state: HnswIndexState, k: int) -> dict[str, str]:
    """The pgvector settings an HNSW search runs with: a candidate list of at least k, and with
    pgvector 0.8 an iterative scan, which keeps walking the graph until k rows pass the shop's
    policy and the filters (without it the search would stop at ef_search rows before them)."""
    values = {"hnsw.ef_search": str(max(HNSW_MIN_EF_SEARCH, k))}
    if state.pgvector_version >= ITERATIVE_SCAN_VERSION:
        values["hnsw.iterative_scan"] = "relaxed_order"
    return values


def recommended_probes(lists: int) -> int:
    """pgvector guidance: sqrt(lists) probes balance recall and speed."""
    return max(1, min(lists, round(math.sqrt(lists))))


# An index whose lists are off the fitted value by this factor or more was not built for the
# data it holds (the migration's lists=100 built on an empty table, or a table that has
# grown or shrunk since the rebuild): its centroids are poor and sqrt(lists) probes missed
# neighbours (bench: recall@10 0.948-0.954, single queries 0.5), so it probes a fifth of
# its lists until `rebuild_knowledge_index` fits it again (recall 1.000 in the same runs).
UNFITTED_LISTS_FACTOR = 2
UNFITTED_PROBE_SHARE = 0.2


def index_is_fitted(state: IvfflatIndexState) -> bool:
    """Whether the index's lists are what `rebuild_knowledge_index` would choose, within a
    factor of UNFITTED_LISTS_FACTOR, for the rows it holds."""
    fitted = recommended_lists(state.rows)
    return max(state.lists, fitted) < UNFITTED_LISTS_FACTOR * min(state.lists, fitted)


def search_probes(state: IvfflatIndexState) -> int:
    """Lists an index search probes first: KNOWLEDGE_IVFFLAT_PROBES, else sqrt(lists), or a
    fifth of them while the index is not fitted to its rows."""
    if settings.KNOWLEDGE_IVFFLAT_PROBES:
        return min(state.lists, settings.KNOWLEDGE_IVFFLAT_PROBES)
    probes = recommended_probes(state.lists)
    if not index_is_fitted(state):
        probes = max(probes, math.ceil(state.lists * UNFITTED_PROBE_SHARE))
    return min(state.lists, probes)


def ivfflat_search_settings(state: IvfflatIndexState) -> dict[str, str]:
    """The pgvector settings an index search runs with."""
    lists = state.lists
    probes = search_probes(state)
    if state.pgvector_version < ITERATIVE_SCAN_VERSION:
        # No iterative scans: only probing every list guarantees k rows after filtering.
        return {"ivfflat.probes": str(lists)}
    max_probes = min(lists, max(probes, settings.KNOWLEDGE_IVFFLAT_MAX_PROBES or lists))
    return {
        "ivfflat.probes": str(probes),
        "ivfflat.iterative_scan": "relaxed_order",
        "ivfflat.max_probes": str(max_probes),
    }


def exact_search_limit(state: IvfflatIndexState) -> int:
    """The most candidates an exact search scans; with more the index answers.

    KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES when set. Otherwise the break-even of the two costs:
    the exact search reads every candidate (heap row + TOASTed vector), the index search reads
    `probes` lists of rows / lists vectors whichever shop asks (see INDEX_VECTORS_PER_CANDIDATE),
    and never fewer than EXACT_SEARCH_MIN_CANDIDATES.
    """
    configured = settings.KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES
    if configured is not None:
        return int(configured)
    probed = search_probes(state) * state.rows / state.lists
    return max(EXACT_SEARCH_MIN_CANDIDATES, round(probed / INDEX_VECTORS_PER_CANDIDATE))


@contextmanager
def local_settings(values: dict[str, str]) -> Iterator[None]:
    """Transaction-local settings, restored on exit: a SET LOCAL made in a savepoint would
    otherwise outlive it and change every later query of the request (as scopes do)."""
    names = list(values)
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join("current_setting(%s)" for _ in names), names)
        previous = cursor.fetchone()
        assert previous is not None
        cursor.execute(
            "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in names),
            [item for name in names for item in (name, values[name])],
        )
    try:
        yield
    finally:
        raw = connection.connection
        if raw is not None and raw.info.transaction_status != TransactionStatus.INERROR:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in names),
                    [item for name, old in zip(names, previous, strict=True) for item in (name, old)],
                )


# --- the vector index ---------------------------------------------------------------------


def recommended_lists(rows: int) -> int:
    """pgvector guidance: rows / 1000 lists up to a million rows, sqrt(rows) above (at least 1)."""
    lists = round(math.sqrt(rows)) if rows > SQRT_LISTS_ABOVE_ROWS else rows // ROWS_PER_LIST
    return max(IVFFLAT_MIN_LISTS, min(IVFFLAT_MAX_LISTS, lists))


# pgvector's k-means (ivfkmeans.c) samples 50 rows a list, at least 10,000, and checks that the
# samples, centers and bounds fit maintenance_work_mem before it starts.
KMEANS_SAMPLES_PER_LIST = 50
KMEANS_MIN_SAMPLES = 10_000
# Our estimate leaves room for what pgvector's own sum omits (allocator overhead, the tuple
# being sampled).
BUILD_MEMORY_HEADROOM = 1.1
BUILD_MEMORY_EXTRA_MB = 8
MB = 1024 * 1024


def ivfflat_build_memory_mb(lists: int, dimensions: int = EMBEDDING_DIMENSIONS) -> int:
    """maintenance_work_mem (MB) pgvector's k-means needs to build `lists` lists of vectors of
    `dimensions`, with headroom: its own memory check, summed as ivfkmeans.c does (an upper
    bound: a small table is sampled with fewer rows)."""
    item = 8 + 4 * dimensions  # VECTOR_SIZE(dimensions)
    samples = max(KMEANS_MIN_SAMPLES, lists * KMEANS_SAMPLES_PER_LIST)
    needed = (
        samples * item  # the samples
        + 2 * lists * item  # centers and new centers
        + 4 * lists * dimensions  # their sums
        + 4 * samples * (lists + 2)  # lower bounds, upper bounds, closest center
        + 4 * lists * (lists + 3)  # center distances, counts, s, new distances
    )
    return math.ceil(needed * BUILD_MEMORY_HEADROOM / MB) + BUILD_MEMORY_EXTRA_MB


def build_maintenance_work_mem(lists: int) -> str:
    """The maintenance_work_mem to build `lists` lists with: the session's when it is enough
    (a server configured with more keeps its value), else the estimate; ValueError above
    KNOWLEDGE_INDEX_BUILD_MAX_MEMORY_MB, before anything changes."""
    needed = ivfflat_build_memory_mb(lists)
    cap = settings.KNOWLEDGE_INDEX_BUILD_MAX_MEMORY_MB
    if needed > cap:
        raise ValueError(
            f"Building {lists} lists of {EMBEDDING_DIMENSIONS}-d vectors needs about {needed} MB of "
            f"maintenance_work_mem, above KNOWLEDGE_INDEX_BUILD_MAX_MEMORY_MB={cap}: give the memory "
            "explicitly (--maintenance-work-mem) or build fewer lists (--lists)."
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('maintenance_work_mem'), "
            "pg_size_bytes(current_setting('maintenance_work_mem')) >= %s",
            [needed * MB],
        )
        row = cursor.fetchone()
    assert row is not None
    return str(row[0]) if row[1] else f"{needed}MB"


@dataclass(frozen=True)
class IndexRebuild:
    """What `knowledge_index_rebuild` found and did."""

    rows: int
    lists_before: int | None
    lists_after: int
    probes: int
    action: str  # "reindex" (same lists), "recreate" (new lists) or "none" (dry run)
    # What the build runs with: the server's setting when it is enough, else the estimate.
    maintenance_work_mem: str


def knowledge_index_rebuild(
    *, lists: int | None = None, dry_run: bool = False, maintenance_work_mem: str | None = None
) -> IndexRebuild:
    """Rebuild `knowledge_base_embedding_idx` for the rows it holds now.

    IVFFlat learns its list centroids from the rows present at build time; the migration
    builds it on an empty table, so it must be rebuilt once there is data, and again as the
    data grows. `lists` defaults to `recommended_lists(rows with an embedding)`. The same lists
    value is a REINDEX; another is DROP INDEX + CREATE INDEX with the model's definition and
    name, in one transaction (writes and searches wait for it). This changes the physical index
    only: the migration state keeps lists=100, so `makemigrations --check` is unaffected and
    a fresh database starts at 100 again.

    The build runs with `maintenance_work_mem` when given (e.g. "1GB"), else with
    `build_maintenance_work_mem(lists)`, set for its transaction only.

    Runs as the table's owner (`app_owner`): it must be called outside any scope.
    """
    if active_scope() is not None:
        raise ValueError("The index is rebuilt as the table owner: call this outside any tenant scope.")
    if lists is not None and not IVFFLAT_MIN_LISTS <= lists <= IVFFLAT_MAX_LISTS:
        raise ValueError(f"lists must be between {IVFFLAT_MIN_LISTS} and {IVFFLAT_MAX_LISTS}; got {lists}.")
    with atomic_scope(service_scope()):
        # Every version with a vector is in the index, not only current ones.
        rows = KnowledgeDocument.objects.filter(embedding__isnull=False).count()
    with transaction.atomic():
        before = ivfflat_index_state()
    target = lists or recommended_lists(rows)
    lists_before = before.lists if before else None
    # k-means holds 50 sampled vectors a list in memory: sized for the build, in its transaction.
    memory = maintenance_work_mem or build_maintenance_work_mem(target)
    if dry_run:
        return IndexRebuild(
            rows=rows,
            lists_before=lists_before,
            lists_after=target,
            probes=recommended_probes(target),
            action="none",
            maintenance_work_mem=memory,
        )
    model_index = next(index for index in KnowledgeDocument._meta.indexes if index.name == INDEX_NAME)
    _path, args, kwargs = model_index.deconstruct()
    rebuilt = type(model_index)(*args, **{**kwargs, "lists": target})
    with transaction.atomic(), local_settings({"maintenance_work_mem": memory}):
        if before is not None and before.lists == target:
            with connection.cursor() as cursor:
                cursor.execute(f"REINDEX INDEX {connection.ops.quote_name(INDEX_NAME)}")
            action = "reindex"
        else:
            with connection.schema_editor(atomic=True) as editor:
                if before is not None:
                    editor.remove_index(KnowledgeDocument, model_index)
                editor.add_index(KnowledgeDocument, rebuilt)
            action = "recreate"
        after = ivfflat_index_state()
    assert after is not None
    return IndexRebuild(
        rows=rows,
        lists_before=lists_before,
        lists_after=after.lists,
        probes=recommended_probes(after.lists),
        action=action,
        maintenance_work_mem=memory,
    )
