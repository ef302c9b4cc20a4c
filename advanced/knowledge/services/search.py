"""Knowledge search: semantic (vectors), keyword (PostgreSQL full text) and hybrid (both,
fused by reciprocal rank), always `min(k, matches)` current versions in the active scope (as
`authenticated` for a shop: the policies filter every plan), with tag and type filters.

Shape. `knowledge_search` validates the request and hands it to the strategy of its mode
(STRATEGIES: `semantic`, `keyword`, `hybrid`). A text query's semantic and hybrid strategies
take the refined tier (`_refined_search`) when its vectors apply, else the unrefined one; the
vector side then picks its scan (`_semantic`: exact, HNSW or IVFFlat). Queries return rows
(model instances with their annotations); each list becomes typed hits (`KnowledgeSearchHit`)
as it leaves the database, and hybrid lists are fused hit by hit (`reciprocal_rank_fusion`).
The SQL whose shape the planner depends on is in advanced/knowledge/expressions.py.

Semantic. A text query is embedded by the configured provider and compared only with
documents embedded by the same model (vectors of different models are not comparable); a
vector query is compared with every embedded document, or those of `embedding_model`.

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

The default (local) model's vectors have an HNSW index of their own over their 256 dimensions
(advanced.knowledge.models.LOCAL_INDEX_NAME): a query of that model counts its candidates (at most
hnsw_exact_search_limit() + 1, an index-only scan of knowledge_base_searchable_idx), is exact
up to the limit and walks the graph above it (`hnsw.ef_search` = max(400, k), iterative scan,
the same planner settings), falling back to exact if the walk yields too few rows. Its SQL
carries the index expression and the model as literals, so that a prepared statement's generic
plan can still use the partial expression index. Other models and vector queries without a
model take the IVFFlat path above.

Keyword. `search_vector @@ websearch_to_tsquery(KNOWLEDGE_SEARCH_LANGUAGE, 'w1 or w2 ...')`,
ranked by the share of the query's lexemes a document holds, then by `ts_rank` (divided by
1 + log(length)). Under row level security this reads every current row of the shop: `@@` is
not LEAKPROOF, so PostgreSQL applies the shop policy first and cannot use the GIN index
knowledge_base_fts_idx for it; rows are kept narrow for that scan (migration 0015,
docs/performance.md).
The query's words are OR-ed: a customer's question shares a few words with the right
document, never all of them (an AND of "can I get my money back if it came cracked" matches
nothing). A hyphenated term ("KB-1042-BLK") stays one phrase. Candidates are current
versions, with or without a vector: a document still waiting for `reembed_knowledge` is
found by its words. Matches are the documents sharing at least one lexeme with the query.

Hybrid (the default for a text query). The top max(k, RRF_DEPTH) of each list, fused by
reciprocal rank fusion: score = sum over the lists of 1 / (RRF_K + rank). Every semantic
candidate is ranked, so hybrid returns min(k, semantic candidates + keyword-only matches).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import connection, transaction
from django.db.models import F, FloatField
from django.db.models.expressions import RawSQL
from pgvector.django import CosineDistance

from tenancy.errors import Refused

from ..embeddings import LOCAL_EMBEDDING_MODEL, EmbeddingError, EmbeddingProvider, embedding_provider
from ..embeddings_transformer import REFINED_MODEL, RefinedEmbeddingProvider, model_folder
from ..expressions import IsLocalModel, exact_distance, local_distance, not_refined, refined_current
from ..models import KnowledgeDocument
from ..querysets import KnowledgeDocumentQuerySet
from .errors import EmbeddingUnavailable
from .hits import (
    KnowledgeSearchHit,
    _distance,
    _keyword_hits,
    _nearest_hits,
    _refined_hits,
    reciprocal_rank_fusion,
)
from .index import (
    INDEX_PLAN_SETTINGS,
    HnswIndexState,
    exact_search_limit,
    hnsw_exact_search_limit,
    hnsw_index_state,
    hnsw_search_settings,
    ivfflat_index_state,
    ivfflat_search_settings,
    local_settings,
    refined_index_state,
)
from .versioning import clean_vector

logger = logging.getLogger(__name__)

MAX_K = 100
TAGS_MODES = ("all", "any")
# How deep each list goes before fusion (at least k). Measured on bench/data/retrieval with
# both question sets (the 139 labelled paraphrases and the 91 held-out ones): paraphrase
# recall@3 0.856 / 0.846 at 50 and 20, 0.863 / 0.868 at 10, exact terms 1.000 at each; every
# variant of the semantic side tried moved the same way. A 30th-ranked semantic neighbour of a
# static model is mostly noise that RRF still credits, and a shallow list is cheaper to fetch.
RRF_DEPTH = 10
# Hybrid fuses only keyword hits holding at least half of the query's lexemes ("minimum should
# match"): a paraphrase shares one or two common words ("jacket", "pocket") with many wrong
# documents, and RRF gives any list's 10th hit as much weight as the other list's. Measured on
# bench/data/retrieval (chosen there, no held-out set): paraphrase recall@3 0.763 unfiltered,
# 0.856 at a half, 0.842 at three quarters; exact-term questions 1.000 either way.
HYBRID_MIN_COVERAGE = 0.5
# Words of a keyword query: a question is a few dozen; the rest is cut (and said so).
KEYWORD_MAX_TERMS = 64
# ts_rank normalisation 1: divide by 1 + log(document length), so a long FAQ does not win
# by repeating a word.
RANK_NORMALIZATION = 1
_QUERY_WORD = re.compile(r"[^\s\"']+")


@dataclass(frozen=True)
class KnowledgeSearchResult:
    """The best current versions as hits, best first, and how they were found."""

    documents: list[KnowledgeSearchHit] = field(default_factory=list)
    # The vector scan: "exact", "hnsw" or "ivfflat", "hnsw+exact" or "ivfflat+exact" (the index
    # fell short); None in keyword mode.
    scan: str | None = "exact"
    mode: str = "semantic"
    # The model the query was embedded with (None: keyword mode, or a vector of any model).
    embedding_model: str | None = None
    query_truncated: bool = False
    # Tokens of the query the model read (None: the provider does not count them).
    query_tokens: int | None = None
    # The refined model (REFINED_MODEL) when its vectors took part, and how they were searched.
    refined_model: str | None = None
    refined_scan: str | None = None


@dataclass(frozen=True)
class _Filters:
    tags: list[str]
    tags_mode: str
    document_type: str | None


@dataclass(frozen=True)
class SearchRequest:
    """A validated search, what every strategy reads: a text `query` or a `vector` (not both)."""

    query: str | None
    vector: Sequence[float] | None
    k: int
    filters: _Filters
    embedding_model: str | None
    provider: EmbeddingProvider | None

    @property
    def words(self) -> list[str]:
        """The query's words, at most KEYWORD_MAX_TERMS of them."""
        return _QUERY_WORD.findall(self.query or "")[:KEYWORD_MAX_TERMS]

    @property
    def words_truncated(self) -> bool:
        return len(_QUERY_WORD.findall(self.query or "")) > KEYWORD_MAX_TERMS

    def text_provider(self) -> EmbeddingProvider | None:
        """The provider that embeds a text query (None for a vector query)."""
        if self.query is None:
            return None
        return self.provider or embedding_provider()


