"""Cluster bootstrap: roles, the application database and the `vector` extension.

Runs as the server's superuser, before Django is configured, so it imports nothing from
Django. Every step checks before it acts: on a server that already has everything (a
Supabase project, a second `make run`) it changes nothing and reports that.

On a Citus coordinator (the `citus` extension in the database of the superuser DSN, or in the
application database) it also prepares the application database on every node, because Citus
runs the DDL of `migrate` on the workers as the migrating role, `app_owner`, which may neither
create extensions nor ALTER ROLE there: `citus` on every node and the workers added in the
application database (what `citus-cluster prepare-db` does), `vector` through the coordinator,
and the `auth` schema with `auth.uid()` as superuser, so that `tenancy.0003_auth_uid` finds it
and does nothing. On a plain PostgreSQL none of this runs (docs/scaling.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

APP_OWNER = "app_owner"
# NOLOGIN roles the application switches to with SET LOCAL ROLE inside a transaction.
SCOPE_ROLES = ("authenticated", "anon", "back_office", "service_role")


class BootstrapError(RuntimeError):
    """The server is in a state the bootstrap refuses to build on."""


@dataclass
class BootstrapReport:
    """What the bootstrap found and what it changed."""

    changes: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def summary(self) -> str:
        if not self.changes:
            return "Bootstrap: nothing to change (" + "; ".join(self.unchanged) + ")."
        return "Bootstrap: " + "; ".join(self.changes) + "."


def bootstrap(
    *,
    superuser_dsn: str,
    database: str,
    app_password: str | None,
    log: Callable[[str], None] | None = None,
) -> BootstrapReport:
    """Create what Django needs before its first migration, idempotently."""
    report = BootstrapReport()
    with psycopg.connect(superuser_dsn, autocommit=True) as conn:
        server_version = conn.info.server_version
        _ensure_app_owner(conn, app_password, report)
        for role in SCOPE_ROLES:
            _ensure_nologin_role(conn, role, report)
            _ensure_membership(conn, role, server_version, report)
        _ensure_database(conn, database, report)
        # The nodes of the Citus cluster this server coordinates; None on a plain PostgreSQL.
        cluster = citus_cluster(conn)
    if cluster is None:
        with psycopg.connect(superuser_dsn, dbname=database, autocommit=True) as conn:
            cluster = citus_cluster(conn)
    if cluster is not None:
        _prepare_citus_database(superuser_dsn, database, cluster, report)
    for dbname in (database, "template1"):
        # Only a superuser may create the extension; test databases are cloned from template1.
        with psycopg.connect(superuser_dsn, dbname=dbname, autocommit=True) as conn:
            _ensure_vector(conn, dbname, report)
    if cluster is not None:
        with psycopg.connect(superuser_dsn, dbname=database, autocommit=True) as conn:
            _ensure_vector_on_workers(conn, database, report)
            _ensure_auth_uid(conn, database, report)
            _ensure_distributed_dependencies(conn, database, report)
    if log is not None:
        log(report.summary())
    return report


def _role_exists(conn: psycopg.Connection, role: str) -> tuple[bool, bool, bool] | None:
    row = conn.execute(
        "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = %s",
        [role],
    ).fetchone()
    return None if row is None else (bool(row[0]), bool(row[1]), bool(row[2]))


def _ensure_app_owner(conn: psycopg.Connection, password: str | None, report: BootstrapReport) -> None:
    found = _role_exists(conn, APP_OWNER)
    if found is None:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN CREATEDB NOSUPERUSER NOBYPASSRLS NOCREATEROLE PASSWORD {}").format(
                sql.Identifier(APP_OWNER), sql.Literal(password)
            )
        )
        report.changes.append(f"created role {APP_OWNER}")
        return
    is_super, bypass_rls, _ = found
    if is_super or bypass_rls:
        # Row level security means nothing to such a role; refuse rather than silently demote it.
        raise BootstrapError(
            f"role {APP_OWNER} exists but is {'SUPERUSER' if is_super else 'BYPASSRLS'}; "
            f"run ALTER ROLE {APP_OWNER} NOSUPERUSER NOBYPASSRLS first"
        )
    report.unchanged.append(f"role {APP_OWNER} exists")


def _ensure_nologin_role(conn: psycopg.Connection, role: str, report: BootstrapReport) -> None:
    if _role_exists(conn, role) is None:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        report.changes.append(f"created role {role}")
    else:
        report.unchanged.append(f"role {role} exists")


def _ensure_membership(conn: psycopg.Connection, role: str, server_version: int, report: BootstrapReport) -> None:
    """Let app_owner SET ROLE to `role` without inheriting its policies or privileges."""
    if server_version >= 160000:
        row = conn.execute(
            """
            SELECT m.inherit_option, m.set_option FROM pg_auth_members m
            WHERE m.roleid = %s::regrole AND m.member = %s::regrole
            """,
            [role, APP_OWNER],
        ).fetchone()
        if row is not None and not row[0] and row[1]:
            report.unchanged.append(f"{APP_OWNER} may SET ROLE {role} (no inherit)")
            return
        # Re-granting updates the options of an existing grant (PostgreSQL 16+).
        conn.execute(
            sql.SQL("GRANT {} TO {} WITH INHERIT FALSE, SET TRUE").format(
                sql.Identifier(role), sql.Identifier(APP_OWNER)
            )
        )
        what = "fixed grant of" if row is not None else "granted"
        report.changes.append(f"{what} {role} to {APP_OWNER} WITH INHERIT FALSE, SET TRUE")
        return
    # PostgreSQL 15 has no per-grant INHERIT option: the member itself must not inherit.
    row = conn.execute(
        "SELECT 1 FROM pg_auth_members WHERE roleid = %s::regrole AND member = %s::regrole",
        [role, APP_OWNER],
    ).fetchone()
    if row is None:
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(APP_OWNER)))
        report.changes.append(f"granted {role} to {APP_OWNER}")
    inherits = conn.execute("SELECT rolinherit FROM pg_roles WHERE rolname = %s", [APP_OWNER]).fetchone()
    if inherits is not None and inherits[0]:
        conn.execute(sql.SQL("ALTER ROLE {} NOINHERIT").format(sql.Identifier(APP_OWNER)))
        report.changes.append(f"made {APP_OWNER} NOINHERIT")


def _ensure_database(conn: psycopg.Connection, database: str, report: BootstrapReport) -> None:
    row = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [database]).fetchone()
    if row is None:
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(APP_OWNER)))
        report.changes.append(f"created database {database} owned by {APP_OWNER}")
    elif row[0] != APP_OWNER:
        raise BootstrapError(
            f"database {database} exists but is owned by {row[0]}, not {APP_OWNER}; "
            f"run ALTER DATABASE {database} OWNER TO {APP_OWNER}"
        )
    else:
        report.unchanged.append(f"database {database} exists")


def _ensure_vector(conn: psycopg.Connection, dbname: str, report: BootstrapReport) -> None:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    if row is None:
        conn.execute("CREATE EXTENSION vector")
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        report.changes.append(f"created extension vector {version[0] if version else '?'} in {dbname}")
    else:
        report.unchanged.append(f"vector {row[0]} in {dbname}")


# --- Citus -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CitusCluster:
    """A Citus coordinator and its primary workers, as the coordinator's pg_dist_node lists them."""

    coordinator: tuple[str, int] | None
    workers: tuple[tuple[str, int], ...]


