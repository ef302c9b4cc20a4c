"""Citus copies every policy to the shards as PERMISSIVE (docs/scaling.md, "RESTRICTIVE arrives
PERMISSIVE"): a RESTRICTIVE policy would widen what a role sees on a distributed table instead of
narrowing it. None may exist, in the migrated database or in the declared policies."""

from __future__ import annotations

import pytest
from django.db import connection

from tenancy.rls import tenant_policies


@pytest.mark.django_db
def test_no_policy_of_the_migrated_database_is_restrictive() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(*) FILTER (WHERE NOT polpermissive) FROM pg_policy")
        total, restrictive = cursor.fetchone()
    assert total > 0
    assert restrictive == 0


def test_every_declared_policy_is_created_as_permissive() -> None:
    statements = [policy.create_sql(table) for table, policies in tenant_policies().items() for policy in policies]
    assert statements
    assert all(" AS PERMISSIVE " in statement and "RESTRICTIVE" not in statement for statement in statements)
