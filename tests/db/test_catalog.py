"""The catalog matches the schema document: table names, indexes (columns, order, predicate,
method, options) and column types, read from pg_catalog of the migrated database."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.contrib.postgres.fields import ArrayField
from django.db import connection, models
from pgvector.django import VectorField

from advanced.models import CeoBriefing, Experiment, ExperimentResult, KnowledgeDocument
from growth.models import AdCampaign, AdPerformance, SeoAudit, SeoRanking, SocialAnalytics, SocialPost
from onboarding.models import FeatureTour, OnboardingProgress
from tenancy.models import AuditedModel
from tenancy.partitions import partitioned_table

pytestmark = pytest.mark.django_db

PROJECT_APPS = ("tenancy", "growth", "onboarding", "advanced", "shopify")
PROJECT_MODELS = [model for label in PROJECT_APPS for model in apps.get_app_config(label).get_models()]

# The schema's eleven tables, plus social_posts, the parent social_analytics assumes.
SCHEMA_TABLES: dict[type[models.Model], str] = {
    SeoAudit: "seo_audits",
    SeoRanking: "seo_rankings",
    AdCampaign: "ad_campaigns",
    AdPerformance: "ad_performance",
    SocialPost: "social_posts",
    SocialAnalytics: "social_analytics",
    OnboardingProgress: "onboarding_progress",
    FeatureTour: "feature_tours",
    Experiment: "experiments",
    ExperimentResult: "experiment_results",
    KnowledgeDocument: "knowledge_base",
    CeoBriefing: "ceo_briefings",
}

# Every index the schema lists, as pg_get_indexdef() prints it. Natural keys that double as
# the schema's index are UNIQUE; NULL ratios sort last in the "top N" indexes.
SCHEMA_INDEXES: list[tuple[type[models.Model], str, str]] = [
    (SeoAudit, "seo_audits_shop_crawled_idx", "UNIQUE btree (shop_domain, crawled_at DESC)"),
    (SeoRanking, "seo_rankings_keyword_hist_idx", "btree (shop_domain, keyword, tracked_at DESC)"),
    (SeoRanking, "seo_rankings_top100_idx", 'btree ("position") WHERE ("position" <= 100)'),
    (AdCampaign, "ad_campaigns_shop_status_idx", "btree (shop_domain, campaign_status)"),
    (AdCampaign, "ad_campaigns_platform_id_idx", "btree (platform_campaign_id)"),
    (AdPerformance, "ad_performance_campaign_date_idx", "UNIQUE btree (campaign_id, date DESC)"),
    (AdPerformance, "ad_performance_roas_idx", "btree (roas DESC NULLS LAST)"),
    (SocialAnalytics, "social_analytics_post_measured_idx", "UNIQUE btree (social_post_id, measured_at DESC)"),
    (SocialAnalytics, "social_analytics_engage_idx", "btree (engagement_rate DESC NULLS LAST)"),
    (OnboardingProgress, "onboarding_user_progress_idx", "btree (user_id, shop_domain, step_order)"),
    (OnboardingProgress, "onboarding_status_idx", "btree (status)"),
    (FeatureTour, "feature_tours_user_status_idx", "btree (user_id, status)"),
    (FeatureTour, "feature_tours_tour_key_idx", "btree (tour_key)"),
    (Experiment, "experiments_shop_status_idx", "btree (shop_domain, status)"),
    (Experiment, "experiments_key_idx", "btree (experiment_key)"),
    (ExperimentResult, "experiment_results_variant_idx", "btree (experiment_id, variant_key)"),
    (ExperimentResult, "experiment_results_rate_idx", "btree (conversion_rate DESC NULLS LAST)"),
    (KnowledgeDocument, "knowledge_base_embedding_idx", "ivfflat (embedding vector_cosine_ops) WITH (lists='100')"),
    (KnowledgeDocument, "knowledge_base_shop_type_idx", "btree (shop_domain, document_type)"),
    (KnowledgeDocument, "knowledge_base_tags_idx", "gin (tags)"),
    (CeoBriefing, "ceo_briefings_recent_idx", "btree (shop_domain, briefing_type, period_end DESC)"),
    (CeoBriefing, "ceo_briefings_rating_idx", "btree (rating DESC NULLS LAST)"),
]

# (index, key columns with their direction) for every index the schema orders DESC.
DESCENDING_KEYS: list[tuple[str, list[tuple[str, str]]]] = [
    ("seo_audits_shop_crawled_idx", [("shop_domain", "ASC"), ("crawled_at", "DESC")]),
    ("seo_rankings_keyword_hist_idx", [("shop_domain", "ASC"), ("keyword", "ASC"), ("tracked_at", "DESC")]),
    ("ad_performance_campaign_date_idx", [("campaign_id", "ASC"), ("date", "DESC")]),
    ("ad_performance_roas_idx", [("roas", "DESC")]),
    ("social_analytics_post_measured_idx", [("social_post_id", "ASC"), ("measured_at", "DESC")]),
    ("social_analytics_engage_idx", [("engagement_rate", "DESC")]),
    ("experiment_results_rate_idx", [("conversion_rate", "DESC")]),
    (
        "ceo_briefings_recent_idx",
        [("shop_domain", "ASC"), ("briefing_type", "ASC"), ("period_end", "DESC")],
    ),
    ("ceo_briefings_rating_idx", [("rating", "DESC")]),
]

# Column types the schema implies: money is numeric, JSON is jsonb, tags an array, the
# embedding a 1536-dimension vector, timestamps with time zone.
SCHEMA_COLUMNS: list[tuple[str, str, str]] = [
    ("seo_audits", "crawled_at", "timestamp with time zone"),
    ("seo_audits", "avg_lcp", "numeric(10,2)"),
    ("seo_audits", "avg_fid", "numeric(10,2)"),
    ("seo_audits", "avg_cls", "numeric(6,4)"),
    ("seo_rankings", "tracked_at", "timestamp with time zone"),
    ("seo_rankings", "featured_snippet", "boolean"),
    ("ad_campaigns", "daily_budget", "numeric(12,2)"),
    ("ad_campaigns", "total_budget", "numeric(14,2)"),
    ("ad_campaigns", "start_date", "date"),
    ("ad_campaigns", "end_date", "date"),
    ("ad_performance", "date", "date"),
    ("ad_performance", "cost", "numeric(12,2)"),
    ("ad_performance", "revenue", "numeric(12,2)"),
    ("ad_performance", "conversions", "numeric(12,2)"),
    ("ad_performance", "ctr", "numeric(20,6)"),
    ("ad_performance", "cpc", "numeric(20,6)"),
    ("ad_performance", "cpa", "numeric(20,6)"),
    ("ad_performance", "roas", "numeric(20,6)"),
    ("social_analytics", "measured_at", "timestamp with time zone"),
    ("social_analytics", "engagement_rate", "numeric(20,6)"),
    ("onboarding_progress", "user_id", "uuid"),
    ("onboarding_progress", "completed_at", "timestamp with time zone"),
    ("feature_tours", "user_id", "uuid"),
    ("feature_tours", "steps", "jsonb"),
    ("experiments", "variants", "jsonb"),
    ("experiments", "started_at", "timestamp with time zone"),
    ("experiments", "ended_at", "timestamp with time zone"),
    ("experiments", "confidence_level", "numeric(5,4)"),
    ("experiment_results", "conversion_rate", "numeric(20,8)"),
    ("experiment_results", "avg_order_value", "numeric(12,2)"),
    ("experiment_results", "revenue_per_user", "numeric(12,4)"),
    ("experiment_results", "p_value", "numeric(12,10)"),
    ("knowledge_base", "embedding", "vector(1536)"),
    ("knowledge_base", "tags", "character varying(100)[]"),
    ("knowledge_base", "is_current", "boolean"),
    ("knowledge_base", "previous_version_id", "bigint"),
    ("ceo_briefings", "key_metrics", "jsonb"),
    ("ceo_briefings", "insights", "jsonb"),
    ("ceo_briefings", "period_end", "date"),
]

GENERATED_COLUMNS = {
    ("ad_performance", "ctr"),
    ("ad_performance", "cpc"),
    ("ad_performance", "cpa"),
    ("ad_performance", "roas"),
    ("social_analytics", "engagement_rate"),
    ("experiment_results", "conversion_rate"),
    # Keyword search's tsvector of title and content.
    ("knowledge_base", "search_vector"),
    # md5 of title and content: a refined vector is current only while it matches.
    ("knowledge_base", "text_digest"),
}


def fetch(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall())


def column_type(table: str, column: str) -> tuple[str, str, bool] | None:
    """(format_type, attgenerated, attnotnull) of a column, or None when it does not exist."""
    rows = fetch(
        """
        SELECT format_type(a.atttypid, a.atttypmod), a.attgenerated, a.attnotnull
        FROM pg_attribute a
        WHERE a.attrelid = %s::regclass AND a.attname = %s AND a.attnum > 0 AND NOT a.attisdropped
        """,
        [table, column],
    )
    return (str(rows[0][0]), str(rows[0][1]), bool(rows[0][2])) if rows else None


def declared_index_names(model: type[models.Model]) -> set[str]:
    names = {index.name for index in model._meta.indexes}
    return names | {constraint.name for constraint in model._meta.constraints}


# --- Tables -----------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "table"), SCHEMA_TABLES.items(), ids=SCHEMA_TABLES.values())
def test_schema_table_exists_under_its_schema_name(model: type[models.Model], table: str) -> None:
    assert model._meta.db_table == table
    assert fetch(
        """
        SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relname = %s
        """,
        [table],
    ) == [("p",) if partitioned_table(table) else ("r",)]


# --- Indexes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "name", "definition"),
    SCHEMA_INDEXES,
    ids=[name for _, name, _ in SCHEMA_INDEXES],
)
def test_schema_index_exists_with_its_exact_definition(model: type[models.Model], name: str, definition: str) -> None:
    assert name in declared_index_names(model), f"{name} is not declared in {model.__name__}.Meta"
    table = model._meta.db_table
    if definition.startswith("UNIQUE "):
        kind, using = "UNIQUE INDEX", definition.removeprefix("UNIQUE ")
    else:
        kind, using = "INDEX", definition
    # A partitioned table's index is defined ON ONLY the parent; each partition has its own.
    only = "ONLY " if partitioned_table(table) else ""
    expected = f"CREATE {kind} {name} ON {only}public.{table} USING {using}"
    rows = fetch(
        """
        SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = %s::regclass AND ic.relname = %s
        """,
        [table, name],
    )
    assert rows == [(expected,)]


@pytest.mark.parametrize(("name", "keys"), DESCENDING_KEYS, ids=[name for name, _ in DESCENDING_KEYS])
def test_descending_index_keys_are_stored_descending(name: str, keys: list[tuple[str, str]]) -> None:
    rows = fetch(
        """
        SELECT pg_get_indexdef(i.indexrelid, k.n, true),
               CASE WHEN i.indoption[k.n - 1] & 1 = 1 THEN 'DESC' ELSE 'ASC' END
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        CROSS JOIN LATERAL generate_series(1, i.indnkeyatts) AS k(n)
        WHERE ic.relname = %s
        ORDER BY k.n
        """,
        [name],
    )
    assert [(str(column), str(direction)) for column, direction in rows] == keys


def test_top_100_rankings_index_is_partial_on_position() -> None:
    assert fetch(
        """
        SELECT pg_get_expr(i.indpred, i.indrelid), i.indisunique FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid WHERE ic.relname = 'seo_rankings_top100_idx'
        """
    ) == [('("position" <= 100)', False)]


def test_embedding_index_is_ivfflat_with_cosine_ops_and_100_lists() -> None:
    assert fetch(
        """
        SELECT am.amname, opc.opcname, ic.reloptions, i.indrelid::regclass::text,
               pg_get_indexdef(i.indexrelid, 1, true)
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_am am ON am.oid = ic.relam
        JOIN pg_opclass opc ON opc.oid = i.indclass[0]
        WHERE ic.relname = 'knowledge_base_embedding_idx'
        """
    ) == [("ivfflat", "vector_cosine_ops", ["lists=100"], "knowledge_base", "embedding")]


def test_tags_index_is_gin_on_the_tags_array() -> None:
    assert fetch(
        """
        SELECT am.amname, i.indrelid::regclass::text, pg_get_indexdef(i.indexrelid, 1, true), i.indnkeyatts
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_am am ON am.oid = ic.relam
        WHERE ic.relname = 'knowledge_base_tags_idx'
        """
    ) == [("gin", "knowledge_base", "tags", 1)]


@pytest.mark.parametrize(
    ("model", "name"),
    [(model, index.name) for model in PROJECT_MODELS for index in model._meta.indexes],
    ids=[index.name for model in PROJECT_MODELS for index in model._meta.indexes],
)
def test_every_declared_index_exists_on_its_table(model: type[models.Model], name: str) -> None:
    assert fetch(
        """
        SELECT i.indrelid::regclass::text FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid WHERE ic.relname = %s
        """,
        [name],
    ) == [(model._meta.db_table,)]


def test_no_table_has_two_indexes_with_the_same_definition() -> None:
    # A duplicate index costs a second write on every insert and update, for nothing.
    duplicates = fetch(
        """
        SELECT i.indrelid::regclass::text,
               regexp_replace(pg_get_indexdef(i.indexrelid), '^CREATE (UNIQUE )?INDEX \\S+ ', ''),
               array_agg(ic.relname::text ORDER BY ic.relname)
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = ANY(%s::regclass[])
        GROUP BY 1, 2 HAVING count(*) > 1
        ORDER BY 1
        """,
        [[model._meta.db_table for model in PROJECT_MODELS]],
    )
    assert not duplicates, "duplicate indexes:\n" + "\n".join(
        f"{table}: {', '.join(names)} are all {definition}" for table, definition, names in duplicates
    )


# --- Columns ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "column", "expected"),
    SCHEMA_COLUMNS,
    ids=[f"{table}.{column}" for table, column, _ in SCHEMA_COLUMNS],
)
def test_schema_column_has_its_type(table: str, column: str, expected: str) -> None:
    found = column_type(table, column)
    assert found is not None, f"{table}.{column} does not exist"
    assert found[0] == expected


def _model_columns(field_class: type[models.Field[Any, Any]]) -> list[tuple[str, str, models.Field[Any, Any]]]:
    return [
        (model._meta.db_table, field.column, field)
        for model in PROJECT_MODELS
        for field in model._meta.concrete_fields
        if isinstance(field, field_class)
    ]


@pytest.mark.parametrize(
    ("table", "column", "field"),
    _model_columns(models.DateTimeField),
    ids=[f"{t}.{c}" for t, c, _ in _model_columns(models.DateTimeField)],
)
def test_every_timestamp_is_timestamptz(table: str, column: str, field: models.Field[Any, Any]) -> None:
    found = column_type(table, column)
    assert found is not None
    assert found[0] == "timestamp with time zone"


@pytest.mark.parametrize(
    ("table", "column", "field"),
    _model_columns(models.DecimalField),
    ids=[f"{t}.{c}" for t, c, _ in _model_columns(models.DecimalField)],
)
def test_every_decimal_is_numeric_with_its_precision(table: str, column: str, field: models.DecimalField) -> None:
    found = column_type(table, column)
    assert found is not None
    assert found[0] == f"numeric({field.max_digits},{field.decimal_places})"


@pytest.mark.parametrize(
    ("table", "column", "field"),
    _model_columns(models.JSONField),
    ids=[f"{t}.{c}" for t, c, _ in _model_columns(models.JSONField)],
)
def test_every_json_field_is_jsonb(table: str, column: str, field: models.Field[Any, Any]) -> None:
    found = column_type(table, column)
    assert found is not None
    assert found[:1] == ("jsonb",)
    assert found[2], f"{table}.{column} should be NOT NULL"


def test_array_and_vector_fields_are_the_only_ones_and_have_their_types() -> None:
    arrays = _model_columns(ArrayField)
    vectors = _model_columns(VectorField)
    assert [(t, c) for t, c, _ in arrays] == [("knowledge_base", "tags")]
    assert [(t, c) for t, c, _ in vectors] == [("knowledge_base", "embedding"), ("knowledge_base", "refined_embedding")]
    assert column_type("knowledge_base", "tags") == ("character varying(100)[]", "", True)
    assert column_type("knowledge_base", "embedding") == ("vector(1536)", "", False)
    # The refined tier (all-MiniLM-L6-v2): its own 384 dimensions, NULL until the job fills it.
    assert column_type("knowledge_base", "refined_embedding") == ("vector(384)", "", False)
    assert column_type("knowledge_base", "text_digest") == ("character varying(32)", "s", False)


def test_generated_ratio_columns_are_stored_generated_and_nothing_else_is() -> None:
    rows = fetch(
        """
        SELECT a.attrelid::regclass::text, a.attname, a.attgenerated FROM pg_attribute a
        WHERE a.attrelid = ANY(%s::regclass[]) AND a.attgenerated <> '' AND NOT a.attisdropped
        """,
        [[model._meta.db_table for model in PROJECT_MODELS]],
    )
    assert {(table, column) for table, column, _ in rows} == GENERATED_COLUMNS
    assert {kind for _, _, kind in rows} == {"s"}


@pytest.mark.parametrize(
    "model",
    [model for model in PROJECT_MODELS if issubclass(model, AuditedModel)],
    ids=[model._meta.db_table for model in PROJECT_MODELS if issubclass(model, AuditedModel)],
)
def test_every_schema_table_has_the_audit_columns(model: type[models.Model]) -> None:
    table = model._meta.db_table
    assert column_type(table, "created_by") == ("text", "", False)
    assert column_type(table, "created_at") == ("timestamp with time zone", "", True)
    assert column_type(table, "updated_at") == ("timestamp with time zone", "", True)
    defaults = fetch(
        """
        SELECT a.attname FROM pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = %s::regclass AND a.attname IN ('created_at', 'updated_at') ORDER BY 1
        """,
        [table],
    )
    assert defaults == [("created_at",), ("updated_at",)]


def test_every_schema_table_is_an_audited_model() -> None:
    assert all(issubclass(model, AuditedModel) for model in SCHEMA_TABLES)
