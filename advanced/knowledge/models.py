"""The AI knowledge base, versioned documents with their embeddings. The SQL expressions its
indexes and searches share are in expressions.py (with the planner invariants)."""

from __future__ import annotations

from typing import ClassVar

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import MD5, Concat
from pgvector.django import HnswIndex, IvfflatIndex, VectorField

from tenancy.db import choices_check
from tenancy.models import ShopScopedModel
from tenancy.tables import PolicyKind, Retention, TenantTable

from .embeddings import LOCAL_EMBEDDING_MODEL
from .embeddings_transformer import REFINED_DIMENSIONS, REFINED_MODEL

# Migration 0014 names these two through advanced.models (the index predicate they build).
from .expressions import IsNotRefinedModel as IsNotRefinedModel
from .expressions import NotEqual as NotEqual
from .expressions import local_embedding, not_refined
from .querysets import KnowledgeDocumentQuerySet

EMBEDDING_DIMENSIONS = 1536
# The text search configuration a row's keyword vector was built with, when nothing says
# otherwise (settings.KNOWLEDGE_SEARCH_LANGUAGE chooses it for new rows).
DEFAULT_SEARCH_LANGUAGE = "english"
LOCAL_INDEX_NAME = "knowledge_base_local_hnsw_idx"
REFINED_INDEX_NAME = "knowledge_base_minilm_hnsw_idx"


def text_digest() -> MD5:
    """md5 of what both embeddings read (advanced.knowledge.embeddings.document_text's inputs): a refined
    vector is current only while the row's digest equals the one it was computed from."""
    return MD5(Concat(F("title"), Value("\n\n"), F("content"), output_field=models.TextField()))


class RegConfigField(models.CharField):
    """A PostgreSQL `regconfig` (text search configuration name, e.g. "english").

    The type, not text: `to_tsvector(regconfig, text)` is immutable and may generate a
    column, while a `text::regconfig` cast is only stable and may not. An unknown name is
    refused by the type's input function (22023 invalid_parameter_value)."""

    def db_type(self, connection: object) -> str:
        return "regconfig"

    def rel_db_type(self, connection: object) -> str:
        return "regconfig"

    def cast_db_type(self, connection: object) -> str:
        # CharField's would be varchar: Cast(..., RegConfigField()) must be ::regconfig.
        return "regconfig"


class DocumentType(models.TextChoices):
    FAQ = "faq", "FAQ"
    POLICY = "policy", "Policy"
    PRODUCT = "product", "Product"
    GUIDE = "guide", "Guide"
    BRAND = "brand", "Brand voice"
    PLAYBOOK = "playbook", "Playbook"
    NOTE = "note", "Note"