def knowledge_search(
    *,
    query: str | None = None,
    vector: Sequence[float] | None = None,
    k: int = 10,
    mode: str | None = None,
    tags: Sequence[str] = (),
    tags_mode: str = "all",
    document_type: str | None = None,
    embedding_model: str | None = None,
    provider: EmbeddingProvider | None = None,
) -> KnowledgeSearchResult:
    """The `k` best current versions for `query` (text) or `vector`, in the active scope.

    `mode`: "semantic", "keyword" or "hybrid"; default hybrid for a text query, semantic for
    a vector (keyword and hybrid need words).
    """
    if (query is None) == (vector is None):
        raise Refused({"non_field_errors": ["Give either query (text) or vector (numbers), not both."]})
    mode = mode or ("hybrid" if query is not None else "semantic")
    if mode not in SEARCH_MODES:
        raise Refused({"mode": [f"Must be one of {', '.join(SEARCH_MODES)}; got {mode!r}."]})
    if vector is not None and mode != "semantic":
        raise Refused({"mode": [f"A vector query can only be semantic; {mode} search needs a text query."]})
    if not 1 <= k <= MAX_K:
        raise Refused({"k": [f"Must be between 1 and {MAX_K}; got {k}."]})
    if tags_mode not in TAGS_MODES:
        raise Refused({"tags_mode": [f"Must be one of {', '.join(TAGS_MODES)}; got {tags_mode!r}."]})
    if query is not None and not query.strip():
        raise Refused({"query": ["Must not be blank."]})
    filters = _Filters(tags=list(dict.fromkeys(tags)), tags_mode=tags_mode, document_type=document_type)
    request = SearchRequest(
        query=query, vector=vector, k=k, filters=filters, embedding_model=embedding_model, provider=provider
    )
    # The strategies only read: they run in the caller's transaction (the request's scope)
    # without savepoints of their own, each of which cost a round trip to open and one to
    # release (~0.25 ms each; 4 of a refined hybrid search's 13 statements).
    return STRATEGIES[mode](request)


