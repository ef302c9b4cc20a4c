"""The cluster bootstrap (config/dbbootstrap.py): Django connects as a plain app_owner that may
SET ROLE to the scope roles without inheriting them, the vector extension is installed, and
running the bootstrap again changes nothing."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from config.dbbootstrap import bootstrap

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
