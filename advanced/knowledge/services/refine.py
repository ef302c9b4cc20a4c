"""Refining: the second embedding tier (advanced.knowledge.embeddings_transformer), filled in the background.

A document is searchable the moment it is saved (WordLlama vector + keywords). The refine job
(`manage.py refine_knowledge`, the periodic task `jobs.refine_knowledge`) then computes its
all-MiniLM-L6-v2 vector, which hybrid and semantic search prefer (search.py):

- What is pending is the filter itself: current versions whose refined vector is missing, of
  another model, or computed from another text (`refined_digest` differs from the generated
  `text_digest`, which PostgreSQL recomputes on every write of title or content, whichever
  path writes). So the job is idempotent and resumable, and a stale vector is recomputed.
- The model runs outside any row lock; the UPDATE then stores a vector only where the row's
  digest still equals the one of the text that was embedded: a concurrent edit in place is
  never overwritten with a vector of the old text (the row stays pending).
- Batches commit one by one; two runs at once are prevented by the job's locks (procrastinate
  `lock`, jobs.services.job_lock), and would only repeat work if they happened: the UPDATE
  re-checks what it changes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from django.db import transaction
from django.db.models import Q

from ..embeddings import EmbeddingError, document_text
from ..embeddings_transformer import REFINED_MODEL, RefinedEmbeddingProvider
from ..expressions import not_refined
from ..expressions import refined_current as refined_current
from ..models import KnowledgeDocument
from ..querysets import KnowledgeDocumentQuerySet
from .binary import binary_vector_cursor
from .errors import EmbeddingUnavailable

# Documents embedded and committed together: ~0.5-1 s of the model on 2 cores, so a batch's
# transaction stays short and an interrupted run loses little.
DEFAULT_REFINE_BATCH_SIZE = 32
MAX_REFINE_BATCH_SIZE = 1000


def not_refined_current() -> Q:
    """Current-or-not rows without a current refined vector (expressions.not_refined, the
    predicate of knowledge_base_unrefined_idx)."""
    return not_refined()


def refine_pending(*, shop_id: str | None = None) -> KnowledgeDocumentQuerySet:
    """Current versions (in the active scope) without a current refined vector."""
    rows = KnowledgeDocument.objects.current()
    if shop_id is not None:
        rows = rows.filter(shop_id=shop_id)
    return rows.filter(not_refined_current())


@dataclass(frozen=True)
class RefineBatch:
    refined: int  # rows given a refined vector by this batch
    last_id: int | None  # the highest id it looked at (None: nothing was left)


@transaction.atomic
def knowledge_refine_batch(
    *,
    provider: RefinedEmbeddingProvider | None = None,
    shop_id: str | None = None,
    batch_size: int = DEFAULT_REFINE_BATCH_SIZE,
    after_id: int = 0,
) -> RefineBatch:
    """Refine the next `batch_size` pending rows (ids above `after_id`), in one transaction."""
    if not 1 <= batch_size <= MAX_REFINE_BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {MAX_REFINE_BATCH_SIZE}; got {batch_size}.")
    provider = provider or RefinedEmbeddingProvider()
    rows = list(
        refine_pending(shop_id=shop_id)
        .filter(id__gt=after_id)
        .order_by("id")
        .values_list("id", "title", "content", "text_digest")[:batch_size]
    )
    if not rows:
        return RefineBatch(refined=0, last_id=None)
    try:
        vectors = provider.embed_array([document_text(title=title, content=content) for _i, title, content, _d in rows])
    except EmbeddingError as exc:
        raise EmbeddingUnavailable(f"Could not refine the documents: {exc}") from exc
    refined = _store(ids=[row[0] for row in rows], digests=[row[3] for row in rows], vectors=vectors)
    return RefineBatch(refined=refined, last_id=rows[-1][0])


def knowledge_refine(
    *,
    provider: RefinedEmbeddingProvider | None = None,
    shop_id: str | None = None,
    batch_size: int = DEFAULT_REFINE_BATCH_SIZE,
    max_seconds: float | None = None,
) -> Iterator[RefineBatch]:
    """Every batch until nothing is pending (or `max_seconds` have passed after a batch);
    each commits on its own (call it outside a transaction, inside a scope that sees the rows)."""
    provider = provider or RefinedEmbeddingProvider()
    after_id, started = 0, time.monotonic()
    while True:
        batch = knowledge_refine_batch(provider=provider, shop_id=shop_id, batch_size=batch_size, after_id=after_id)
        if batch.last_id is None:
            return
        after_id = batch.last_id
        yield batch
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            return


def _store(*, ids: list[int], digests: list[str], vectors: np.ndarray) -> int:
    """One UPDATE with the vectors as binary parameters (binary.py), only
    where the text is still the one embedded."""
    with binary_vector_cursor() as cursor:
        cursor.execute(
            """
            UPDATE knowledge_base AS kb
               SET refined_embedding = new.embedding, refined_model = %(model)s,
                   refined_digest = new.digest, refined_at = now()
              FROM unnest(%(ids)s::bigint[], %(digests)s::text[], %(vectors)b::vector[]) AS new(id, digest, embedding)
             WHERE kb.id = new.id AND kb.text_digest = new.digest
            """,
            {"model": REFINED_MODEL, "ids": ids, "digests": digests, "vectors": list(vectors)},
            prepare=False,
        )
        return cursor.rowcount