# --- one strategy per mode ------------------------------------------------------------------


def _semantic_search(request: SearchRequest) -> KnowledgeSearchResult:
    """Nearest vectors; a text query takes the refined tier when it applies."""
    provider = request.text_provider()
    if provider is not None and _refined_tier_applies(provider):
        return _refined_search(request, provider, hybrid=False)
    query = _query_vector(request, provider)
    with transaction.atomic(savepoint=False):
        hits, scan = _semantic(query.target, request.k, embedding_model=query.model, filters=request.filters)
    return KnowledgeSearchResult(
        documents=hits,
        scan=scan,
        mode="semantic",
        embedding_model=query.model,
        query_truncated=query.truncated,
        query_tokens=query.tokens,
    )


def _keyword_search(request: SearchRequest) -> KnowledgeSearchResult:
    """Full text only: no vector, no provider."""
    with transaction.atomic(savepoint=False):
        hits = _keyword_hits(_keyword(request.words, request.k, filters=request.filters))
    return KnowledgeSearchResult(documents=hits, scan=None, mode="keyword", query_truncated=request.words_truncated)


def _hybrid_search(request: SearchRequest) -> KnowledgeSearchResult:
    """Keyword and nearest vectors, each max(k, RRF_DEPTH) deep, fused by reciprocal rank; the
    refined tier when it applies."""
    provider = request.text_provider()
    assert provider is not None  # knowledge_search: hybrid needs a text query
    if _refined_tier_applies(provider):
        return _refined_search(request, provider, hybrid=True)
    query = _query_vector(request, provider)
    depth = max(request.k, RRF_DEPTH)
    with transaction.atomic(savepoint=False):
        keyword = _keyword_hits(
            _keyword(request.words, depth, filters=request.filters, min_coverage=HYBRID_MIN_COVERAGE)
        )
        semantic, scan = _semantic(query.target, depth, embedding_model=query.model, filters=request.filters)
    return KnowledgeSearchResult(
        documents=reciprocal_rank_fusion(semantic, keyword)[: request.k],
        scan=scan,
        mode="hybrid",
        embedding_model=query.model,
        query_truncated=query.truncated or request.words_truncated,
        query_tokens=query.tokens,
    )


