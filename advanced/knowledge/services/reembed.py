"""Re-embedding: move stored documents to the configured model and text search language.

A switch of EMBEDDING_PROVIDER (or of its model) leaves the stored vectors in the old
model's space, where a query of the new model cannot reach them (a search compares only
like with like), and a switch of KNOWLEDGE_SEARCH_LANGUAGE leaves keyword vectors stemmed
the old way. `knowledge_reembed_batch` moves the next `batch_size` rows that are behind,
in id order, and commits them in one UPDATE:

- In place, never a new version: a version's title and content never change, so its vector
  is a pure function of the row and the model, and rewriting it is not an edit. The vector
  column goes from the old vector to the new one in one statement: never NULL on the way,
  and never a second current version.
- Idempotent and resumable: what is "behind" is the filter itself (another model, no vector,
  or another language), and the UPDATE re-checks it, so a rerun after an interruption
  continues where the last committed batch ended and a run with nothing behind does nothing.
  A version saved meanwhile is written with the current model already.
- Current versions only by default (what searches read); `all_versions` includes history.
- Every vector not of the current model is replaced, a client's own included: a search
  could not use it next to the model's vectors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL

from ..embeddings import EmbeddingError, EmbeddingProvider, document_text, embedding_provider
from ..models import KnowledgeDocument, RegConfigField
from ..querysets import KnowledgeDocumentQuerySet
from .binary import binary_vector_cursor
from .errors import EmbeddingUnavailable

DEFAULT_BATCH_SIZE = 500
MAX_BATCH_SIZE = 10_000


def reembed_pending(*, model: str, shop_id: str | None = None, all_versions: bool = False) -> KnowledgeDocumentQuerySet:
    """Rows (in the active scope) whose vector is not of `model`, or whose keyword vector is
    not of KNOWLEDGE_SEARCH_LANGUAGE."""
    rows = KnowledgeDocument.objects.all()
    if not all_versions:
        rows = rows.current()
    if shop_id is not None:
        rows = rows.filter(shop_id=shop_id)
    # Cast: a bare parameter compared with a regconfig is read as an oid (regconfig = oid).
    language = RawSQL("%s::regconfig", [settings.KNOWLEDGE_SEARCH_LANGUAGE], output_field=RegConfigField())
    behind = Q(embedding__isnull=True) | ~Q(embedding_model=model) | ~Q(search_language=language)
    return rows.filter(behind)


@dataclass(frozen=True)
class ReembedBatch:
    updated: int  # rows moved by this batch
    last_id: int | None  # the highest id it looked at (None: nothing was left)


@transaction.atomic
def knowledge_reembed_batch(
    *,
    provider: EmbeddingProvider | None = None,
    shop_id: str | None = None,
    all_versions: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    after_id: int = 0,
) -> ReembedBatch:
    """Re-embed the next `batch_size` rows behind (ids above `after_id`), in one transaction."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}; got {batch_size}.")
    provider = provider or embedding_provider()
    rows = list(
        reembed_pending(model=provider.model, shop_id=shop_id, all_versions=all_versions)
        .filter(id__gt=after_id)
        .order_by("id")
        .values_list("id", "title", "content", "embedding_model")[:batch_size]
    )
    if not rows:
        return ReembedBatch(updated=0, last_id=None)
    # A row already of the model (only its language is behind) keeps its vector.
    stale = [row for row in rows if row[3] != provider.model]
    try:
        vectors = provider.embed_array(
            [document_text(title=title, content=content) for _id, title, content, _m in stale]
        )
    except EmbeddingError as exc:
        raise EmbeddingUnavailable(f"Could not embed the documents: {exc}") from exc
    language = settings.KNOWLEDGE_SEARCH_LANGUAGE
    updated = 0
    if stale:
        updated += _store_vectors([row[0] for row in stale], vectors, model=provider.model, language=language)
    with connection.cursor() as cursor:
        fresh = [row[0] for row in rows if row[3] == provider.model]
        if fresh:
            cursor.execute(
                """
                UPDATE knowledge_base SET search_language = %s::regconfig, updated_at = now()
                 WHERE id = ANY(%s::bigint[]) AND search_language <> %s::regconfig
                """,
                [language, fresh, language],
            )
            updated += cursor.rowcount
    return ReembedBatch(updated=updated, last_id=rows[-1][0])


def knowledge_reembed(
    *,
    provider: EmbeddingProvider | None = None,
    shop_id: str | None = None,
    all_versions: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[ReembedBatch]:
    """Every batch until nothing is behind; each batch commits on its own (call it outside a
    transaction to make the run resumable, inside the scope that may see the rows)."""
    provider = provider or embedding_provider()
    after_id = 0
    while True:
        batch = knowledge_reembed_batch(
            provider=provider, shop_id=shop_id, all_versions=all_versions, batch_size=batch_size, after_id=after_id
        )
        if batch.last_id is None:
            return
        after_id = batch.last_id
        yield batch


def _store_vectors(ids: list[int], vectors: np.ndarray, *, model: str, language: str) -> int:
    """One UPDATE of `ids` to `vectors` (rows still behind only), the vectors sent as binary
    parameters (binary.py)."""
    with binary_vector_cursor() as cursor:
        cursor.execute(
            """
            UPDATE knowledge_base AS kb
               SET embedding = new.embedding, embedding_model = %(model)s,
                   search_language = %(language)s::regconfig, updated_at = now()
              FROM unnest(%(ids)s::bigint[], %(vectors)b::vector[]) AS new(id, embedding)
             WHERE kb.id = new.id
               AND (kb.embedding IS NULL OR kb.embedding_model <> %(model)s
                    OR kb.search_language <> %(language)s::regconfig)
            """,
            {"model": model, "language": language, "ids": ids, "vectors": list(vectors)},
            prepare=False,
        )
        return cursor.rowcount
