"""The deploy path on Citus: `bootstrap_db` with the coordinator's superuser DSN, then
`migrate` as app_owner, runs to the end on a new database of a real cluster, migrates every app
to zero and back, and leaves the roles, grants and extensions the same on every node. On a plain
PostgreSQL the bootstrap runs nothing of Citus.

Not yet here (it waits for the issue that gives every table its distribution key): distributing
the tenant tables, and the isolation matrix on them; the seed and a sample of the API run now,
against the coordinator's still local tables.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import psycopg
import pytest
from psycopg import sql

from config import dbbootstrap
from config.dbbootstrap import AUTH_UID_BODY, AUTH_UID_MARK, CITUS_DEPENDENCIES, bootstrap, distributed_objects

from .conftest import PORT, REPO, WORKER_PORTS, Cluster, deploy_env, manage, needs_gcc

# What the roles, grants and extensions look like from one node of one database; the same query
# runs on the coordinator and, through run_command_on_workers, on every worker.
NODE_STATE = """
SELECT json_build_object(
  'roles', (SELECT json_object_agg(rolname, json_build_array(rolcanlogin, rolsuper, rolbypassrls, rolcreaterole))
            FROM pg_roles WHERE rolname IN ('app_owner', 'authenticated', 'anon', 'back_office', 'service_role')),
  'grants', (SELECT json_object_agg(r.rolname, json_build_array(m.inherit_option, m.set_option, m.admin_option))
             FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
             WHERE m.member = 'app_owner'::regrole),
  'database_owner', (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()),
  'extensions', (SELECT json_object_agg(extname, extversion) FROM pg_extension
                 WHERE extname IN ('citus', 'vector')),
  'auth_uid', (SELECT to_regprocedure('auth.uid()') IS NOT NULL),
  'auth_uid_comment', (SELECT obj_description(to_regprocedure('auth.uid()'), 'pg_proc')),
  'auth_uid_execute', (SELECT json_object_agg(r, has_function_privilege(r, 'auth.uid()', 'EXECUTE'))
                       FROM unnest(ARRAY['authenticated', 'back_office', 'service_role']) r),
  'auth_usage', (SELECT json_object_agg(r, has_schema_privilege(r, 'auth', 'USAGE'))
                 FROM unnest(ARRAY['app_owner', 'authenticated', 'back_office', 'service_role']) r)
)::text
"""

EXPECTED_NODE_STATE = {
    "roles": {
        "app_owner": [True, False, False, False],
        **{role: [False, False, False, False] for role in ("authenticated", "anon", "back_office", "service_role")},
    },
    "grants": {role: [False, True, False] for role in ("authenticated", "anon", "back_office", "service_role")},
    "database_owner": "app_owner",
    "auth_uid": True,
    "auth_uid_execute": {"authenticated": True, "back_office": True, "service_role": True},
    "auth_usage": {"app_owner": True, "authenticated": True, "back_office": True, "service_role": True},
}


def node_states(cluster: Cluster, database: str) -> dict[str, dict[str, Any]]:
    """NODE_STATE on the coordinator and on each worker, by port."""
    with cluster.connect(database) as conn:
        coordinator = conn.execute(NODE_STATE).fetchone()
        rows = conn.execute(
            "SELECT nodeport, success, result FROM run_command_on_workers(%s) ORDER BY nodeport", [NODE_STATE]
        ).fetchall()
    assert coordinator is not None
    states = {"coordinator": json.loads(coordinator[0])}
    for port, success, result in rows:
        assert success, f"worker {port}: {result}"
        states[str(port)] = json.loads(result)
    return states


def unapplied(cluster: Cluster, database: str) -> list[str]:
    result = manage(cluster, database, "showmigrations", "--plan")
    assert result.returncode == 0, result.stderr[-4000:]
    return [line for line in result.stdout.splitlines() if line.startswith("[ ]")]


# --- The deploy path on a new database of the cluster -------------------------------------


@pytest.fixture(scope="module")
def deployed(citus: Cluster, fresh_database: str) -> dict[str, subprocess.CompletedProcess[str]]:
    """`bootstrap_db` then `migrate`, each a process of its own, as a deploy runs them."""
    runs = {"bootstrap": manage(citus, fresh_database, "bootstrap_db")}
    if runs["bootstrap"].returncode == 0:
        runs["migrate"] = manage(citus, fresh_database, "migrate", "--noinput")
    return runs


@pytest.mark.slow
@needs_gcc
def test_bootstrap_prepares_the_new_database_on_every_node(
    deployed: dict[str, subprocess.CompletedProcess[str]], fresh_database: str
) -> None:
    bootstrap_run = deployed["bootstrap"]
    assert bootstrap_run.returncode == 0, bootstrap_run.stderr[-4000:]
    summary = bootstrap_run.stdout
    for port in WORKER_PORTS:
        assert f"created extension citus in {fresh_database} on 127.0.0.1:{port}" in summary
        assert f"added worker 127.0.0.1:{port} to {fresh_database}" in summary
    assert f"created extension citus in {fresh_database} on the coordinator" in summary
    assert f"created auth.uid() in {fresh_database}" in summary


@pytest.mark.slow
@needs_gcc
def test_migrate_as_app_owner_runs_to_the_end(
    citus: Cluster, deployed: dict[str, subprocess.CompletedProcess[str]], fresh_database: str
) -> None:
    migrate_run = deployed.get("migrate")
    assert migrate_run is not None, "the bootstrap failed"
    assert migrate_run.returncode == 0, migrate_run.stderr[-4000:]
    assert unapplied(citus, fresh_database) == []
    # The nodes of this database, as its own pg_dist_node has them.
    with citus.connect(fresh_database) as conn:
        nodes = conn.execute("SELECT groupid, nodeport FROM pg_dist_node ORDER BY groupid").fetchall()
        recorded = distributed_objects(conn)
    assert nodes == [(0, 9700), (1, WORKER_PORTS[0]), (2, WORKER_PORTS[1])]
    assert set(CITUS_DEPENDENCIES) | {("extension", "vector"), ("function", "uid")} <= recorded


@pytest.mark.slow
@needs_gcc
def test_roles_grants_and_extensions_are_the_same_on_every_node(
    citus: Cluster, deployed: dict[str, subprocess.CompletedProcess[str]], fresh_database: str
) -> None:
    assert deployed.get("migrate") is not None and deployed["migrate"].returncode == 0
    states = node_states(citus, fresh_database)
    assert set(states) == {"coordinator", *map(str, WORKER_PORTS)}
    for node, state in states.items():
        extensions = state.pop("extensions")
        # Citus does not propagate COMMENT ON FUNCTION; the mark matters where migrate runs.
        comment = state.pop("auth_uid_comment")
        assert comment == (AUTH_UID_MARK if node == "coordinator" else None), node
        assert set(extensions) == {"citus", "vector"}, node
        assert state == EXPECTED_NODE_STATE, node
        assert extensions == states["coordinator"].get("extensions", extensions), node


@pytest.mark.slow
@needs_gcc
def test_running_the_bootstrap_again_changes_nothing(
    citus: Cluster, deployed: dict[str, subprocess.CompletedProcess[str]], fresh_database: str
) -> None:
    assert deployed.get("migrate") is not None and deployed["migrate"].returncode == 0
    again = manage(citus, fresh_database, "bootstrap_db")
    assert again.returncode == 0, again.stderr[-4000:]
    assert again.stdout.startswith("Bootstrap: nothing to change ("), again.stdout


@pytest.mark.slow
@needs_gcc
def test_every_app_migrates_to_zero_and_back_as_app_owner(
    citus: Cluster, deployed: dict[str, subprocess.CompletedProcess[str]], fresh_database: str
) -> None:
    from tests.db.test_migrations import APPS_TO_ZERO, PROJECT_APPS, ZERO_AND_BACK

    assert deployed.get("migrate") is not None and deployed["migrate"].returncode == 0
    result = subprocess.run(
        [sys.executable, "-c", ZERO_AND_BACK],
        env={**deploy_env(citus, fresh_database), "DJANGO_SETTINGS_MODULE": "config.settings"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["missing_after_first_migrate"] == []
    assert report["left_behind"] == {label: [] for label in APPS_TO_ZERO if label in PROJECT_APPS}
    assert report["at_zero"] == ["django_migrations"]
    assert report["vector_at_zero"] == 1
    assert report["missing_after_remigrate"] == []
    assert report["unapplied"] == 0
    assert report["embedding_index"] == 1
    # The bootstrap's auth.uid() is not the migration's to drop: it is still there, on every node.
    for node, state in node_states(citus, fresh_database).items():
        assert state["auth_uid"], node
        assert state["auth_uid_comment"] == (AUTH_UID_MARK if node == "coordinator" else None), node


# --- Seed and a sample of the API against the coordinator ----------------------------------
# The tables are still local to the coordinator (nothing is distributed yet): this checks the
# service runs on a Citus coordinator; the isolation matrix on distributed tables comes with
# distribution (docs/scaling.md).

SHOPS = ("demo-1.myshopify.com", "demo-2.myshopify.com")
API_LISTS = ("ad-campaigns", "ad-performance", "seo-rankings", "social-posts", "experiments", "knowledge-documents")
API_SAMPLE = f"""
import datetime
import json