# The strategy of each mode (the API's `mode`; its serializers list the same names).
STRATEGIES: dict[str, Callable[[SearchRequest], KnowledgeSearchResult]] = {
    "semantic": _semantic_search,
    "keyword": _keyword_search,
    "hybrid": _hybrid_search,
}
SEARCH_MODES = tuple(STRATEGIES)


# --- the query's vector ---------------------------------------------------------------------


@dataclass(frozen=True)
class _QueryVector:
    target: list[float]
    # The model it is of (None: a vector query of any model).
    model: str | None
    truncated: bool = False
    tokens: int | None = None


def _query_vector(request: SearchRequest, provider: EmbeddingProvider | None) -> _QueryVector:
    """A text query embedded by `provider`, or the request's vector (and its embedding_model)."""
    if request.query is None:
        assert request.vector is not None
        return _QueryVector(clean_vector(request.vector, field_name="vector"), model=request.embedding_model)
    assert provider is not None
    try:
        embedded = provider.embed_query(request.query)
    except EmbeddingError as exc:
        raise EmbeddingUnavailable(f"Could not embed the query: {exc}") from exc
    return _QueryVector(
        clean_vector(embedded.vector, field_name="vector"),
        model=provider.model,
        truncated=embedded.truncated,
        tokens=embedded.tokens,
    )


# --- keyword rows ---------------------------------------------------------------------------


def _keyword(words: list[str], limit: int, *, filters: _Filters, min_coverage: float = 0.0) -> list[KnowledgeDocument]:
    """The `limit` current versions sharing the most of the query's lexemes with `words`.

    Ranked by coverage (the share of the query's distinct lexemes a document contains:
    coordination-level matching), then by `ts_rank`, then id; only documents covering at
    least `min_coverage` of them.

    `ts_rank`, not `ts_rank_cd`: every match is ranked, and a common word matches much of a
    large shop (6,070 of 10,000 documents share a lexeme with "a jacket that keeps me dry
    hiking all day in heavy rain"): cover density took 70 of that query's 95 ms, `ts_rank` 7.
    As the tie-breaker after coverage it changes little (bench/data/retrieval, keyword mode,
    paraphrase recall@3: 0.741 -> 0.734 labelled, 0.725 -> 0.692 held out; hybrid unchanged).
    """
    # A leading "-" would be websearch's NOT: a customer's "-" is a dash.
    terms = [word.lstrip("-") for word in words if word.lstrip("-")]
    if not terms:
        return []
    text = " ".join(terms)
    language = settings.KNOWLEDGE_SEARCH_LANGUAGE
    tsquery = SearchQuery(" or ".join(terms), search_type="websearch", config=language)
    candidates = KnowledgeDocument.objects.current()
    if filters.tags:
        tags = filters.tags
        candidates = candidates.with_any_tags(tags) if filters.tags_mode == "any" else candidates.with_tags(tags)
    if filters.document_type:
        candidates = candidates.filter(document_type=filters.document_type)
    lexemes = _lexemes(language, text)
    if not lexemes:
        return []  # only stop words: the query matches nothing
    # How many of the query's lexemes a row holds: one single-lexeme `@@` each (a binary search
    # in the sorted tsvector). It replaced length(v) - length(ts_delete(v, lexemes)), which
    # copies the row's tsvector: "a jacket that keeps me dry hiking all day in heavy rain"
    # matches 6,070 of the 10,000-document shop, and counting them with the coverage filter took
    # 17-22 ms that way against 13-15 (`@@` alone: 10-13).
    quoted = [_tsquery_lexeme(lexeme) for lexeme in lexemes]
    held = " + ".join(["(search_vector @@ %s::tsquery)::int"] * len(quoted))
    coverage = RawSQL(f"({held})::float8 / {len(quoted)}", quoted, output_field=FloatField())
    matches = candidates.filter(search_vector=tsquery).annotate(keyword_coverage=coverage)
    if min_coverage > 0:
        matches = matches.filter(keyword_coverage__gte=min_coverage)
    ranked = (
        matches.annotate(
            keyword_rank=SearchRank(F("search_vector"), tsquery, cover_density=False, normalization=RANK_NORMALIZATION)
        )
        .defer("embedding", "search_vector")
        .order_by("-keyword_coverage", "-keyword_rank", "id")
    )
    return list(ranked[:limit])


