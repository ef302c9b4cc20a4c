"""The knowledge base's errors that reach the API edge with their own status."""

from __future__ import annotations

from rest_framework import exceptions


class KnowledgeConflict(exceptions.APIException):
    """The operation needs the current version and the document has moved on (HTTP 409)."""

    status_code = 409
    default_detail = "The document changed; reload its current version and try again."
    default_code = "conflict"


class EmbeddingUnavailable(exceptions.APIException):
    """The embedding provider failed; nothing was written (HTTP 502)."""

    status_code = 502
    default_detail = "The embedding provider failed."
    default_code = "embedding_failed"