def citus_cluster(conn: psycopg.Connection) -> CitusCluster | None:
    """The cluster `conn`'s server coordinates, or None when `citus` is not in its database.

    A worker (a node whose metadata names it as not the coordinator) is refused: the bootstrap
    must be given the coordinator's DSN.
    """
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone() is None:
        return None
    rows = conn.execute(
        "SELECT groupid, nodename, nodeport FROM pg_dist_node WHERE noderole = 'primary' AND isactive ORDER BY nodeid"
    ).fetchall()
    local_group = conn.execute("SELECT groupid FROM pg_dist_local_group").fetchone()
    if local_group is not None and local_group[0] not in (0, None) and rows:
        raise BootstrapError(
            f"{conn.info.host}:{conn.info.port} is a Citus worker (group {local_group[0]}); "
            "run the bootstrap with the coordinator's superuser DSN"
        )
    coordinator = next(((str(r[1]), int(r[2])) for r in rows if r[0] == 0), None)
    workers = tuple((str(r[1]), int(r[2])) for r in rows if r[0] != 0)
    return CitusCluster(coordinator=coordinator, workers=workers)


def _node(superuser_dsn: str, dbname: str, node: tuple[str, int] | None = None) -> psycopg.Connection:
    """A superuser connection to `dbname`, on the DSN's server or on another node of the cluster
    with the DSN's user and password (Citus connects between the nodes as the same user)."""
    if node is None:
        return psycopg.connect(superuser_dsn, dbname=dbname, autocommit=True)
    return psycopg.connect(superuser_dsn, dbname=dbname, host=node[0], port=node[1], autocommit=True)


