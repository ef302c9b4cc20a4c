"""A search's hits: the typed result of every mode, built from the rows as each list leaves
the database, and the fusion of lists by rank."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from ..embeddings_transformer import REFINED_MODEL
from ..models import KnowledgeDocument

# Cormack, Clarke & Buettcher (2009): k = 60 damps the weight of the very first ranks so that
# one list cannot outvote the other with its top hit alone.
RRF_K = 60


@dataclass(frozen=True)
class KnowledgeSearchHit:
    """One result: the fields of a current version the API returns (not its vectors) and how it
    matched the query."""

    id: int
    shop_id: str
    document_key: str
    version: int
    title: str
    content: str
    document_type: str
    tags: tuple[str, ...]
    source_url: str
    embedding_model: str
    created_at: datetime
    updated_at: datetime
    # Cosine distance to the query (None: only keyword search found it) and the model it is of:
    # the refined model for a refined vector, else the document's embedding_model.
    distance: float | None
    distance_model: str | None
    # ts_rank (None: keyword search did not find it, or did not run).
    keyword_rank: float | None
    # The ordering: 1 - distance (semantic), keyword_rank (keyword) or the fused RRF score.
    score: float

    @property
    def pk(self) -> int:
        return self.id


def _hit(
    row: KnowledgeDocument,
    *,
    distance: float | None,
    distance_model: str | None,
    keyword_rank: float | None,
    score: float,
) -> KnowledgeSearchHit:
    return KnowledgeSearchHit(
        id=row.pk,
        shop_id=row.shop_id,
        document_key=row.document_key,
        version=row.version,
        title=row.title,
        content=row.content,
        document_type=row.document_type,
        tags=tuple(row.tags),
        source_url=row.source_url,
        embedding_model=row.embedding_model,
        created_at=row.created_at,
        updated_at=row.updated_at,
        distance=distance,
        distance_model=distance_model,
        keyword_rank=keyword_rank,
        score=score,
    )


def _annotation(row: KnowledgeDocument, name: str) -> float:
    """A value the query annotated the row with (Django sets it as an instance attribute)."""
    return float(vars(row)[name])


def _nearest_hits(rows: Iterable[KnowledgeDocument], *, distance_model: str | None = None) -> list[KnowledgeSearchHit]:
    """Rows annotated with `distance`, as hits nearest first (relaxed_order may return rows
    slightly out of order), scored 1 - distance. A zero vector stored before vectors were
    checked has no cosine distance (NaN): it cannot be ranked. `distance_model`: the model of
    the compared vectors (default: each row's embedding_model)."""
    found = [(distance, row) for row in rows if math.isfinite(distance := _annotation(row, "distance"))]
    found.sort(key=lambda pair: (pair[0], pair[1].pk))
    return [
        _hit(
            row,
            distance=distance,
            distance_model=distance_model or row.embedding_model,
            keyword_rank=None,
            score=1.0 - distance,
        )
        for distance, row in found
    ]


def _keyword_hits(rows: Iterable[KnowledgeDocument]) -> list[KnowledgeSearchHit]:
    """Rows annotated with `keyword_rank`, in their order, scored by it."""
    hits = []
    for row in rows:
        rank = _annotation(row, "keyword_rank")
        hits.append(_hit(row, distance=None, distance_model=None, keyword_rank=rank, score=rank))
    return hits


def reciprocal_rank_fusion(
    semantic: list[KnowledgeSearchHit], keyword: list[KnowledgeSearchHit], *more_semantic: list[KnowledgeSearchHit]
) -> list[KnowledgeSearchHit]:
    """The hits of the lists by sum of 1 / (RRF_K + rank), best first (ties: nearer, then id).

    A document in a semantic list and the keyword list keeps the semantic hit's distance and
    gains the keyword hit's `keyword_rank`. `more_semantic`: further semantic lists (the refined
    search's fallback), of documents none of the other semantic lists holds.
    """
    fused: dict[int, KnowledgeSearchHit] = {}
    scores: dict[int, float] = {}
    for ranking in (semantic, *more_semantic):
        for rank, hit in enumerate(ranking, start=1):
            fused[hit.id] = replace(hit, keyword_rank=None)
            scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (RRF_K + rank)
    for rank, hit in enumerate(keyword, start=1):
        if hit.id in fused:
            fused[hit.id] = replace(fused[hit.id], keyword_rank=hit.keyword_rank)
        else:
            fused[hit.id] = replace(hit, distance=None, distance_model=None)
        scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (RRF_K + rank)

    def order(hit: KnowledgeSearchHit) -> tuple[float, float, int]:
        return (-scores[hit.id], math.inf if hit.distance is None else hit.distance, hit.id)

    return [replace(hit, score=scores[hit.id]) for hit in sorted(fused.values(), key=order)]


def _distance(hit: KnowledgeSearchHit) -> float:
    assert hit.distance is not None  # a semantic list's hit
    return hit.distance


def _refined_hits(rows: Iterable[KnowledgeDocument]) -> list[KnowledgeSearchHit]:
    return _nearest_hits(rows, distance_model=REFINED_MODEL)
