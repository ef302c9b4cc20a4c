"""The AI knowledge base: versioned documents, their embeddings, search and the vector index.

Versioning. A document is identified by `(shop, document_key)`; every save creates a new row
(version 1, 2, ...) and older versions are never edited: the previous current version only
has `is_current` flipped to false. `knowledge_document_save` serialises writers of one key
with a transaction-level advisory lock, then locks the current row (`SELECT ... FOR UPDATE`),
flips it and inserts the next version, so the partial unique index (one current version per
key) never sees two current rows. A writer that bypasses the service and races us is caught
by that index and the version unique index: the save retries in a fresh savepoint (it then
sees the committed winner) and gives up with a 409 after `SAVE_ATTEMPTS`.

Embeddings. A client may send its own 1536-float vector (recorded with the `embedding_model`
it names); otherwise the text `title + content` is embedded by the configured provider
(`advanced.embeddings`), outside the lock, so a slow provider never holds up other writers. A
new version whose title and content equal an earlier version's reuses that vector when the
provider's model made it; a partial edit (PATCH) of other fields keeps the current vector.

Search. `knowledge_search` returns the k current versions nearest to a text or a vector, with
tag and type filters, always `min(k, matching)` rows, in the active scope (as `authenticated`
for a shop: the policies filter every plan):

- The filtered candidates are counted first, in no order and bounded: at most
  `exact_search_limit() + 1` rows are counted. Up to that limit the search is exact: it
  selects and orders by `distance + 0`, which no index can serve, so every candidate's
  distance is computed, once. The limit is KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES when set,
  else the measured break-even with the index (probes x rows / lists / 4, at least 1,000): an
  index search reads its probed lists whatever the shop, an exact one every candidate, and
  for a shop with few rows in a shared table the index also returns too few rows without
  iterative scans (IVFFlat filters *after* probing).
- Above it, the IVFFlat index is used with pgvector 0.8's iterative scans
  (`ivfflat.iterative_scan = relaxed_order`), `ivfflat.probes` (KNOWLEDGE_IVFFLAT_PROBES, by
  default round(sqrt(lists))) and `ivfflat.max_probes` (by default every list), and with
  sequential scans, bitmap scans, sorts and parallel plans disabled, so that the ordered
  index scan is the plan (the planner otherwise prices it above scanning the shop's rows);
  all applied with `set_config(..., true)` and restored afterwards; the relaxed order is
  re-sorted. With an older pgvector (no iterative scans) every list is probed. If the index
  still yields fewer than min(k, candidates) rows (a lowered max_probes), the exact search
  answers instead.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.db.models.functions import Now
from psycopg.pq import TransactionStatus

from tenancy.errors import Conflict, Refused, Unavailable
from tenancy.scope import active_scope, atomic_scope, service_scope
from tenancy.services import constraint_error

from ..embeddings import EmbeddingError, EmbeddingProvider, document_text, embedding_provider
from ..models import EMBEDDING_DIMENSIONS, DocumentType, KnowledgeDocument
from ..querysets import KnowledgeDocumentQuerySet

logger = logging.getLogger(__name__)

# Recorded as embedding_model when a client sends a vector without naming its model.
CLIENT_EMBEDDING_MODEL = "client"
MAX_K = 100
TAGS_MODES = ("all", "any")
# A race with a writer outside the service costs one retry; three is ample.
SAVE_ATTEMPTS = 3
# First key of the two-key advisory lock: "KB", so our locks never collide with another
# feature's single-key locks.
ADVISORY_LOCK_CLASS = 0x4B42
VERSION_CONSTRAINTS = frozenset(
    {"advanced_knowledgedocument_version_uniq", "advanced_knowledgedocument_one_current_uniq"}
)
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


class KnowledgeConflict(Conflict):
    """The operation needs the current version and the document has moved on (HTTP 409)."""

    default_detail = "The document changed; reload its current version and try again."
    default_code = "conflict"


class EmbeddingUnavailable(Unavailable):
    """The embedding provider failed; nothing was written (HTTP 502)."""

    default_detail = "The embedding provider failed."
    default_code = "embedding_failed"


# --- versioning ---------------------------------------------------------------------------


def _clean_vector(values: Sequence[float], *, field_name: str) -> list[float]:
    """A 1536-float, finite, non-zero vector (cosine distance to a zero vector is undefined)."""
    vector = [float(v) for v in values]
    if len(vector) != EMBEDDING_DIMENSIONS:
        raise Refused(
            {field_name: [f"Must hold exactly {EMBEDDING_DIMENSIONS} numbers; got {len(vector)}."]},
            code="dimensions",
        )
    if not all(math.isfinite(v) and abs(v) <= FLOAT32_MAX for v in vector):
        raise Refused({field_name: ["Every number must be finite and fit a 32-bit float."]})
    if not any(vector):
        raise Refused({field_name: ["Must not be all zeros: its cosine distance is undefined."]}, code="zero")
    return vector


def _embedding_for(
    *,
    shop_id: str,
    document_key: str,
    title: str,
    content: str,
    embedding: Sequence[float] | None,
    embedding_model: str,
    provider: EmbeddingProvider | None,
) -> tuple[list[float], str]:
    if embedding is not None:
        return _clean_vector(embedding, field_name="embedding"), embedding_model or CLIENT_EMBEDDING_MODEL
    if embedding_model:
        raise Refused({"embedding_model": ["Give embedding_model only together with embedding."]})
    provider = provider or embedding_provider()
    # The vector depends on the text and the model alone: a version that changes only tags or
    # type reuses its predecessor's (and saves a provider call). A vector of another model is
    # not reused, so re-saving after a provider switch re-embeds. No lock needed: equal text
    # is equal text, whichever version is current.
    previous = (
        KnowledgeDocument.objects.filter(
            shop_id=shop_id, document_key=document_key, embedding__isnull=False, embedding_model=provider.model
        )
        .filter(title=title, content=content)
        .order_by("-version")
        .only("embedding")
        .first()
    )
    if previous is not None:
        return [float(v) for v in previous.embedding], provider.model
    try:
        vector = provider.embed_one(document_text(title=title, content=content))
    except EmbeddingError as exc:
        raise EmbeddingUnavailable(f"Could not embed the document: {exc}") from exc
    return vector, provider.model


def _lock_key(shop_id: str, document_key: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [ADVISORY_LOCK_CLASS, f"{shop_id}/{document_key}"]
        )


def _current_for_update(shop_id: str, document_key: str) -> KnowledgeDocument | None:
    return (
        KnowledgeDocument.objects.select_for_update()
        .defer("embedding")
        .filter(shop_id=shop_id, document_key=document_key, is_current=True)
        .first()
    )


@transaction.atomic
def knowledge_document_save(
    *,
    shop_id: str,
    document_key: str,
    title: str,
    content: str,
    document_type: str = DocumentType.NOTE,
    tags: Sequence[str] = (),
    embedding: Sequence[float] | None = None,
    embedding_model: str = "",
    source_url: str = "",
    actor: str | None,
    expected_version: int | None = None,
    provider: EmbeddingProvider | None = None,
) -> KnowledgeDocument:
    """Store a new version of `(shop_id, document_key)`: version 1, or the current version + 1.

    `embedding=None` embeds `title + content` with `provider` (default: the configured one).
    `expected_version`, when given, must be the current version (optimistic concurrency for
    edits): otherwise KnowledgeConflict, and nothing is written.
    """
    document = KnowledgeDocument(
        shop_id=shop_id,
        document_key=document_key,
        title=title,
        content=content,
        document_type=document_type,
        tags=list(dict.fromkeys(tags)),
        source_url=source_url,
        is_current=True,
        created_by=actor,
    )
    try:
        # Field rules (slug, choices, lengths, URL) as a 400 before any lock or provider call.
        document.clean_fields(exclude=["shop", "previous_version", "embedding", "embedding_model", "version"])
    except DjangoValidationError as exc:
        raise Refused(exc.message_dict) from exc
    document.embedding, document.embedding_model = _embedding_for(
        shop_id=shop_id,
        document_key=document_key,
        title=title,
        content=content,
        embedding=embedding,
        embedding_model=embedding_model,
        provider=provider,
    )
    for attempt in range(1, SAVE_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                return _insert_version(document, expected_version=expected_version)
        except IntegrityError as exc:
            constraint = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)
            if constraint not in VERSION_CONSTRAINTS:
                raise constraint_error(exc, KnowledgeDocument) from exc
            logger.info("knowledge %s/%s: version race (%s), attempt %d", shop_id, document_key, constraint, attempt)
            document.pk = None
            document._state.adding = True
    raise KnowledgeConflict(f"Document {document_key!r} is being written concurrently; try again.")


def _insert_version(document: KnowledgeDocument, *, expected_version: int | None) -> KnowledgeDocument:
    shop_id, key = document.shop_id, document.document_key
    _lock_key(shop_id, key)
    current = _current_for_update(shop_id, key)
    if expected_version is not None and (current is None or current.version != expected_version):
        now = f"version {current.version} (id {current.pk})" if current else "no version"
        raise KnowledgeConflict(
            f"Version {expected_version} of {key!r} is no longer current; {now} is. Edit the current version."
        )
    latest = KnowledgeDocument.objects.filter(shop_id=shop_id, document_key=key).aggregate(v=Max("version"))["v"]
    previous = current
    if previous is None and latest is not None:
        # No current version (it was removed outside the service): chain to the newest one.
        previous = KnowledgeDocument.objects.defer("embedding").get(shop_id=shop_id, document_key=key, version=latest)
    if current is not None:
        # Flip first: the partial unique index must never see two current rows.
        KnowledgeDocument.objects.filter(pk=current.pk).update(is_current=False, updated_at=Now())
    document.version = (latest or 0) + 1
    document.previous_version = previous
    document.save(force_insert=True)
    return document


def knowledge_document_revise(
    *,
    document: KnowledgeDocument,
    changes: dict[str, Any],
    actor: str | None,
    partial: bool = True,
    provider: EmbeddingProvider | None = None,
) -> KnowledgeDocument:
    """A new version of `document` (which must be current) with `changes` applied on top of it.

    `partial` (PATCH) changes only what `changes` names: with the text unchanged and no
    `embedding` given, the current vector is kept whatever model made it (a client's own
    vector survives an edit of its tags). Otherwise an omitted vector is the server's to make.
    """
    if "document_key" in changes and changes["document_key"] != document.document_key:
        raise Refused(
            {"document_key": ["A document's key cannot change; create a document under the new key instead."]}
        )
    if not document.is_current:
        raise KnowledgeConflict(
            f"Version {document.version} of {document.document_key!r} is history and cannot change; "
            "edit the current version."
        )
    values = {
        name: changes.get(name, getattr(document, name))
        for name in ("title", "content", "document_type", "tags", "source_url")
    }
    embedding, embedding_model = changes.get("embedding"), changes.get("embedding_model", "")
    unchanged_text = values["title"] == document.title and values["content"] == document.content
    if partial and "embedding" not in changes and unchanged_text:
        kept = KnowledgeDocument.objects.filter(pk=document.pk).values_list("embedding", "embedding_model").first()
        if kept is not None and kept[0] is not None:
            embedding, embedding_model = [float(v) for v in kept[0]], kept[1]
    return knowledge_document_save(
        shop_id=document.shop_id,
        document_key=document.document_key,
        **values,
        embedding=embedding,
        embedding_model=embedding_model,
        actor=actor,
        expected_version=document.version,
        provider=provider,
    )


@transaction.atomic
def knowledge_document_delete(*, document: KnowledgeDocument) -> int:
    """Delete a document with its whole history, through its current version; returns the rows deleted."""
    _lock_key(document.shop_id, document.document_key)
    current = _current_for_update(document.shop_id, document.document_key)
    if current is None or current.pk != document.pk:
        raise KnowledgeConflict(
            f"Version {document.version} of {document.document_key!r} is history; delete the document through "
            "its current version, which removes every version."
        )
    deleted, _ = KnowledgeDocument.objects.filter(shop_id=document.shop_id, document_key=document.document_key).delete()
    return deleted


# --- search -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnowledgeSearchResult:
    """The nearest current versions (each with a `distance` attribute), nearest first, and how
    they were found: "exact", "ivfflat", or "ivfflat+exact" (the index fell short)."""

    documents: list[KnowledgeDocument] = field(default_factory=list)
    scan: str = "exact"


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
def _local_settings(values: dict[str, str]) -> Iterator[None]:
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


def knowledge_search(
    *,
    query: str | None = None,
    vector: Sequence[float] | None = None,
    k: int = 10,
    tags: Sequence[str] = (),
    tags_mode: str = "all",
    document_type: str | None = None,
    embedding_model: str | None = None,
    provider: EmbeddingProvider | None = None,
) -> KnowledgeSearchResult:
    """The `k` current versions nearest to `query` (text) or `vector`, in the active scope.

    A text query is embedded by `provider` and compared only with documents embedded by the
    same model (vectors of different models are not comparable); a vector query is compared
    with every embedded document, or those of `embedding_model` when given.
    """
    if (query is None) == (vector is None):
        raise Refused({"non_field_errors": ["Give either query (text) or vector (numbers), not both."]})
    if not 1 <= k <= MAX_K:
        raise Refused({"k": [f"Must be between 1 and {MAX_K}; got {k}."]})
    if tags_mode not in TAGS_MODES:
        raise Refused({"tags_mode": [f"Must be one of {', '.join(TAGS_MODES)}; got {tags_mode!r}."]})
    if query is not None:
        if not query.strip():
            raise Refused({"query": ["Must not be blank."]})
        provider = provider or embedding_provider()
        try:
            vector = provider.embed_one(query)
        except EmbeddingError as exc:
            raise EmbeddingUnavailable(f"Could not embed the query: {exc}") from exc
        embedding_model = provider.model
    assert vector is not None
    target = _clean_vector(vector, field_name="vector")
    candidates = KnowledgeDocument.objects.searchable(
        tags=list(dict.fromkeys(tags)),
        tags_mode=tags_mode,
        document_type=document_type,
        embedding_model=embedding_model,
    ).defer("embedding")
    with transaction.atomic():
        state = ivfflat_index_state()
        if state is None:
            return KnowledgeSearchResult(documents=_exact_nearest(candidates, target, k), scan="exact")
        limit = exact_search_limit(state)
        # Counting stops at limit + 1 rows, in no order: the decision costs at most that many
        # index entries (the model's default ordering would sort them first).
        count = candidates.order_by()[: limit + 1].count()
        if count == 0:
            return KnowledgeSearchResult(documents=[], scan="exact")
        if count <= limit:
            return KnowledgeSearchResult(documents=_exact_nearest(candidates, target, k), scan="exact")
        with _local_settings({**ivfflat_search_settings(state), **INDEX_PLAN_SETTINGS}):
            found = _ranked(candidates.nearest(target, exact=False)[:k])
        # `count` stopped at limit + 1: it proves k candidates exist only when it reached k.
        wanted = k if count >= k else candidates.order_by()[:k].count()
        if len(found) < wanted:
            logger.warning("knowledge search: the index gave %d of %d rows; answering exactly", len(found), wanted)
            return KnowledgeSearchResult(documents=_exact_nearest(candidates, target, k), scan="ivfflat+exact")
        return KnowledgeSearchResult(documents=found, scan="ivfflat")


def _exact_nearest(candidates: KnowledgeDocumentQuerySet, target: list[float], k: int) -> list[KnowledgeDocument]:
    return _ranked(candidates.nearest(target, exact=True)[:k])


def _distance(document: KnowledgeDocument) -> float:
    return float(document.distance)  # type: ignore[attr-defined]


def _ranked(documents: Iterable[KnowledgeDocument]) -> list[KnowledgeDocument]:
    """Nearest first (relaxed_order may return rows slightly out of order). A zero vector
    stored before vectors were checked has no cosine distance (NaN): it cannot be ranked."""
    found = [document for document in documents if math.isfinite(_distance(document))]
    return sorted(found, key=lambda document: (_distance(document), document.pk))


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
    with transaction.atomic(), _local_settings({"maintenance_work_mem": memory}):
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