def _lexemes(language: str, text: str) -> list[str]:
    """The distinct lexemes PostgreSQL makes of `text` in `language` (stop words dropped)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tsvector_to_array(to_tsvector(%s::regconfig, %s))", [language, text])
        row = cursor.fetchone()
    return list(row[0]) if row and row[0] else []


def _tsquery_lexeme(lexeme: str) -> str:
    """One lexeme as tsquery input: quoted, so that it is taken as it is (not parsed again)."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


# --- the unrefined tier: one model's vectors, exact or through an index ------------------------


def _semantic(
    target: list[float],
    k: int,
    *,
    embedding_model: str | None,
    filters: _Filters,
) -> tuple[list[KnowledgeSearchHit], str]:
    """The k nearest candidates to `target` and the scan that found them (see the module)."""
    candidates = KnowledgeDocument.objects.searchable(
        tags=filters.tags,
        tags_mode=filters.tags_mode,
        document_type=filters.document_type,
        embedding_model=embedding_model,
    ).defer("embedding", "search_vector")
    if embedding_model == LOCAL_EMBEDDING_MODEL:
        hnsw = hnsw_index_state()
        if hnsw is not None:
            return _local_nearest(candidates, target, k, hnsw)
    state = ivfflat_index_state()
    if state is None:
        return _exact_nearest(candidates, target, k), "exact"
    limit = exact_search_limit(state)
    # Counting stops at limit + 1 rows, in no order: the decision costs at most that many
    # index entries (the model's default ordering would sort them first).
    count = candidates.order_by()[: limit + 1].count()
    if count == 0:
        return [], "exact"
    if count <= limit:
        return _exact_nearest(candidates, target, k), "exact"
    with local_settings({**ivfflat_search_settings(state), **INDEX_PLAN_SETTINGS}):
        found = _nearest_hits(candidates.nearest(target, exact=False)[:k])
    # `count` stopped at limit + 1: it proves k candidates exist only when it reached k.
    wanted = k if count >= k else candidates.order_by()[:k].count()
    if len(found) < wanted:
        logger.warning("knowledge search: the index gave %d of %d rows; answering exactly", len(found), wanted)
        return _exact_nearest(candidates, target, k), "ivfflat+exact"
    return found, "ivfflat"


def _local_nearest(
    candidates: KnowledgeDocumentQuerySet, target: list[float], k: int, state: HnswIndexState
) -> tuple[list[KnowledgeSearchHit], str]:
    """The local model's k nearest: exact up to hnsw_exact_search_limit() candidates, else
    through its HNSW index over the vectors' last WORDLLAMA_DIMENSIONS (the rest are zeros:
    the cosine distance is the same)."""
    limit = hnsw_exact_search_limit()
    count = candidates.order_by()[: limit + 1].count()
    if count == 0:
        return [], "exact"
    if count <= limit:
        return _exact_nearest(candidates, target, k), "exact"
    with local_settings({**hnsw_search_settings(state, k), **INDEX_PLAN_SETTINGS}):
        found = _nearest_hits(local_nearest(candidates, target)[:k])
    wanted = k if count >= k else candidates.order_by()[:k].count()
    if len(found) < wanted:
        logger.warning("knowledge search: the HNSW index gave %d of %d rows; answering exactly", len(found), wanted)
        return _exact_nearest(candidates, target, k), "hnsw+exact"
    return found, "hnsw"