import django

django.setup()
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from tenancy.api.authentication import token_mint


def client(username, shop):
    user = get_user_model().objects.get(username=username)
    c = APIClient()
    token = token_mint(user=user, ttl=datetime.timedelta(minutes=5))
    c.credentials(HTTP_AUTHORIZATION=f"Bearer {{token}}", HTTP_X_SHOP_DOMAIN=shop)
    return c


report = {{"reads": {{}}, "other_shop": {{}}, "writes": {{}}}}
for n, shop in enumerate({SHOPS!r}, start=1):
    other = {SHOPS!r}[2 - n]
    owner = client(f"demo-{{n}}-owner", shop)
    for name in {API_LISTS!r}:
        response = owner.get(f"/api/v1/{{name}}/")
        rows = response.json().get("results", [])
        shops = sorted({{r["shop_domain"] for r in rows}})
        report["reads"][f"{{shop}} {{name}}"] = [response.status_code, len(rows) > 0, shops]
    report["other_shop"][shop] = client(f"demo-{{n}}-owner", other).get("/api/v1/ad-campaigns/").status_code
    created = owner.post(
        "/api/v1/ad-campaigns/",
        {{"platform_campaign_id": f"citus-{{n}}", "campaign_name": "Citus", "shop_domain": other}},
        format="json",
    )
    report["writes"][shop] = [created.status_code, created.json().get("shop_domain")]
