"""Knowledge documents as versions: save, revise, delete (the writes of the knowledge base).

A document is identified by `(shop, document_key)`; every save creates a new row
(version 1, 2, ...) and older versions are never edited: the previous current version only
has `is_current` flipped to false. `knowledge_document_save` serialises writers of one key
with a transaction-level advisory lock, then locks the current row (`SELECT ... FOR UPDATE`),
flips it and inserts the next version, so the partial unique index (one current version per
key) never sees two current rows. A writer that bypasses the service and races us is caught
by that index and the version unique index: the save retries in a fresh savepoint (it then
sees the committed winner) and gives up with a 409 after `SAVE_ATTEMPTS`.

Embeddings. A client may send its own 1536-float vector (recorded with the `embedding_model`
it names); otherwise the text `title + content` is embedded by the configured provider
(`advanced.knowledge.embeddings`), outside the lock, so a slow provider never holds up other writers. A
new version whose title and content equal an earlier version's reuses that vector when the
provider's model made it; a partial edit (PATCH) of other fields keeps the current vector.
The row records the text search configuration (KNOWLEDGE_SEARCH_LANGUAGE) its keyword
vector is generated with. A new version starts without a refined vector (refine.py fills it in
the background), except one whose title and content equal an earlier version's: it takes that
version's current refined vector.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.db.models.functions import Now

from tenancy.errors import Refused
from tenancy.services import constraint_error

from ..embeddings import EmbeddingError, EmbeddingProvider, document_text, embedding_provider
from ..expressions import refined_current
from ..models import EMBEDDING_DIMENSIONS, DocumentType, KnowledgeDocument
from .errors import EmbeddingUnavailable, KnowledgeConflict

logger = logging.getLogger(__name__)

# Recorded as embedding_model when a client sends a vector without naming its model.
CLIENT_EMBEDDING_MODEL = "client"
# A race with a writer outside the service costs one retry; three is ample.
SAVE_ATTEMPTS = 3
# First key of the two-key advisory lock: "KB", so our locks never collide with another
# feature's single-key locks.
ADVISORY_LOCK_CLASS = 0x4B42
VERSION_CONSTRAINTS = frozenset(
    {"advanced_knowledgedocument_version_uniq", "advanced_knowledgedocument_one_current_uniq"}
)
FLOAT32_MAX = 3.4028234663852886e38


def clean_vector(values: Sequence[float], *, field_name: str) -> list[float]:
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
        return clean_vector(embedding, field_name="embedding"), embedding_model or CLIENT_EMBEDDING_MODEL
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


def _keep_refined(document: KnowledgeDocument) -> None:
    """A new version with an earlier version's exact title and content (an edit of its tags or
    type) takes that version's current refined vector: the refine job need not run again. Any
    other new version starts without one (refine.py fills it; search falls back meanwhile)."""
    earlier = (
        KnowledgeDocument.objects.filter(
            shop_id=document.shop_id, document_key=document.document_key, title=document.title, content=document.content
        )
        .filter(refined_current())
        .order_by("-version")
        .values_list("refined_embedding", "refined_model", "refined_digest", "refined_at")
        .first()
    )
    if earlier is not None:
        document.refined_embedding, document.refined_model, document.refined_digest, document.refined_at = earlier


def lock_key(shop_id: str, document_key: str) -> None:
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
        search_language=settings.KNOWLEDGE_SEARCH_LANGUAGE,
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
    _keep_refined(document)
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
    lock_key(shop_id, key)
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
    lock_key(document.shop_id, document.document_key)
    current = _current_for_update(document.shop_id, document.document_key)
    if current is None or current.pk != document.pk:
        raise KnowledgeConflict(
            f"Version {document.version} of {document.document_key!r} is history; delete the document through "
            "its current version, which removes every version."
        )
    deleted, _ = KnowledgeDocument.objects.filter(shop_id=document.shop_id, document_key=document.document_key).delete()
    return deleted
