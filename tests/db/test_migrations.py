"""Migrations agree with the models, follow the schema document's order, and can be
unapplied to zero and applied again."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection, models
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import CreateModel, RunSQL

from advanced.models import CeoBriefing, Experiment, ExperimentResult, KnowledgeDocument
from growth.models import AdCampaign, AdPerformance, SeoAudit, SeoRanking, SocialAnalytics, SocialPost
from onboarding.models import FeatureTour, OnboardingProgress

Key = tuple[str, str]

# The schema document's migration order (social_posts, the parent it assumes, sits before
# social_analytics).
SCHEMA_ORDER: list[type[models.Model]] = [
    SeoAudit,
    SeoRanking,
    AdCampaign,
    AdPerformance,
    SocialAnalytics,
    OnboardingProgress,
    FeatureTour,
    Experiment,
    ExperimentResult,
    KnowledgeDocument,
    CeoBriefing,
]
SCHEMA_PAIRS = list(itertools.pairwise(SCHEMA_ORDER))
# Unapplied in this order; each `migrate <app> zero` also unapplies what depends on the app.
# procrastinate's own migrations are one-way (its SQL has no reverse): its tables stay.
APPS_TO_ZERO = [
    "jobs",
    "shopify",
    "advanced",
    "onboarding",
    "growth",
    "tenancy",
    "admin",
    "sessions",
    "auth",
    "contenttypes",
]
PROJECT_APPS = ("tenancy", "growth", "onboarding", "advanced", "shopify", "jobs")


@pytest.fixture(scope="module")
def loader() -> MigrationLoader:
    return MigrationLoader(None, ignore_no_migrations=True)


def creating_migration(loader: MigrationLoader, model: type[models.Model]) -> Key:
    """The migration whose CreateModel creates `model`'s table."""
    found = [
        key
        for key, migration in loader.disk_migrations.items()
        if key[0] == model._meta.app_label
        for operation in migration.operations
        if isinstance(operation, CreateModel) and operation.name_lower == model._meta.model_name
    ]
    assert len(found) == 1, f"{model.__name__} is created by {found}"
    return found[0]


def vector_extension_migration(loader: MigrationLoader) -> Key:
    found = [
        key
        for key, migration in loader.disk_migrations.items()
        for operation in migration.operations
        if (isinstance(operation, RunSQL) and "create extension if not exists vector" in str(operation.sql).lower())
        or getattr(operation, "name", None) == "vector"
    ]
    assert len(found) == 1, f"the vector extension is created by {found}"
    return found[0]


def depends_on(loader: MigrationLoader, later: Key, earlier: Key) -> bool:
    """Whether `earlier` is applied before `later` in every order the graph allows."""
    return later != earlier and earlier in loader.graph.forwards_plan(later)


def public_tables() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {str(name) for (name,) in cursor.fetchall()}


def model_tables(*labels: str) -> set[str]:
    return {model._meta.db_table for label in labels for model in apps.get_app_config(label).get_models()}


def unapplied_migrations() -> list[Any]:
    executor = MigrationExecutor(connection)
    return executor.migration_plan(executor.loader.graph.leaf_nodes())


# --- Models and migrations agree ---------------------------------------------------------


@pytest.mark.django_db
def test_models_have_no_changes_missing_from_the_migrations() -> None:
    out = io.StringIO()
    # --check exits with status 1 (SystemExit) when a migration would be written.
    call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db
def test_the_test_database_is_fully_migrated() -> None:
    assert unapplied_migrations() == []


# --- The schema document's order ---------------------------------------------------------


@pytest.mark.parametrize(
    ("child", "parent"),
    [(AdPerformance, AdCampaign), (ExperimentResult, Experiment), (SocialAnalytics, SocialPost)],
    ids=["ad_performance-after-ad_campaigns", "experiment_results-after-experiments", "social_analytics-after-posts"],
)
def test_child_table_migration_depends_on_its_parents(
    loader: MigrationLoader, child: type[models.Model], parent: type[models.Model]
) -> None:
    assert depends_on(loader, creating_migration(loader, child), creating_migration(loader, parent))


def test_knowledge_base_migration_depends_on_the_vector_extension_migration(loader: MigrationLoader) -> None:
    assert depends_on(loader, creating_migration(loader, KnowledgeDocument), vector_extension_migration(loader))


