"""The cluster bootstrap (config/dbbootstrap.py): Django connects as a plain app_owner that may
SET ROLE to the scope roles without inheriting them, the vector extension is installed, and
running the bootstrap again changes nothing."""

from __future__ import annotations

import io
import os
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from config.dbbootstrap import BootstrapError, bootstrap

pytestmark = pytest.mark.django_db

APP_OWNER = "app_owner"
# The NOLOGIN roles of the design that app_owner switches to with SET LOCAL ROLE.
SCOPE_ROLES = ("anon", "authenticated", "back_office", "service_role")

SUPERUSER_URL = os.environ.get("EMBEDDED_DATABASE_SUPERUSER_URL", "")
needs_embedded_superuser = pytest.mark.skipif(
    not SUPERUSER_URL,
    reason="EMBEDDED_DATABASE_SUPERUSER_URL is unset: not on the embedded server, so no superuser DSN to re-run with",
)


def fetch(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall())


def test_django_connects_as_app_owner_which_is_neither_superuser_nor_bypassrls() -> None:
    assert fetch(
        """
        SELECT current_user, session_user, r.rolsuper, r.rolbypassrls, r.rolcanlogin
        FROM pg_roles r WHERE r.rolname = current_user
        """
    ) == [("app_owner", "app_owner", False, False, True)]


@pytest.mark.parametrize("role", SCOPE_ROLES)
def test_scope_role_exists_and_cannot_log_in(role: str) -> None:
    assert fetch("SELECT rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [role]) == [
        (False, False, False)
    ]


@pytest.mark.parametrize("role", SCOPE_ROLES)
def test_app_owner_may_set_role_to_scope_role_but_does_not_inherit_it(role: str) -> None:
    if connection.pg_version < 160000:
        pytest.skip("per-grant INHERIT and SET options need PostgreSQL 16 (on 15 app_owner is NOINHERIT)")
    assert fetch(
        """
        SELECT m.inherit_option, m.set_option, m.admin_option FROM pg_auth_members m
        WHERE m.roleid = %s::regrole AND m.member = %s::regrole
        """,
        [role, APP_OWNER],
    ) == [(False, True, False)]
    # What the options mean: app_owner gets none of the role's privileges or policies, yet
    # may switch to it with SET ROLE.
    assert fetch(
        "SELECT pg_has_role(%s, %s, 'USAGE'), pg_has_role(%s, %s, 'SET')",
        [APP_OWNER, role, APP_OWNER, role],
    ) == [(False, True)]


def test_app_owner_is_a_member_of_no_other_role() -> None:
    assert fetch(
        """
        SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
        WHERE m.member = %s::regrole ORDER BY 1
        """,
        [APP_OWNER],
    ) == [(role,) for role in SCOPE_ROLES]


def test_vector_extension_is_installed_in_the_database() -> None:
    assert fetch("SELECT extname FROM pg_extension WHERE extname = 'vector'") == [("vector",)]
    assert fetch("SELECT to_regtype('vector')::text") == [("vector",)]


@needs_embedded_superuser
def test_running_the_bootstrap_again_changes_nothing() -> None:
    for database in (settings.EMBEDDED_DATABASE_NAME, connection.settings_dict["NAME"]):
        report = bootstrap(superuser_dsn=SUPERUSER_URL, database=database, app_password=None)
        assert report.changes == [], f"bootstrap of {database} changed: {report.changes}"
        assert report.summary().startswith("Bootstrap: nothing to change (")
        assert f"database {database} exists" in report.unchanged


def test_bootstrap_db_command_reports_nothing_to_change() -> None:
    out = io.StringIO()
    call_command("bootstrap_db", stdout=out)
    assert "nothing to change" in out.getvalue()


def test_bootstrap_db_without_a_superuser_dsn_verifies_as_the_application_role(settings: Any) -> None:
    settings.DATABASE_ADMIN_URL = ""
    out = io.StringIO()
    call_command("bootstrap_db", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "No superuser DSN (DATABASE_ADMIN_URL); verifying the server as the application role."
    assert lines[-1] == "Bootstrap: nothing to change (roles, grants and the vector extension are in place)."


def _superuser_execute(statement: str) -> None:
    with psycopg.connect(SUPERUSER_URL, autocommit=True) as conn:
        conn.execute(statement)


@needs_embedded_superuser
@pytest.mark.parametrize("attribute", ["SUPERUSER", "BYPASSRLS"])
def test_bootstrap_refuses_an_app_owner_that_is_superuser_or_bypassrls(attribute: str) -> None:
    _superuser_execute(f"ALTER ROLE {APP_OWNER} {attribute}")
    try:
        with pytest.raises(BootstrapError) as refused:
            bootstrap(superuser_dsn=SUPERUSER_URL, database=settings.EMBEDDED_DATABASE_NAME, app_password=None)
    finally:
        _superuser_execute(f"ALTER ROLE {APP_OWNER} NO{attribute}")
    assert str(refused.value) == (
        f"role app_owner exists but is {attribute}; run ALTER ROLE app_owner NOSUPERUSER NOBYPASSRLS first"
    )
    # The refusal changed nothing: the role is back to what the application needs.
    assert fetch("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [APP_OWNER]) == [(False, False)]


@needs_embedded_superuser
# The command reads the database name from settings; the override is undone by the fixture and
# no connection is opened with it (the refusal comes before any).
@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES:UserWarning")
def test_bootstrap_refuses_a_database_owned_by_another_role_and_the_command_names_it(settings: Any) -> None:
    database = f"bootstrap_foreign_{os.getpid()}"
    _superuser_execute(f"CREATE DATABASE {database}")  # owned by the superuser, not app_owner
    try:
        with pytest.raises(BootstrapError) as refused:
            bootstrap(superuser_dsn=SUPERUSER_URL, database=database, app_password=None)
        settings.DATABASES = {**settings.DATABASES, "default": {**settings.DATABASES["default"], "NAME": database}}
        with pytest.raises(CommandError) as command_refused:
            call_command("bootstrap_db", admin_url=SUPERUSER_URL, stdout=io.StringIO())
    finally:
        _superuser_execute(f"DROP DATABASE IF EXISTS {database}")
    owner = refused.value.args[0].split(" owned by ")[1].split(",")[0]
    assert owner != APP_OWNER
    assert str(refused.value) == (
        f"database {database} exists but is owned by {owner}, not app_owner; "
        f"run ALTER DATABASE {database} OWNER TO app_owner"
    )
    assert str(command_refused.value) == str(refused.value)