for n, shop in enumerate({SHOPS!r}, start=1):
    rows = client(f"demo-{{n}}-owner", shop).get("/api/v1/ad-campaigns/?page_size=100").json()["results"]
    ours = [r["platform_campaign_id"] for r in rows if r["platform_campaign_id"].startswith("citus-")]
    report["writes"][shop].append(sorted(ours))
print(json.dumps(report))
"""


@pytest.mark.slow
@needs_gcc
def test_seed_and_a_sample_of_api_reads_and_writes_against_the_coordinator(
    citus: Cluster, deployed: dict[str, subprocess.CompletedProcess[str]], fresh_database: str
) -> None:
    assert deployed.get("migrate") is not None and deployed["migrate"].returncode == 0
    seeded = manage(citus, fresh_database, "seed_demo", "--shops", "2", "--days", "3", "--verbosity", "0")
    assert seeded.returncode == 0, seeded.stderr[-4000:]
    result = subprocess.run(
        [sys.executable, "-c", API_SAMPLE],
        env={**deploy_env(citus, fresh_database), "DJANGO_SETTINGS_MODULE": "config.settings"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["reads"] == {f"{shop} {name}": [200, True, [shop]] for shop in SHOPS for name in API_LISTS}
    assert report["other_shop"] == dict.fromkeys(SHOPS, 403)
    # The shop comes from the scope, not the body; each shop sees its own new campaign only.
    assert report["writes"] == {shop: [201, shop, [f"citus-{n}"]] for n, shop in enumerate(SHOPS, start=1)}


# --- A plain PostgreSQL: nothing of Citus ---------------------------------------------------

EMBEDDED_SUPERUSER_URL = os.environ.get("EMBEDDED_DATABASE_SUPERUSER_URL", "")
CITUS_WORDS = r"citus|pg_dist|run_command|worker|auth\.|auth\b|plpgsql"


@pytest.mark.skipif(not EMBEDDED_SUPERUSER_URL, reason="not on the embedded server: no superuser DSN")
def test_on_a_plain_postgresql_the_bootstrap_runs_nothing_of_citus(monkeypatch: pytest.MonkeyPatch) -> None:
    statements: list[str] = []
    execute = psycopg.Connection.execute

    def recording(self: psycopg.Connection[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(query.as_string(self) if isinstance(query, sql.Composable) else str(query))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", recording)
    for step in ("_prepare_citus_database", "_ensure_vector_on_workers", "_ensure_auth_uid"):
        monkeypatch.setattr(dbbootstrap, step, lambda *a, _step=step, **k: pytest.fail(f"{_step} ran"))
    monkeypatch.setattr(dbbootstrap, "_ensure_distributed_dependencies", lambda *a, **k: pytest.fail("ran"))
    database = f"bootstrap_plain_{os.getpid()}"
    try:
        report = bootstrap(superuser_dsn=EMBEDDED_SUPERUSER_URL, database=database, app_password=None)
    finally:
        with psycopg.connect(EMBEDDED_SUPERUSER_URL, autocommit=True) as conn:
            execute(conn, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
    assert f"created database {database} owned by app_owner" in report.changes
    assert not [line for line in report.changes + report.unchanged if re.search(CITUS_WORDS, line)]
    # Only the two look-ups that find no `citus` (the server's database, then the new one).
    citus_statements = [s for s in statements if re.search(CITUS_WORDS, s)]
    assert citus_statements == ["SELECT 1 FROM pg_extension WHERE extname = 'citus'"] * 2


def test_the_bootstraps_auth_uid_is_the_migrations() -> None:
    """On Citus the bootstrap creates auth.uid() in place of tenancy.0003_auth_uid: same body."""
    from importlib import import_module

    migration = import_module("tenancy.migrations.0003_auth_uid")

    def words(text: str) -> str:
        return " ".join(text.split())

    assert words(AUTH_UID_BODY) in words(migration.CREATE)
    assert "LANGUAGE sql STABLE SECURITY INVOKER" in migration.CREATE
    # A different comment: the migration's reverse drops only a function carrying its own.
    assert migration.MARK != AUTH_UID_MARK


@pytest.mark.slow
@needs_gcc
def test_a_citus_database_without_workers_is_bootstrapped_without_propagating(citus: Cluster) -> None:
    # A superuser DSN whose database has `citus` but no nodes (a single-node Citus): no worker to
    # prepare and nothing to propagate to, and no error for it.
    maintenance, database = f"citus_single_{os.getpid()}", f"citus_single_app_{os.getpid()}"
    with citus.connect("postgres") as admin:
        for name in (maintenance, database):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{maintenance}"')
        try:
            with citus.connect(maintenance) as conn:
                conn.execute("CREATE EXTENSION citus")
                # Citus refuses CREATE DATABASE where the coordinator is not in its metadata.
                conn.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)", [PORT])
            report = bootstrap(superuser_dsn=citus.url(maintenance), database=database, app_password=None)
        finally:
            for name in (maintenance, database):
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert f"created extension citus in {database} on the coordinator" in report.changes
    assert f"registered the coordinator 127.0.0.1:{PORT}" in report.changes
    assert f"created auth.uid() in {database}" in report.changes
    assert f"no workers in {database} yet" in report.unchanged
    assert not [line for line in report.changes if "worker" in line]