class KnowledgeDocument(ShopScopedModel):
    """One version of a document the shop's AI agents may retrieve, with its embedding."""

    tenancy: ClassVar[TenantTable] = TenantTable(policy=PolicyKind.SHOP, retention=Retention.forever())

    document_key = models.SlugField(max_length=200, db_index=False, help_text="Stable key shared by all versions.")
    title = models.CharField(max_length=500)
    # About 25,000 words. The embedding models read ~8,000 tokens (~32,000 characters) of it;
    # the hashing embedder takes ~0.1 s for this much (10 MB took 5.6 s), and every edit stores
    # a new version of the whole text.
    content = models.TextField(max_length=100_000)
    document_type = models.CharField(max_length=16, choices=DocumentType.choices, default=DocumentType.NOTE)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)
    embedding_model = models.CharField(max_length=100, blank=True, default="")
    version = models.PositiveIntegerField(default=1)
    is_current = models.BooleanField(default=True)
    previous_version = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="next_versions",
        # The database enforces (previous_version_id, shop_domain) -> knowledge_base instead.
        db_constraint=False,
    )
    tags = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    source_url = models.URLField(max_length=2048, blank=True, default="")
    search_language = RegConfigField(
        max_length=63,
        default=DEFAULT_SEARCH_LANGUAGE,
        db_default=DEFAULT_SEARCH_LANGUAGE,
        help_text="Text search configuration of search_vector (KNOWLEDGE_SEARCH_LANGUAGE when written).",
    )
    # Keyword search: title (weight A) and content (weight B) as lexemes of the row's language,
    # kept by PostgreSQL itself so no writer (service, bulk load, SQL) can leave it stale.
    search_vector = models.GeneratedField(
        expression=SearchVector("title", weight="A", config=F("search_language"))
        + SearchVector("content", weight="B", config=F("search_language")),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    # The second tier (advanced.knowledge.embeddings_transformer): all-MiniLM-L6-v2's vector,
    # filled in the background by advanced.knowledge.services.refine. Search uses it only while
    # `refined_digest` equals `text_digest` (PostgreSQL recomputes that on every write of title
    # or content, whoever writes): a stale refined vector is never compared, and the refine job
    # recomputes it. Never accepted from a client (the API's serializers leave it out).
    refined_embedding = VectorField(dimensions=REFINED_DIMENSIONS, null=True, blank=True, editable=False)
    # db_default too: writers in SQL (bulk loads, bench/retrieval.py) name only the columns they know.
    refined_model = models.CharField(max_length=100, blank=True, default="", db_default="", editable=False)
    refined_digest = models.CharField(max_length=32, blank=True, default="", db_default="", editable=False)
    refined_at = models.DateTimeField(null=True, blank=True, editable=False)
    text_digest = models.GeneratedField(
        expression=text_digest(), output_field=models.CharField(max_length=32), db_persist=True
    )

    objects = KnowledgeDocumentQuerySet.as_manager()

    class Meta:
        db_table = "knowledge_base"
        ordering = ["document_key", "-version"]
        verbose_name = "knowledge document"
        indexes = [
            IvfflatIndex(
                name="knowledge_base_embedding_idx",
                fields=["embedding"],
                lists=100,
                opclasses=["vector_cosine_ops"],
            ),
            # The default (local) model's vectors: an HNSW graph over their 256 dimensions, for
            # that model's rows only. On a 10,000-document shop (bench/retrieval.py) it answers
            # the 50 nearest in ~1 ms, where IVFFlat over the 1536-d column took ~28 ms (3 of
            # 10 lists: every probed vector is 6 KB) and an exact scan ~52 ms, and it finds
            # what the exact search finds (IVFFlat lost a fifth of it: 0.547 vs 0.676 recall@3).
            # HNSW needs no fitting to the rows (IVFFlat's centroids do) and, unlike IVFFlat,
            # takes the 256-d expression cheaply. Other models keep the IVFFlat index above.
            HnswIndex(
                OpClass(local_embedding(), name="vector_cosine_ops"),
                name=LOCAL_INDEX_NAME,
                condition=Q(embedding_model=LOCAL_EMBEDDING_MODEL),
                m=16,
                ef_construction=64,
            ),
            # The refined model's vectors (384-d), for that model's rows only: same shape, same
            # settings as the local model's index; a stale vector is filtered after the walk.
            HnswIndex(
                fields=["refined_embedding"],
                name=REFINED_INDEX_NAME,
                opclasses=["vector_cosine_ops"],
                condition=Q(refined_model=REFINED_MODEL),
                m=16,
                ef_construction=64,
            ),
            # What the refine job picks (current rows without a current refined vector) and what
            # a search asks first (does the shop have refined rows?), each an index-only probe.
            models.Index(
                fields=["shop", "id"],
                name="knowledge_base_unrefined_idx",
                condition=Q(is_current=True) & not_refined(),
            ),
            models.Index(
                fields=["shop", "id"],
                name="knowledge_base_refined_idx",
                condition=Q(is_current=True, refined_model=REFINED_MODEL, refined_digest=F("text_digest")),
            ),
            models.Index(fields=["shop", "document_type"], name="knowledge_base_shop_type_idx"),
            GinIndex(fields=["tags"], name="knowledge_base_tags_idx"),
            GinIndex(fields=["search_vector"], name="knowledge_base_fts_idx"),
            # What knowledge_search counts to choose exact or index search: an index-only scan
            # that stops at the limit (1 ms instead of 10-35 ms through the shop/type index).
            # The model is in it because a text query counts only its own model's rows: without
            # it that count read the heap, 3-12 ms on a 10,000-document shop.
            models.Index(
                fields=["shop", "embedding_model", "id"],
                name="knowledge_base_searchable_idx",
                condition=Q(is_current=True, embedding__isnull=False),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["shop", "document_key", "version"],
                name="%(app_label)s_%(class)s_version_uniq",
            ),
            # At most one current version per document, also under concurrent writers.
            models.UniqueConstraint(
                fields=["shop", "document_key"],
                condition=Q(is_current=True),
                name="%(app_label)s_%(class)s_one_current_uniq",
            ),
            # Target of the composite foreign key from previous_version.
            models.UniqueConstraint(fields=["id", "shop"], name="%(app_label)s_%(class)s_id_shop_uniq"),
            choices_check("document_type", DocumentType),
            models.CheckConstraint(
                condition=Q(version__gte=1),
                name="%(app_label)s_%(class)s_version_gte_1",
            ),
            models.CheckConstraint(
                condition=~Q(previous_version=F("id")),
                name="%(app_label)s_%(class)s_not_own_previous",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.document_key} v{self.version}"
