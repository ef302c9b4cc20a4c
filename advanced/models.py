"""Phase 10-13: A/B experiments and their statistics, the AI knowledge base, CEO briefings."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import ClassVar

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Func, Q, Value
from django.db.models.functions import MD5, Cast, Concat
from django.db.models.lookups import Exact
from pgvector.django import HnswIndex, IvfflatIndex, VectorField

from tenancy.db import choices_check, nonnegative_checks, range_checks, ratio_field
from tenancy.models import ShopScopedModel
from tenancy.tables import PolicyKind, Retention, TenantTable

from .embeddings import LOCAL_EMBEDDING_MODEL, WORDLLAMA_DIMENSIONS
from .embeddings_transformer import REFINED_DIMENSIONS, REFINED_MODEL
from .querysets import (
    CeoBriefingQuerySet,
    ExperimentQuerySet,
    ExperimentResultQuerySet,
    KnowledgeDocumentQuerySet,
)

EMBEDDING_DIMENSIONS = 1536
# The text search configuration a row's keyword vector was built with, when nothing says
# otherwise (settings.KNOWLEDGE_SEARCH_LANGUAGE chooses it for new rows).
DEFAULT_SEARCH_LANGUAGE = "english"
# The local model's vectors fill the last WORDLLAMA_DIMENSIONS of the column, after zeros
# (advanced/embeddings.py): subvector(embedding, LOCAL_SLICE_START, WORDLLAMA_DIMENSIONS).
LOCAL_SLICE_START = EMBEDDING_DIMENSIONS - WORDLLAMA_DIMENSIONS + 1
LOCAL_INDEX_NAME = "knowledge_base_local_hnsw_idx"


def local_embedding(column: str = "embedding") -> Cast:
    """The local model's part of a 1536-d column, as the vector(256) its HNSW index holds
    (the index's definition; a query uses `LocalEmbedding`, which renders the same SQL)."""
    part = Func(
        F(column),
        Value(LOCAL_SLICE_START),
        Value(WORDLLAMA_DIMENSIONS),
        function="subvector",
        output_field=VectorField(dimensions=EMBEDDING_DIMENSIONS),
    )
    return Cast(part, VectorField(dimensions=WORDLLAMA_DIMENSIONS))


class LocalEmbedding(Func):
    """`(subvector(column, 1281, 256))::vector(256)` with the numbers written into the SQL.

    With parameters instead (as `local_embedding()` renders in a query), a prepared statement's
    generic plan (DATABASE_PREPARED_STATEMENTS, from its sixth execution) could not match the
    HNSW index's expression, and the search sorted every candidate exactly: 55 ms p50 instead
    of 12 on a 10,000-document shop (bench/retrieval.py)."""

    template = (
        f"(subvector(%(expressions)s, {LOCAL_SLICE_START}, {WORDLLAMA_DIMENSIONS}))::vector({WORDLLAMA_DIMENSIONS})"
    )
    output_field = VectorField(dimensions=WORDLLAMA_DIMENSIONS)


class IsLocalModel(Func):
    """`embedding_model = '<the local model>'`, the literal in the SQL: only then does a generic
    plan prove the HNSW index's partial predicate (a parameter could be any model)."""

    template = "%(expressions)s = '" + LOCAL_EMBEDDING_MODEL + "'"
    output_field = models.BooleanField()


# The literal above is a constant of the code, never input; keep it one that needs no quoting.
assert re.fullmatch(r"[A-Za-z0-9_.-]+", LOCAL_EMBEDDING_MODEL), LOCAL_EMBEDDING_MODEL

REFINED_INDEX_NAME = "knowledge_base_minilm_hnsw_idx"


class IsRefinedModel(Func):
    """`refined_model = '<the refined model>'` as a literal, for the same reason as IsLocalModel:
    a generic plan must prove the refined HNSW index's partial predicate."""

    template = "%(expressions)s = '" + REFINED_MODEL + "'"
    output_field = models.BooleanField()


assert re.fullmatch(r"[A-Za-z0-9_.-]+", REFINED_MODEL), REFINED_MODEL


class IsNotRefinedModel(Func):
    """`refined_model <> '<the refined model>'`. Written as `<>`, not `NOT (... = ...)`:
    PostgreSQL turns a query's NOT (a = b) into a <> b before proving a partial index's
    predicate, but keeps an index predicate as written, so a NOT (=) predicate was never
    proven and the count of documents not yet refined read the shop's rows (53-75 ms on the
    10,000-document shop)."""

    template = "%(expressions)s <> '" + REFINED_MODEL + "'"
    output_field = models.BooleanField()


class NotEqual(Func):
    """`(a <> b)` of two columns (see IsNotRefinedModel for why not NOT (a = b))."""

    template = "(%(expressions)s)"
    arg_joiner = " <> "
    output_field = models.BooleanField()


def not_refined() -> Q:
    """Current-or-not rows without a current refined vector: another model, or a digest of
    another text. The predicate of knowledge_base_unrefined_idx, and what the queries write."""
    return Q(IsNotRefinedModel(F("refined_model"))) | Q(NotEqual(F("refined_digest"), F("text_digest")))


def text_digest() -> MD5:
    """md5 of what both embeddings read (advanced.embeddings.document_text's inputs): a refined
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


PROBABILITY_VALIDATORS = [MinValueValidator(0), MaxValueValidator(1)]


def _jsonb_type_is(field: str, json_type: str) -> Exact:
    return Exact(
        Func(F(field), function="jsonb_typeof", output_field=models.TextField()),
        json_type,
    )


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    ARCHIVED = "archived", "Archived"


class StatsEngine(models.TextChoices):
    # The order of advanced.stats.ENGINES; sequential is the default of running experiments.
    SEQUENTIAL = "sequential", "Sequential (always-valid)"
    FIXED_HORIZON = "fixed_horizon", "Fixed horizon (decides at the planned sample)"
    BAYESIAN = "bayesian", "Bayesian (chance to win, expected loss)"


class MultipleTestingCorrection(models.TextChoices):
    HOLM = "holm", "Holm (family-wise error)"
    BENJAMINI_HOCHBERG = "benjamini_hochberg", "Benjamini-Hochberg (false discovery rate)"


class GuardrailMetric(models.TextChoices):
    REVENUE_PER_USER = "revenue_per_user", "Revenue per user"


def default_guardrails() -> list[str]:
    return [GuardrailMetric.REVENUE_PER_USER]


class Experiment(ShopScopedModel):
    """An A/B test a shop runs: its variants, lifecycle and, once decided, the winner."""

    tenancy: ClassVar[TenantTable] = TenantTable(policy=PolicyKind.SHOP)

    experiment_key = models.SlugField(max_length=100, db_index=False)
    experiment_name = models.CharField(max_length=200)
    # Free-text limits (max_length on a TextField is checked by the API and the admin forms, not
    # by the database): far above real use, far below a body that ties up a worker.
    description = models.TextField(blank=True, default="", max_length=10_000)
    variants = models.JSONField(
        default=list,
        help_text="Array of {key, name, weight, is_control}; weights sum to 1 (or 100).",
    )
    status = models.CharField(max_length=16, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    primary_metric = models.CharField(max_length=100, default="conversion_rate")
    confidence_threshold = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        default=0.95,
        validators=PROBABILITY_VALIDATORS,
        help_text="Confidence required before a winner is declared.",
    )
    min_sample_size = models.PositiveIntegerField(default=100, help_text="Participants needed per variant.")
    winning_variant = models.CharField(max_length=100, null=True, blank=True)
    confidence_level = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        null=True,
        blank=True,
        validators=PROBABILITY_VALIDATORS,
    )
    # How the analysis decides (docs/experiments.md). db_default too: rows written by SQL
    # (demo data, bulk loads) get the same defaults as rows written by Django.
    stats_engine = models.CharField(
        max_length=16,
        choices=StatsEngine.choices,
        default=StatsEngine.SEQUENTIAL,
        db_default=StatsEngine.SEQUENTIAL,
        help_text="sequential: valid at every look; fixed_horizon: decides at the planned sample or end date "
        "only; bayesian: chance to win and expected loss.",
    )
    multiple_testing_correction = models.CharField(
        max_length=20,
        choices=MultipleTestingCorrection.choices,
        default=MultipleTestingCorrection.HOLM,
        db_default=MultipleTestingCorrection.HOLM,
        help_text="How the treatments' p-values are corrected for their number.",
    )
    sequential_tuning = models.PositiveIntegerField(
        default=5000,
        db_default=5000,
        validators=[MinValueValidator(1)],
        help_text="Sequential engine: participants (both variants) at which the confidence sequence is tightest.",
    )
    planned_sample_size = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Participants planned per variant."
    )
    planned_end_date = models.DateField(null=True, blank=True, help_text="Day the experiment is planned to end.")
    target_mde = models.DecimalField(
        max_digits=8,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.000001")), MaxValueValidator(10)],
        help_text="Relative lift to detect at 80% power (0.1 = +10%); gives the sample size needed.",
    )
    prior_mean = models.DecimalField(
        max_digits=10,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(-10), MaxValueValidator(10)],
        help_text="Bayesian: mean of the normal prior on the relative lift (with prior_variance).",
    )
    prior_variance = models.DecimalField(
        max_digits=10,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.000001")), MaxValueValidator(100)],
        help_text="Bayesian: variance of the normal prior on the relative lift (with prior_mean).",
    )
    risk_threshold = models.DecimalField(
        max_digits=7,
        decimal_places=6,
        default=0.0025,
        db_default=0.0025,
        validators=PROBABILITY_VALIDATORS,
        help_text="Bayesian: the largest expected loss (relative lift) a winner may carry.",
    )
    # jsonb, not text[]: the API's row plans render JSON columns directly (an array column
    # would send experiment lists back through the serializer), and CHECKs keep it a list of
    # known metrics.
    guardrail_metrics = models.JSONField(
        default=default_guardrails,
        db_default=Value(["revenue_per_user"], output_field=models.JSONField()),
        blank=True,
        help_text="Metrics a winner must not make significantly worse: a list of revenue_per_user.",
    )

    objects = ExperimentQuerySet.as_manager()

    class Meta:
        db_table = "experiments"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["shop", "status"], name="experiments_shop_status_idx"),
            models.Index(fields=["experiment_key"], name="experiments_key_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["shop", "experiment_key"],
                name="%(app_label)s_%(class)s_key_uniq",
            ),
            # Target of the composite foreign key from experiment_results.
            models.UniqueConstraint(fields=["id", "shop"], name="%(app_label)s_%(class)s_id_shop_uniq"),
            choices_check("status", ExperimentStatus),
            choices_check("stats_engine", StatsEngine),
            choices_check("multiple_testing_correction", MultipleTestingCorrection),
            *range_checks(0, 1, "confidence_level", "confidence_threshold", "risk_threshold"),
            models.CheckConstraint(
                condition=Q(prior_mean__gte=-10) & Q(prior_mean__lte=10),
                name="%(app_label)s_%(class)s_prior_mean_range",
            ),
            models.CheckConstraint(
                condition=Q(prior_variance__gt=0) & Q(prior_variance__lte=100) | Q(prior_variance__isnull=True),
                name="%(app_label)s_%(class)s_prior_variance_range",
            ),
            models.CheckConstraint(
                condition=(Q(prior_mean__isnull=True) & Q(prior_variance__isnull=True))
                | (Q(prior_mean__isnull=False) & Q(prior_variance__isnull=False)),
                name="%(app_label)s_%(class)s_prior_complete",
            ),
            # A fixed-horizon test is valid at one planned look: it needs the plan.
            models.CheckConstraint(
                condition=~Q(stats_engine=StatsEngine.FIXED_HORIZON)
                | Q(planned_sample_size__isnull=False)
                | Q(planned_end_date__isnull=False),
                name="%(app_label)s_%(class)s_fixed_horizon_planned",
            ),
            models.CheckConstraint(
                condition=Q(target_mde__gt=0) | Q(target_mde__isnull=True),
                name="%(app_label)s_%(class)s_target_mde_positive",
            ),
            models.CheckConstraint(
                condition=Q(sequential_tuning__gte=1), name="%(app_label)s_%(class)s_sequential_tuning_positive"
            ),
            models.CheckConstraint(
                condition=Q(planned_sample_size__gte=1) | Q(planned_sample_size__isnull=True),
                name="%(app_label)s_%(class)s_planned_sample_positive",
            ),
            models.CheckConstraint(
                condition=_jsonb_type_is("guardrail_metrics", "array")
                & Q(guardrail_metrics__contained_by=[m.value for m in GuardrailMetric]),
                name="%(app_label)s_%(class)s_guardrails_known",
            ),
            models.CheckConstraint(
                condition=_jsonb_type_is("variants", "array"),
                name="%(app_label)s_%(class)s_variants_is_array",
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(started_at__isnull=True) | Q(ended_at__gte=F("started_at")),
                name="%(app_label)s_%(class)s_end_after_start",
            ),
        ]

    def __str__(self) -> str:
        return self.experiment_name


class ExperimentResult(ShopScopedModel):
    """One variant's cumulative figures and statistics against control on one day."""

    tenancy: ClassVar[TenantTable] = TenantTable(policy=PolicyKind.SHOP, retention=Retention.forever())

    experiment = models.ForeignKey(
        Experiment,
        on_delete=models.CASCADE,
        related_name="results",
        # The database enforces (experiment_id, shop_domain) -> experiments instead (migration).
        db_constraint=False,
        db_index=False,
    )
    variant_key = models.CharField(max_length=100)
    snapshot_date = models.DateField(help_text="Day the cumulative figures were taken.")
    participants = models.PositiveIntegerField(default=0)
    conversions = models.PositiveIntegerField(default=0)
    conversion_rate = ratio_field("conversions", "participants", max_digits=20, decimal_places=8)
    avg_order_value = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    revenue_per_user = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    revenue_per_user_stddev = models.DecimalField(
        max_digits=14,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="Per-user standard deviation, for Welch's t-test.",
    )
    p_value = models.DecimalField(
        max_digits=12,
        decimal_places=10,
        null=True,
        blank=True,
        validators=PROBABILITY_VALIDATORS,
    )
    confidence_interval_lower = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    confidence_interval_upper = models.DecimalField(max_digits=12, decimal_places=8, null=True, blank=True)
    # CUPED: a pre-exposure covariate over the same participants (e.g. orders in the 28 days
    # before exposure): its sum, sum of squares, and sum of products with the conversion (0/1).
    covariate_sum = models.DecimalField(
        max_digits=20, decimal_places=4, null=True, blank=True, help_text="CUPED: Σx over the participants."
    )
    covariate_sum_squares = models.DecimalField(
        max_digits=28, decimal_places=4, null=True, blank=True, help_text="CUPED: Σx² over the participants."
    )
    covariate_cross_sum = models.DecimalField(
        max_digits=20,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="CUPED: Σx·y, y = 1 for a participant who converted, else 0.",
    )
    # Written by the Bayesian engine.
    chance_to_win = models.DecimalField(
        max_digits=12, decimal_places=10, null=True, blank=True, validators=PROBABILITY_VALIDATORS
    )
    expected_loss = models.DecimalField(max_digits=16, decimal_places=10, null=True, blank=True)

    objects = ExperimentResultQuerySet.as_manager()

    class Meta:
        db_table = "experiment_results"
        ordering = ["experiment_id", "variant_key", "-snapshot_date"]
        get_latest_by = "snapshot_date"
        indexes = [
            models.Index(
                fields=["experiment", "variant_key"],
                name="experiment_results_variant_idx",
            ),
            models.Index(
                F("conversion_rate").desc(nulls_last=True),
                name="experiment_results_rate_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "variant_key", "snapshot_date"],
                name="%(app_label)s_%(class)s_daily_uniq",
            ),
            *nonnegative_checks(
                "participants",
                "conversions",
                "avg_order_value",
                "revenue_per_user",
                "revenue_per_user_stddev",
                "covariate_sum",
                "covariate_sum_squares",
                "covariate_cross_sum",
                "expected_loss",
            ),
            *range_checks(0, 1, "p_value", "chance_to_win"),
            models.CheckConstraint(
                condition=(
                    Q(covariate_sum__isnull=True)
                    & Q(covariate_sum_squares__isnull=True)
                    & Q(covariate_cross_sum__isnull=True)
                )
                | (
                    Q(covariate_sum__isnull=False)
                    & Q(covariate_sum_squares__isnull=False)
                    & Q(covariate_cross_sum__isnull=False)
                ),
                name="%(app_label)s_%(class)s_covariate_complete",
            ),
            models.CheckConstraint(
                condition=Q(conversions__lte=F("participants")),
                name="%(app_label)s_%(class)s_conversions_lte_participants",
            ),
            models.CheckConstraint(
                condition=Q(confidence_interval_lower__isnull=True)
                | Q(confidence_interval_upper__isnull=True)
                | Q(confidence_interval_lower__lte=F("confidence_interval_upper")),
                name="%(app_label)s_%(class)s_interval_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.variant_key} on {self.snapshot_date}"


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

    # The second tier (advanced.embeddings_transformer, issue 14): all-MiniLM-L6-v2's vector,
    # filled in the background by advanced.services.knowledge.refine. Search uses it only while
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
            # it that count read the heap, 3-12 ms on a 10,000-document shop (issue 14).
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


class BriefingType(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"
    QUARTERLY = "quarterly", "Quarterly"


class CeoBriefing(ShopScopedModel):
    """A generated executive summary of a shop's period, and staff feedback on its quality."""

    tenancy: ClassVar[TenantTable] = TenantTable(policy=PolicyKind.CEO, retention=Retention("period_end", days=365))

    briefing_type = models.CharField(max_length=16, choices=BriefingType.choices)
    period_start = models.DateField()
    period_end = models.DateField()
    executive_summary = models.TextField(max_length=20_000)
    key_metrics = models.JSONField(default=dict, help_text="Object of metric name -> figures.")
    insights = models.JSONField(default=list, help_text="Array of ranked insights.")
    generation_model = models.CharField(max_length=100, blank=True, default="")
    generation_tokens = models.PositiveIntegerField(null=True, blank=True)
    rating = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    feedback_notes = models.TextField(blank=True, default="")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    objects = CeoBriefingQuerySet.as_manager()

    class Meta:
        db_table = "ceo_briefings"
        ordering = ["-period_end"]
        get_latest_by = "period_end"
        indexes = [
            models.Index(
                fields=["shop", "briefing_type", "-period_end"],
                name="ceo_briefings_recent_idx",
            ),
            models.Index(F("rating").desc(nulls_last=True), name="ceo_briefings_rating_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["shop", "briefing_type", "period_start", "period_end"],
                name="%(app_label)s_%(class)s_period_uniq",
            ),
            choices_check("briefing_type", BriefingType),
            *range_checks(1, 5, "rating"),
            *nonnegative_checks("generation_tokens"),
            models.CheckConstraint(
                condition=Q(period_end__gte=F("period_start")),
                name="%(app_label)s_%(class)s_end_after_start",
            ),
            models.CheckConstraint(
                condition=_jsonb_type_is("key_metrics", "object"),
                name="%(app_label)s_%(class)s_key_metrics_is_object",
            ),
            models.CheckConstraint(
                condition=_jsonb_type_is("insights", "array"),
                name="%(app_label)s_%(class)s_insights_is_array",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_briefing_type_display()} briefing {self.period_start}..{self.period_end}"