def local_nearest(candidates: KnowledgeDocumentQuerySet, target: list[float]) -> KnowledgeDocumentQuerySet:
    """The local model's candidates by cosine distance over its 256 dimensions: the shape its
    HNSW index serves, in custom and generic plans alike (see expressions.py)."""
    return (
        candidates.filter(IsLocalModel(F("embedding_model")))
        .annotate(distance=local_distance(target))
        .order_by("distance")
    )


def _exact_nearest(candidates: KnowledgeDocumentQuerySet, target: list[float], k: int) -> list[KnowledgeSearchHit]:
    return _nearest_hits(candidates.nearest(target, exact=True)[:k])


# --- the refined tier: all-MiniLM-L6-v2 vectors, where fresh ------------------------------------


# One thread per process for the refined model's query embedding (see _refined_search).
_QUERY_EMBEDDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="refined-query")


def refine_applies(provider: EmbeddingProvider) -> bool:
    """Whether refined vectors take part in a text search: KNOWLEDGE_REFINE is on and the query
    is of the default (local, static) model, the tier they refine. Another provider's vectors
    (openai) are searched as they are."""
    if not settings.KNOWLEDGE_REFINE or provider.model != LOCAL_EMBEDDING_MODEL:
        return False
    try:
        model_folder()
    except EmbeddingError:
        # The package is gone (refined rows from an earlier install): search as without them.
        return False
    return True


def _refined_tier_applies(provider: EmbeddingProvider) -> bool:
    return refine_applies(provider) and _has_refined()


def _has_refined() -> bool:
    """Does the scope hold any current refined vector? (an index-only probe; no: the query is
    not embedded by the refined model at all, ~10 ms saved)."""
    with transaction.atomic(savepoint=False):
        return KnowledgeDocument.objects.current().filter(refined_current()).exists()


def _filtered(rows: KnowledgeDocumentQuerySet, filters: _Filters) -> KnowledgeDocumentQuerySet:
    if filters.tags:
        rows = rows.with_any_tags(filters.tags) if filters.tags_mode == "any" else rows.with_tags(filters.tags)
    if filters.document_type:
        rows = rows.filter(document_type=filters.document_type)
    return rows


def _refined_search(request: SearchRequest, provider: EmbeddingProvider, *, hybrid: bool) -> KnowledgeSearchResult:
    """Semantic or hybrid search of a shop with refined vectors (docs/performance.md, "Two tiers").

    Lists, fused by reciprocal rank as in plain hybrid search:
    - refined: the documents with a current refined vector, by the refined model's cosine;
    - fallback: the other current documents (not yet refined, or edited since), by the default
      model's cosine, so a document is findable from the moment it is saved;
    - keyword (hybrid only), unchanged.
    Measured in numpy on bench/data/retrieval (paraphrase recall@3, labelled / held out):
    keyword + refined 0.921 / 0.934 against 0.863 / 0.868 for keyword + WordLlama; adding
    WordLlama as a third list over every document lowered it (0.892 / 0.923), and with half
    the documents refined, this fallback kept 0.871 / 0.868 (one list of mixed cosines: 0.863 /
    0.857; WordLlama over all plus MiniLM over the refined half: 0.727 / 0.714).
    """
    assert request.query is not None
    # The transformer embeds the query (~15 ms) in a thread while this one asks PostgreSQL for
    # the keyword and fallback lists (numpy's BLAS and the socket wait both release the GIL):
    # hybrid p50 / p95 52 / 63 -> 39 / 50 ms on the 10,000-document shop (docs/performance.md).
    pending = _QUERY_EMBEDDER.submit(RefinedEmbeddingProvider().embed_query, request.query)
    try:
        embedded = provider.embed_query(request.query)
    except EmbeddingError as exc:
        pending.cancel()
        raise EmbeddingUnavailable(f"Could not embed the query: {exc}") from exc
    target = clean_vector(embedded.vector, field_name="vector")
    k = request.k
    depth = max(k, RRF_DEPTH) if hybrid else k
    with transaction.atomic(savepoint=False):
        current = _filtered(KnowledgeDocument.objects.current(), request.filters).defer(
            "embedding", "search_vector", "refined_embedding"
        )
        keyword: list[KnowledgeSearchHit] = []
        if hybrid:
            keyword = _keyword_hits(
                _keyword(request.words, depth, filters=request.filters, min_coverage=HYBRID_MIN_COVERAGE)
            )
        fallback, scan = _unrefined_nearest(current, target, depth)
        try:
            refined = pending.result()
        except EmbeddingError as exc:
            raise EmbeddingUnavailable(f"Could not embed the query: {exc}") from exc
        ranked, refined_scan = _refined_nearest(current.filter(refined_current()), refined.vector, depth)
        documents = reciprocal_rank_fusion(ranked, keyword, fallback)[:k]
    truncated = embedded.truncated or refined.truncated or (hybrid and request.words_truncated)
    if not hybrid and not (ranked and fallback):
        # One list: ordered by its distances, scored as plain semantic search.
        documents = [replace(hit, score=1.0 - _distance(hit)) for hit in documents]
    return KnowledgeSearchResult(
        documents=documents,
        scan=scan,
        mode="hybrid" if hybrid else "semantic",
        embedding_model=provider.model,
        query_truncated=truncated,
        query_tokens=embedded.tokens,
        refined_model=REFINED_MODEL,
        refined_scan=refined_scan,
    )


