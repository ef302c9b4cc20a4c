"""What row level security and the tenant scope do on Citus today, pinned on a real cluster.

A toy table distributed by `shop` in a database of its own (no project table is distributed yet:
that waits for the issue that gives every table its distribution key). Each test states one
finding of docs/scaling.md, "Row level security and the scope on Citus: what the source says";
a Citus upgrade that changes one of them fails here first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from config.dbbootstrap import bootstrap

from .conftest import Cluster, needs_gcc

pytestmark = [pytest.mark.slow, needs_gcc]

# A LOGIN role the toy policies also name, to see past "not permitted to log in".
LOGIN_ROLE = "citus_lab_login"
SHOP_POLICY = "shop = current_setting('app.current_shop', true)"
WRAPPED_SHOP_POLICY = "shop = (SELECT current_setting('app.current_shop', true))"


@pytest.fixture(scope="module")
def lab(citus: Cluster) -> Iterator[str]:
    """A bootstrapped database with `t`, distributed by shop: shops a-d, ids 1-3, and (a, 500)."""
    name = f"citus_rls_lab_{os.getpid()}"
    with citus.connect("postgres") as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f"DROP ROLE IF EXISTS {LOGIN_ROLE}")
        bootstrap(superuser_dsn=citus.superuser_url, database=name, app_password="app_owner")
        admin.execute(f"CREATE ROLE {LOGIN_ROLE} LOGIN")
        admin.execute(f"GRANT {LOGIN_ROLE} TO app_owner WITH INHERIT FALSE, SET TRUE")
        try:
            with psycopg.connect(citus.url(name, user="app_owner"), autocommit=True) as owner:
                for statement in (
                    "CREATE TABLE t (shop text NOT NULL, id int NOT NULL, PRIMARY KEY (shop, id))",
                    "ALTER TABLE t ENABLE ROW LEVEL SECURITY",
                    "ALTER TABLE t FORCE ROW LEVEL SECURITY",
                    f"CREATE POLICY shop ON t AS PERMISSIVE FOR ALL TO authenticated, {LOGIN_ROLE} "
                    f"USING ({SHOP_POLICY}) WITH CHECK ({SHOP_POLICY})",
                    "CREATE POLICY service ON t AS PERMISSIVE FOR ALL TO service_role USING (true) WITH CHECK (true)",
                    f"GRANT SELECT, INSERT, UPDATE, DELETE ON t TO authenticated, service_role, {LOGIN_ROLE}",
                    "SELECT create_distributed_table('t', 'shop')",
                ):
                    owner.execute(statement)
            with citus.connect(name) as superuser:
                # The superuser bypasses row level security: the seed.
                superuser.execute(
                    "INSERT INTO t SELECT s, g FROM unnest(ARRAY['a', 'b', 'c', 'd']) s, generate_series(1, 3) g"
                )
                superuser.execute("INSERT INTO t VALUES ('a', 500)")
            yield name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f"DROP ROLE IF EXISTS {LOGIN_ROLE}")


def as_app_owner(citus: Cluster, database: str, *statements: str) -> list[tuple[Any, ...]]:
    """Run `statements` in one transaction as app_owner (rolled back); the last one's rows."""
    with psycopg.connect(citus.url(database, user="app_owner")) as conn:
        rows: list[tuple[Any, ...]] = []
        for statement in statements:
            cursor = conn.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
        conn.rollback()
        return rows


def test_a_policy_with_a_sub_select_refuses_distribution(citus: Cluster, lab: str) -> None:
    # The project's policies wrap every setting in (SELECT ...) for an initPlan; Citus refuses them
    # (commands/policy.c, ErrorIfUnsupportedPolicyExpr).
    with psycopg.connect(citus.url(lab, user="app_owner"), autocommit=True) as owner:
        owner.execute("CREATE TABLE wrapped (shop text NOT NULL, id int NOT NULL, PRIMARY KEY (shop, id))")
        owner.execute(f"CREATE POLICY shop ON wrapped FOR ALL TO authenticated USING ({WRAPPED_SHOP_POLICY})")
        try:
            with pytest.raises(psycopg.errors.FeatureNotSupported) as refused:
                owner.execute("SELECT create_distributed_table('wrapped', 'shop')")
        finally:
            owner.execute("DROP TABLE wrapped")
    assert refused.value.diag.message_detail == "Subqueries are not supported in policies on distributed tables"


