"""Serializers of knowledge documents and of the knowledge search."""

from __future__ import annotations

from typing import Any

import numpy
from rest_framework import serializers

from tenancy.api.serializers import AUDIT_FIELDS, StrictFieldsMixin, TenantModelSerializer

from ..models import (
    EMBEDDING_DIMENSIONS,
    DocumentType,
    KnowledgeDocument,
)
from ..services import KnowledgeSearchHit

# pgvector stores single-precision floats; a larger value is refused by the database.
FLOAT32_MAX = 3.4028234663852886e38


def vector_error(value: list[float]) -> tuple[str, str] | None:
    """(code, message) when PostgreSQL would store a vector no search can find, else None.

    Judged on what pgvector stores and computes: float4 components, and a cosine distance whose
    sums of products it accumulates in float4. 1,536 x 1e-46 is "not all zero" in float64 but
    rounds to a zero vector; 1,536 x 3e38 fits float4 but its squared norm overflows to
    infinity, so its distance is NaN. Both are stored and never appear in a search.
    """
    if len(value) != EMBEDDING_DIMENSIONS:
        return "dimensions", f"Must hold exactly {EMBEDDING_DIMENSIONS} numbers; got {len(value)}."
    with numpy.errstate(over="ignore", under="ignore", invalid="ignore"):
        stored = numpy.asarray(value, dtype=numpy.float64).astype(numpy.float32)
        if not numpy.isfinite(stored).all():
            return "out_of_range", f"Every number must be finite and within +-{FLOAT32_MAX:.4g} (float4)."
        squared_norm = numpy.dot(stored, stored)  # float4 arithmetic, as pgvector's
    if not numpy.isfinite(squared_norm):
        return "out_of_range", "The vector's squared norm overflows float4: its cosine distance would be NaN."
    if squared_norm == 0:
        return "zero", "Must not be all zeros (after rounding to float4): its cosine distance is undefined."
    return None


