"""The whole security model in one place: every table's declared traits (tenancy/tables.py)
next to what the database has installed (row level security flags, policies, grants,
partitions). `manage.py show_security` prints it; a table whose installed policies differ from
its declaration is flagged (the fix is `manage.py makepolicymigrations` and `migrate`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections

from .partitions import PartitionedTable, monthly_partitions
from .rls import Policy, tenant_policies
from .scope import SCOPE_ROLES
from .tables import DeclaredTable, declared_tables

# Tables of tenancy's own that hold no tenant data: read before any scope exists, without row
# level security (docs/security.md, "Directory tables").
DIRECTORY_TABLES = ("users", "shops", "shop_memberships")


@dataclass
class TableSecurity:
    table: str
    model: str
    # The declared policy kind; "directory" for tenancy's directory tables.
    kind: str
    rls_enabled: bool = False
    rls_forced: bool = False
    # role -> privileges granted on the table (scope roles and PUBLIC only).
    grants: dict[str, list[str]] = field(default_factory=dict)
    declared: list[Policy] = field(default_factory=list)
    installed: list[Policy] = field(default_factory=list)
    retention: str = "-"
    partitioning: str = "-"
    # The migrations on disk install other policies than the declared ones.
    migration_pending: bool = False

    @property
    def in_step(self) -> bool:
        """The database has the declared policies (by name and role; PostgreSQL shows their
        expressions deparsed) and no policy migration is missing."""
        return not self.migration_pending and {(p.name, p.role) for p in self.declared} == {
            (p.name, p.role) for p in self.installed
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "model": self.model,
            "kind": self.kind,
            "rls_enabled": self.rls_enabled,
            "rls_forced": self.rls_forced,
            "grants": self.grants,
            "policies": [policy.as_dict() for policy in self.installed],
            "declared_policies": [policy.as_dict() for policy in self.declared],
            "migration_pending": self.migration_pending,
            "policies_in_step": self.in_step,
            "retention": self.retention,
            "partitioning": self.partitioning,
        }


def _retention(declared: DeclaredTable) -> str:
    retention = declared.traits.retention
    if retention is None:
        return "-"
    if retention.days is None:
        return "forever"
    return f"{retention.days} days by {retention.column}"


def _partitioning(declared: DeclaredTable, *, using: str) -> str:
    column = declared.traits.partition_by
    if column is None:
        return "-"
    spec = PartitionedTable(declared.app_label, declared.model.__name__, column)
    return f"monthly by {column} ({len(monthly_partitions(spec, using=using))} monthly partitions and a default)"


def security_model(*, using: str = DEFAULT_DB_ALIAS) -> list[TableSecurity]:
    """Every tenant table (in the app registry's order), then the directory tables."""
    user_model = apps.get_model("tenancy", "User")
    directory_models = {model._meta.db_table: model for model in apps.get_app_config("tenancy").get_models()}
    from .management.commands.makepolicymigrations import pending_operations

    declared_policies = tenant_policies()
    pending = {operation.table for operations in pending_operations().values() for operation in operations}
    rows: list[TableSecurity] = [
        TableSecurity(
            table=declared.table,
            model=declared.model._meta.label,
            kind=str(declared.traits.policy),
            declared=list(declared_policies[declared.table]),
            retention=_retention(declared),
            partitioning=_partitioning(declared, using=using),
            migration_pending=declared.table in pending,
        )
        for declared in declared_tables()
    ]
    rows += [
        TableSecurity(table=table, model=directory_models.get(table, user_model)._meta.label, kind="directory")
        for table in DIRECTORY_TABLES
    ]
    by_table = {row.table: row for row in rows}
    tables = sorted(by_table)
    roles = sorted({*SCOPE_ROLES, "anon", "PUBLIC"})
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE relnamespace = 'public'::regnamespace AND relname = ANY(%s)",
            [tables],
        )
        for name, enabled, forced in cursor.fetchall():
            by_table[name].rls_enabled, by_table[name].rls_forced = bool(enabled), bool(forced)
        cursor.execute(
            "SELECT tablename, policyname, roles, qual, with_check FROM pg_policies "
            "WHERE schemaname = 'public' AND tablename = ANY(%s) ORDER BY tablename, policyname",
            [tables],
        )
        for name, policy, policy_roles, qual, check in cursor.fetchall():
            by_table[name].installed.append(Policy(policy, ",".join(policy_roles), qual or "", check or ""))
        cursor.execute(
            "SELECT table_name, grantee, privilege_type FROM information_schema.role_table_grants "
            "WHERE table_schema = 'public' AND table_name = ANY(%s) AND grantee = ANY(%s) "
            "ORDER BY table_name, grantee, privilege_type",
            [tables, roles],
        )
        for name, grantee, privilege in cursor.fetchall():
            by_table[name].grants.setdefault(grantee, []).append(privilege)
    return rows