def test_enable_force_owner_and_policies_reach_the_shards_but_restrictive_arrives_permissive(
    citus: Cluster, lab: str
) -> None:
    with psycopg.connect(citus.url(lab, user="app_owner"), autocommit=True) as owner:
        owner.execute("CREATE TABLE r (shop text NOT NULL, id int NOT NULL, PRIMARY KEY (shop, id))")
        owner.execute("ALTER TABLE r ENABLE ROW LEVEL SECURITY")
        owner.execute("ALTER TABLE r FORCE ROW LEVEL SECURITY")
        owner.execute(f"CREATE POLICY shop ON r AS PERMISSIVE FOR ALL TO authenticated USING ({SHOP_POLICY})")
        owner.execute("CREATE POLICY small ON r AS RESTRICTIVE FOR ALL TO authenticated USING (id < 100)")
        try:
            owner.execute("SELECT create_distributed_table('r', 'shop')")
            with citus.connect(lab) as superuser:
                shards = superuser.execute(
                    """
                    SELECT DISTINCT result FROM run_command_on_shards('r', $$
                      SELECT concat_ws(' ', c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner),
                        (SELECT string_agg(polname || ':' || CASE WHEN polpermissive THEN 'permissive'
                                                           ELSE 'restrictive' END, ',' ORDER BY polname)
                         FROM pg_policy WHERE polrelid = c.oid))
                      FROM pg_class c WHERE c.oid = '%s'::regclass $$)
                    """
                ).fetchall()
        finally:
            owner.execute("DROP TABLE r")
    # The coordinator's RESTRICTIVE policy is PERMISSIVE on every shard: it widens instead of
    # narrowing (commands/policy.c, CreatePolicyCommandForPolicy writes no AS RESTRICTIVE).
    assert shards == [("t t app_owner shop:permissive,small:permissive",)]


def test_the_apps_scope_with_a_nologin_role_fails_closed_with_an_error(citus: Cluster, lab: str) -> None:
    # tenancy.scope: set_config('role', 'authenticated', true). Citus opens its connections to the
    # workers as the current user (CurrentUserName(), GetUserId()), which may not log in.
    with pytest.raises(psycopg.errors.ConnectionFailure) as refused:
        as_app_owner(
            citus,
            lab,
            "SELECT set_config('role', 'authenticated', true), set_config('app.current_shop', 'a', true)",
            "SELECT count(*) FROM t WHERE shop = 'a'",
        )
    assert 'FATAL:  role "authenticated" is not permitted to log in' in str(refused.value)


@pytest.mark.parametrize("propagate", ["none", "local"])
def test_set_config_does_not_reach_the_workers_so_a_login_role_sees_no_rows(
    citus: Cluster, lab: str, propagate: str
) -> None:
    # set_config() is a function call, not a SET statement: citus.propagate_set_commands does not
    # apply (commands/variableset.c, ShouldPropagateSetCommand). On the shard the setting is unset.
    assert as_app_owner(
        citus,
        lab,
        f"SET LOCAL citus.propagate_set_commands = '{propagate}'",
        f"SELECT set_config('role', '{LOGIN_ROLE}', true), set_config('app.current_shop', 'a', true)",
        "SELECT current_setting('app.current_shop'), count(*) FROM t",
    ) == [("a", 0)]


def test_set_local_with_propagation_scopes_reads_and_writes_on_the_shards(citus: Cluster, lab: str) -> None:
    scope = (
        "SET LOCAL citus.propagate_set_commands = 'local'",
        f"SET LOCAL ROLE {LOGIN_ROLE}",
        "SET LOCAL app.current_shop = 'a'",
    )
    assert as_app_owner(citus, lab, *scope, "SELECT shop, count(*) FROM t GROUP BY shop") == [("a", 4)]
    assert as_app_owner(citus, lab, *scope, "SELECT count(*) FROM t WHERE shop = 'b'") == [(0,)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="violates row-level security policy"):
        as_app_owner(citus, lab, *scope, "INSERT INTO t VALUES ('b', 7)")
    # The worker's session runs as the login role.
    remote_user = "SELECT DISTINCT result FROM run_command_on_shards('t', 'SELECT current_user')"
    assert as_app_owner(citus, lab, *scope, remote_user) == [(LOGIN_ROLE,)]


def test_a_set_local_inside_a_released_savepoint_is_not_replayed_on_later_connections(citus: Cluster, lab: str) -> None:
    # PostgreSQL keeps a SET LOCAL made in a savepoint after RELEASE; Citus forgets it for the
    # connections it opens afterwards (transaction/transaction_management.c, PopSubXact).
    assert as_app_owner(
        citus,
        lab,
        "SET LOCAL citus.propagate_set_commands = 'local'",
        f"SET LOCAL ROLE {LOGIN_ROLE}",
        "SAVEPOINT s",
        "SET LOCAL app.current_shop = 'a'",
        "RELEASE SAVEPOINT s",
        "SELECT current_setting('app.current_shop'), count(*) FROM t",
    ) == [("a", 0)]