def _unrefined_nearest(
    current: KnowledgeDocumentQuerySet, target: list[float], k: int
) -> tuple[list[KnowledgeSearchHit], str]:
    """The refined tier's fallback list: the k nearest current documents without a current
    refined vector, by the default (local) model's cosine."""
    # First an index-only probe of knowledge_base_unrefined_idx, without the search's other
    # filters: in the steady state (everything refined) it finds nothing and the fallback
    # is skipped. The full filter is priced by the planner at a quarter of the shop (it
    # cannot estimate refined_digest <> text_digest) and read the shop's rows: 50-70 ms of
    # a ~110 ms search on the 10,000-document shop.
    if not KnowledgeDocument.objects.current().filter(not_refined()).exists():
        return [], "exact"
    unrefined = current.filter(not_refined()).filter(IsLocalModel(F("embedding_model")), embedding__isnull=False)
    hnsw = hnsw_index_state()
    if hnsw is not None:
        found, scan = _local_nearest(unrefined, target, k, hnsw)
    else:
        found, scan = _exact_nearest(unrefined, target, k), "exact"
    return [replace(hit, distance_model=LOCAL_EMBEDDING_MODEL) for hit in found], scan


def _refined_nearest(
    candidates: KnowledgeDocumentQuerySet, vector: list[float], k: int
) -> tuple[list[KnowledgeSearchHit], str]:
    """The k nearest refined vectors: exact up to hnsw_exact_search_limit() candidates, else
    through the refined HNSW index (same settings as the local model's), exact if it fell short."""
    limit = hnsw_exact_search_limit()
    count = candidates.order_by()[: limit + 1].count()
    if count == 0:
        return [], "exact"
    distance = CosineDistance(F("refined_embedding"), vector)
    exact = candidates.annotate(distance=exact_distance(distance))
    state = refined_index_state() if count > limit else None
    if state is None:
        return _refined_hits(exact.order_by("distance", "id")[:k]), "exact"
    with local_settings({**hnsw_search_settings(state, k), **INDEX_PLAN_SETTINGS}):
        found = _refined_hits(candidates.annotate(distance=distance).order_by("distance")[:k])
    wanted = k if count >= k else candidates.order_by()[:k].count()
    if len(found) < wanted:
        logger.warning("knowledge search: the refined index gave %d of %d rows; answering exactly", len(found), wanted)
        return _refined_hits(exact.order_by("distance", "id")[:k]), "hnsw+exact"
    return found, "hnsw"
