"""Cluster bootstrap: roles, the application database and the `vector` extension.

Runs as the server's superuser, before Django is configured, so it imports nothing from
Django. Every step checks before it acts: on a server that already has everything (a
Supabase project, a second `make run`) it changes nothing and reports that.
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
    for dbname in (database, "template1"):
        # Only a superuser may create the extension; test databases are cloned from template1.
        with psycopg.connect(superuser_dsn, dbname=dbname, autocommit=True) as conn:
            _ensure_vector(conn, dbname, report)
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