def test_vector_extension_migration_leaves_the_extension_in_place_when_reversed(loader: MigrationLoader) -> None:
    # Only a superuser may drop it, and the bootstrap owns it: app_owner must not try.
    migration = loader.disk_migrations[vector_extension_migration(loader)]
    operations = [op for op in migration.operations if isinstance(op, RunSQL)]
    assert operations
    assert all(op.reversible and op.reverse_sql == RunSQL.noop for op in operations)


def test_each_schema_table_has_its_own_migration(loader: MigrationLoader) -> None:
    keys = [creating_migration(loader, model) for model in SCHEMA_ORDER]
    assert len(set(keys)) == len(SCHEMA_ORDER)


@pytest.mark.parametrize(
    ("earlier", "later"),
    SCHEMA_PAIRS,
    ids=[f"{later._meta.db_table}-after-{earlier._meta.db_table}" for earlier, later in SCHEMA_PAIRS],
)
def test_schema_tables_are_migrated_in_the_documents_order(
    loader: MigrationLoader, earlier: type[models.Model], later: type[models.Model]
) -> None:
    assert depends_on(loader, creating_migration(loader, later), creating_migration(loader, earlier))


# --- Round trip -------------------------------------------------------------------------


# Runs in a process of its own against a database of its own (a clone of template1, which the
# bootstrap gives the vector extension): unapplying every app on the shared test database would
# leave it half-migrated for the tests that follow if anything went wrong on the way back.
ZERO_AND_BACK = f"""
import json
import django
django.setup()
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

def public_tables():
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {{name for (name,) in cursor.fetchall()}}

def model_tables(*labels):
    return {{m._meta.db_table for label in labels for m in apps.get_app_config(label).get_models()}}

def scalar(sql):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]

report = {{}}
call_command("migrate", verbosity=0, interactive=False)
ours = model_tables(*{PROJECT_APPS!r})
report["missing_after_first_migrate"] = sorted(ours - public_tables())
report["left_behind"] = {{}}
for label in {APPS_TO_ZERO!r}:
    call_command("migrate", label, "zero", verbosity=0, interactive=False)
    if label in {PROJECT_APPS!r}:
        report["left_behind"][label] = sorted(model_tables(label) & public_tables())
report["at_zero"] = sorted(t for t in public_tables() if not t.startswith("procrastinate_"))
report["vector_at_zero"] = scalar("SELECT count(*) FROM pg_extension WHERE extname = 'vector'")
call_command("migrate", verbosity=0, interactive=False)
report["missing_after_remigrate"] = sorted(ours - public_tables())
executor = MigrationExecutor(connection)
report["unapplied"] = len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
report["embedding_index"] = scalar(
    "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexname = 'knowledge_base_embedding_idx'"
)
print(json.dumps(report))
"""


def _database_url(params: dict[str, Any], name: str) -> str:
    user, password = quote(params["user"], safe=""), quote(params.get("password") or "", safe="")
    host, port = params.get("host") or "127.0.0.1", params.get("port") or 5432
    if host.startswith("/"):
        return f"postgresql://{user}:{password}@/{name}?host={quote(host, safe='')}&port={port}"
    return f"postgresql://{user}:{password}@{host}:{port}/{name}"


@pytest.mark.slow
def test_every_app_migrates_to_zero_and_back_on_a_database_of_its_own() -> None:
    # The test database's own connection parameters (socket directory and port included).
    params = {k: v for k, v in connection.get_connection_params().items() if k in ("user", "password", "host", "port")}
    name = f"{connection.settings_dict['NAME']}_zero"
    # CREATE DATABASE cannot run inside a transaction: a connection of its own.
    admin = psycopg.connect(dbname="postgres", autocommit=True, **params)
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            result = subprocess.run(
                [sys.executable, "-c", ZERO_AND_BACK],
                env={**os.environ, "DATABASE_URL": _database_url(params, name)},
                cwd=Path(__file__).resolve().parents[2],
                capture_output=True,
                text=True,
                timeout=600,
            )
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["missing_after_first_migrate"] == []
    assert report["left_behind"] == {label: [] for label in APPS_TO_ZERO if label in PROJECT_APPS}
    # procrastinate's own migrations are one-way (its SQL has no reverse): its tables stay.
    assert report["at_zero"] == ["django_migrations"]
    assert report["vector_at_zero"] == 1, "migrating to zero dropped the vector extension"
    assert report["missing_after_remigrate"] == []
    assert report["unapplied"] == 0
    assert report["embedding_index"] == 1