def _ensure_citus_extension(conn: psycopg.Connection, where: str, report: BootstrapReport) -> None:
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone() is None:
        conn.execute("CREATE EXTENSION citus")
        report.changes.append(f"created extension citus in {where}")
    else:
        report.unchanged.append(f"citus in {where}")


def _prepare_citus_database(superuser_dsn: str, database: str, cluster: CitusCluster, report: BootstrapReport) -> None:
    """`citus` in `database` on every node, then the coordinator and the workers registered in it.

    A new database of a Citus cluster knows no nodes: without this, `migrate` would create
    plain local tables and propagate nothing (citus-cluster prepare-db does the same).
    """
    for worker in cluster.workers:
        try:
            conn = _node(superuser_dsn, database, worker)
        except psycopg.OperationalError as exc:
            raise BootstrapError(
                f"cannot reach database {database} on the worker {worker[0]}:{worker[1]} with the superuser DSN's "
                f"user ({str(exc).strip().splitlines()[-1]}); the database reaches the workers with "
                "citus.enable_create_database_propagation = on, or run CREATE DATABASE and CREATE EXTENSION citus "
                "there yourself, then the bootstrap again"
            ) from exc
        with conn:
            _ensure_citus_extension(conn, f"{database} on {worker[0]}:{worker[1]}", report)
    with _node(superuser_dsn, database) as conn:
        _ensure_citus_extension(conn, f"{database} on the coordinator", report)
        known = {(str(h), int(p)) for h, p in conn.execute("SELECT nodename, nodeport FROM pg_dist_node").fetchall()}
        if cluster.coordinator is not None and cluster.coordinator not in known:
            conn.execute("SELECT citus_set_coordinator_host(%s, %s)", list(cluster.coordinator))
            report.changes.append(f"registered the coordinator {cluster.coordinator[0]}:{cluster.coordinator[1]}")
        for host, port in cluster.workers:
            if (host, port) in known:
                report.unchanged.append(f"worker {host}:{port} in {database}")
            else:
                conn.execute("SELECT citus_add_node(%s, %s)", [host, port])
                report.changes.append(f"added worker {host}:{port} to {database}")


def _ensure_vector_on_workers(conn: psycopg.Connection, database: str, report: BootstrapReport) -> None:
    """`vector` on every node, and recorded by Citus as such.

    CREATE EXTENSION on the coordinator reaches the workers, but an extension the database had
    before `citus` (cloned from a template1 that has it) is only local. Citus sends
    CREATE EXTENSION IF NOT EXISTS to the workers for one it has not recorded, and records it;
    for a recorded one it sends nothing, so the migration's CREATE EXTENSION IF NOT EXISTS is
    then a no-op for app_owner (citus src/backend/distributed/commands/extension.c,
    PostprocessCreateExtensionStmt).
    """
    if ("extension", "vector") not in distributed_objects(conn):
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        report.changes.append(f"propagated extension vector to every node of {database}")
    rows = conn.execute(
        """
        SELECT nodename, nodeport, success, result FROM run_command_on_workers(
            $$SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'vector'), '')$$)
        """
    ).fetchall()
    missing = [f"{host}:{port}" for host, port, ok, version in rows if not ok or not version]
    if missing:
        raise BootstrapError(f"the vector extension is missing in {database} on the workers {', '.join(missing)}")
    report.unchanged.append(f"vector in {database} on {len(rows)} workers")


# What the objects app_owner creates depend on (their owner, the roles the owner is a member of,
# the language of procrastinate's functions). Citus records per database (pg_dist_object) which
# objects exist on every node; the first propagated object that depends on one that is not
# recorded yet makes Citus create or alter it on the workers first, as the current role:
# "permission denied to alter role" or "must be owner of extension plpgsql" for app_owner.
CITUS_DEPENDENCIES = (("extension", "plpgsql"), ("role", APP_OWNER), *(("role", role) for role in SCOPE_ROLES))
_PROBE = "public.bootstrap_citus_dependencies"


