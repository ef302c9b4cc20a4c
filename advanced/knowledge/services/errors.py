"""The knowledge base's own kinds of domain error (the API edge gives each its status)."""

from __future__ import annotations

from tenancy.errors import Conflict, Unavailable


class KnowledgeConflict(Conflict):
    """The operation needs the current version and the document has moved on (HTTP 409)."""

    default_detail = "The document changed; reload its current version and try again."
    default_code = "conflict"


class EmbeddingUnavailable(Unavailable):
    """The embedding provider failed; nothing was written (HTTP 502)."""

    default_detail = "The embedding provider failed."
    default_code = "embedding_failed"