class KnowledgeDocumentSerializer(TenantModelSerializer):
    """One version of a document. Writes never edit a stored version: POST and PUT/PATCH each
    create a new version (advanced.knowledge.services).

    The embedding is written here but read back only by retrieve with `?include=embedding`:
    1536 floats per row would make a page of documents megabytes of JSON."""

    embedding = serializers.ListField(
        child=serializers.FloatField(min_value=-FLOAT32_MAX, max_value=FLOAT32_MAX),
        allow_null=True,
        required=False,
        write_only=True,
        help_text=(
            f"{EMBEDDING_DIMENSIONS} finite floats, not all zero. Omitted or null: the server embeds "
            "title + content with its provider; a PATCH that changes neither and omits it keeps the "
            "current vector. Returned only by retrieve with ?include=embedding."
        ),
    )
    has_embedding = serializers.SerializerMethodField()

    class Meta(TenantModelSerializer.Meta):
        model = KnowledgeDocument
        fields = (
            "id",
            "shop_domain",
            "document_key",
            "title",
            "content",
            "document_type",
            "embedding",
            "has_embedding",
            "embedding_model",
            "version",
            "is_current",
            "previous_version",
            "tags",
            "source_url",
            *AUDIT_FIELDS,
        )
        # Versioning is managed by the service that creates new versions, not by clients.
        read_only_fields = (*TenantModelSerializer.Meta.read_only_fields, "version", "is_current", "previous_version")
        extra_kwargs = {
            "embedding_model": {
                "help_text": "Model of a client-sent embedding (default `client`); the server's model otherwise."
            },
            "document_key": {
                "help_text": "Stable key shared by all versions; POST with an existing key adds a version."
            },
        }

    def get_has_embedding(self, instance: KnowledgeDocument) -> bool:
        if "embedding" in instance.get_deferred_fields():
            # Lists defer the vector and annotate whether it is there (see the view).
            return bool(getattr(instance, "embedding_present", False))
        return instance.embedding is not None

    def validate_embedding(self, value: list[float] | None) -> list[float] | None:
        problem = None if value is None else vector_error(value)
        if problem is not None:
            raise serializers.ValidationError(problem[1], code=problem[0])
        return value

    def validate_tags(self, value: list[str]) -> list[str]:
        # A tag given twice is the same tag; keep the first occurrence's place.
        return list(dict.fromkeys(value))

    def validate_document_key(self, value: str) -> str:
        # An existing key is not an error: the save adds a version to that document.
        if self.instance is not None and value != self.instance.document_key:
            raise serializers.ValidationError(
                "A document's key cannot change; create a document under the new key instead.", code="immutable"
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("embedding_model") and attrs.get("embedding") is None:
            raise serializers.ValidationError(
                {"embedding_model": ["Give embedding_model only together with embedding."]}, code="invalid"
            )
        return attrs

    def to_representation(self, instance: KnowledgeDocument) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        if self.context.get("include_embedding"):
            data["embedding"] = instance.embedding
        return data


# The longest text query: the embedding models read about 8,000 tokens.
SEARCH_QUERY_MAX_LENGTH = 20_000
SEARCH_MAX_TAGS = 50


class KnowledgeSearchSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """POST /knowledge-documents/search/: a text or a vector, k, and filters."""

    query = serializers.CharField(
        required=False,
        max_length=SEARCH_QUERY_MAX_LENGTH,
        help_text="Text to search for; embedded by the server's provider and compared with documents of that model.",
    )
    vector = serializers.ListField(
        child=serializers.FloatField(min_value=-FLOAT32_MAX, max_value=FLOAT32_MAX),
        required=False,
        help_text=f"Instead of query: {EMBEDDING_DIMENSIONS} finite floats, not all zero.",
    )
    k = serializers.IntegerField(min_value=1, max_value=100, default=10, help_text="Results wanted (1-100).")
    mode = serializers.ChoiceField(
        choices=[("semantic", "semantic"), ("keyword", "keyword"), ("hybrid", "hybrid")],
        required=False,
        help_text="`semantic` (vectors), `keyword` (full text) or `hybrid` (both, fused by reciprocal rank). "
        "Default: hybrid for a text query, semantic for a vector (the only mode a vector allows).",
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        default=list,
        max_length=SEARCH_MAX_TAGS,
        help_text="Only documents with these tags (see tags_mode); empty: no tag filter.",
    )
    tags_mode = serializers.ChoiceField(
        choices=[("all", "all"), ("any", "any")],
        default="all",
        help_text="`all`: every tag (`@>`); `any`: at least one (`&&`).",
    )
    document_type = serializers.ChoiceField(choices=DocumentType.choices, required=False)
    embedding_model = serializers.CharField(
        required=False,
        max_length=100,
        help_text="With vector only: compare only with documents embedded by this model.",
    )

    def validate_vector(self, value: list[float]) -> list[float]:
        problem = vector_error(value)
        if problem is not None:
            raise serializers.ValidationError(problem[1], code=problem[0])
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("query" in attrs) == ("vector" in attrs):
            raise serializers.ValidationError(
                "Give either query (text) or vector (numbers), not both.", code="required"
            )
        if "embedding_model" in attrs and "vector" not in attrs:
            raise serializers.ValidationError(
                {"embedding_model": ["Only with vector: a text query uses the server's model."]}, code="invalid"
            )
        return attrs


# Reads a KnowledgeSearchHit (advanced.knowledge.services.search), not a model instance; the
# model's fields still declare the document's part of the schema. (Not in the docstring: that
# is the schema's description.)
class KnowledgeSearchHitSerializer(TenantModelSerializer):
    """One search result: a current version (without its vector) and its distance to the query."""

    distance = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="Cosine distance to the query: 0 same direction, 2 opposite; null when only keyword search found it.",
    )
    keyword_rank = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="Full text rank (ts_rank); null when keyword search did not find it or did not run.",
    )
    score = serializers.FloatField(
        read_only=True,
        help_text="What the results are ordered by: 1 - distance (semantic), keyword_rank (keyword) or the fused "
        "reciprocal rank score (hybrid, or semantic over refined and not yet refined documents).",
    )
    distance_model = serializers.SerializerMethodField(
        help_text="The model whose cosine `distance` is: the refined model for a document with a current refined "
        "vector, else its embedding_model; null when only keyword search found it."
    )

    def get_distance_model(self, instance: KnowledgeSearchHit) -> str | None:
        return instance.distance_model

    class Meta(TenantModelSerializer.Meta):
        model = KnowledgeDocument
        fields = (
            "id",
            "shop_domain",
            "document_key",
            "version",
            "title",
            "content",
            "document_type",
            "tags",
            "source_url",
            "embedding_model",
            "created_at",
            "updated_at",
            "distance",
            "distance_model",
            "keyword_rank",
            "score",
        )
        read_only_fields = fields


class KnowledgeSearchResponseSerializer(serializers.Serializer[Any]):
    count = serializers.IntegerField(help_text="Results returned: min(k, matching current documents).")
    mode = serializers.ChoiceField(
        choices=[("semantic", "semantic"), ("keyword", "keyword"), ("hybrid", "hybrid")],
        help_text="The mode that answered.",
    )
    embedding_model = serializers.CharField(
        allow_null=True,
        help_text="The model the query was embedded with (documents of other models are not compared); "
        "null in keyword mode or for a vector query without embedding_model.",
    )
    scan = serializers.ChoiceField(
        choices=[(scan, scan) for scan in ("exact", "hnsw", "hnsw+exact", "ivfflat", "ivfflat+exact")],
        allow_null=True,
        help_text="How the vector side was searched: exact scan of the candidates, the default model's HNSW index, "
        "the IVFFlat index (other models, vector queries), or an index then exact; null in keyword mode.",
    )
    query_truncated = serializers.BooleanField(
        help_text="True when the query was longer than the model reads (its first query_tokens tokens were used) "
        "or than keyword search's 64 words."
    )
    query_tokens = serializers.IntegerField(
        allow_null=True, help_text="Tokens of the query the model read (null: keyword mode or a vector)."
    )
    refined_model = serializers.CharField(
        allow_null=True,
        help_text="The refined model when its vectors took part (semantic and hybrid text queries of a shop with "
        "refined documents; the rest are compared by embedding_model); null otherwise.",
    )
    refined_scan = serializers.ChoiceField(
        choices=[(scan, scan) for scan in ("exact", "hnsw", "hnsw+exact")],
        allow_null=True,
        help_text="How the refined vectors were searched; null when they were not.",
    )
    results = KnowledgeSearchHitSerializer(many=True, help_text="Nearest first.")