def distributed_objects(conn: psycopg.Connection) -> set[tuple[str, str]]:
    """(type, name) of the objects Citus records as present on every node of this database."""
    rows = conn.execute(
        """
        SELECT a.type, a.object_names[array_upper(a.object_names, 1)]
        FROM pg_dist_object d, pg_identify_object_as_address(d.classid, d.objid, d.objsubid) a
        """
    ).fetchall()
    return {(str(kind), str(name)) for kind, name in rows}


def _ensure_distributed_dependencies(conn: psycopg.Connection, database: str, report: BootstrapReport) -> None:
    """Make the superuser the first to propagate what app_owner's objects depend on.

    No public Citus function records an existing object as distributed; creating one object that
    depends on all of them does: a plpgsql function owned by app_owner (the owner brings the roles
    app_owner is a member of), dropped at once. Its dependencies stay recorded.
    """
    missing = [dep for dep in CITUS_DEPENDENCIES if dep not in distributed_objects(conn)]
    if not missing:
        report.unchanged.append(f"roles and plpgsql recorded on every node of {database}")
        return
    if conn.execute("SELECT 1 FROM pg_dist_node WHERE groupid <> 0").fetchone() is None:
        # A single node: nothing to propagate to; citus_add_node (superuser only) copies what
        # the workers need when they come.
        report.unchanged.append(f"no workers in {database} yet")
        return
    # OR REPLACE: a bootstrap stopped between here and the DROP below left one behind.
    conn.execute(f"CREATE OR REPLACE FUNCTION {_PROBE}() RETURNS void LANGUAGE plpgsql AS 'BEGIN END'")
    try:
        conn.execute(sql.SQL(f"ALTER FUNCTION {_PROBE}() OWNER TO {{}}").format(sql.Identifier(APP_OWNER)))
    finally:
        conn.execute(f"DROP FUNCTION {_PROBE}()")
    still = [dep for dep in CITUS_DEPENDENCIES if dep not in distributed_objects(conn)]
    if still:
        raise BootstrapError(f"Citus did not record {still} as present on every node of {database}")
    report.changes.append(f"propagated {', '.join(name for _, name in missing)} to every node of {database}")


# tenancy.0003_auth_uid creates this function when it is missing; on Citus the bootstrap creates
# it instead (Citus would propagate it and its dependencies to the workers as app_owner, which
# fails). The migration then does nothing, and its reverse leaves it alone: it drops only a
# function carrying its own comment, as it leaves Supabase's. The body must stay the migration's
# (tests/citus checks it).
AUTH_UID_BODY = """
                SELECT nullif(
                    coalesce(
                        nullif(current_setting('request.jwt.claim.sub', true), ''),
                        nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
                    ),
                    ''
                )::uuid
            """
AUTH_UID_MARK = "growth-data-service: Supabase-compatible auth.uid() shim, made by the bootstrap (Citus)"
# The migration's grants, and USAGE for app_owner, which looks the function up by name.
AUTH_UID_ROLES = ("authenticated", "back_office", "service_role")


def _ensure_auth_uid(conn: psycopg.Connection, database: str, report: BootstrapReport) -> None:
    if conn.execute("SELECT to_regprocedure('auth.uid()')").fetchone() not in (None, (None,)):
        report.unchanged.append(f"auth.uid() in {database}")
        return
    roles = sql.SQL(", ").join(sql.Identifier(role) for role in AUTH_UID_ROLES)
    with conn.transaction():
        conn.execute("CREATE SCHEMA IF NOT EXISTS auth")
        conn.execute(
            sql.SQL("CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE SECURITY INVOKER AS {}").format(
                sql.Literal(AUTH_UID_BODY)
            )
        )
        conn.execute(sql.SQL("COMMENT ON FUNCTION auth.uid() IS {}").format(sql.Literal(AUTH_UID_MARK)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA auth TO {}, {}").format(roles, sql.Identifier(APP_OWNER)))
        conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION auth.uid() TO {}").format(roles))
    report.changes.append(f"created auth.uid() in {database}")
