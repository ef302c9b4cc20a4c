"""Row level security: the policies every tenant table must have, and the migration
operation that installs them.

Each tenant model declares its policy kind (`tenancy.tables.TenantTable`); `tenant_policies()`
turns the declarations into policies and is the single description of the intended security.
Migrations freeze a copy of it (the operation stores literal SQL), so a later change to a
declaration must come with a new migration: `manage.py makepolicymigrations` writes one, and a
test fails while the newest migrated policies differ from `tenant_policies()`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ProjectState

from .tables import PolicyKind, declared_tables

# --- Building blocks of the policies ----------------------------------------------------
# current_setting(..., true) returns NULL (or '') when no scope set it, and `=` with NULL is
# never true: no scope, no rows.
# Wrapped in SELECT like auth.uid(): an initPlan evaluated once per statement; bare, the
# function ran once per row (bench: RLS 1.6-1.9x the explicit filter, wrapped 1.01x).
SHOP_MATCHES = "shop_domain = (SELECT current_setting('app.current_shop', true))"
# Wrapped in SELECT so the planner evaluates auth.uid() once per statement (an initPlan),
# not once per row.
USER_MATCHES = "user_id = (SELECT auth.uid())"
CEO_ROLE = "(SELECT current_setting('app.current_role', true)) IN ('ceo', 'owner')"
# Staff see every shop ('*') or the shops listed for them; the scope sets app.staff_shops.
# Each read wrapped in a scalar SELECT like the tenant settings: an initPlan evaluated once
# per statement, not per row (the `::text[]` cast makes `ANY (...)` take the sub-select's one
# array value, not compare against a subquery's rows).
_STAFF_SHOPS = "(SELECT current_setting('app.staff_shops', true))"
_STAFF_LIST = "((SELECT string_to_array(current_setting('app.staff_shops', true), ','))::text[])"
STAFF_SHOP_MATCHES = f"({_STAFF_SHOPS} = '*' OR shop_domain = ANY {_STAFF_LIST})"
STAFF_USER_MATCHES = (
    f"({_STAFF_SHOPS} = '*' "
    f"OR user_id IN (SELECT m.user_id FROM shop_memberships m WHERE m.shop_domain = ANY {_STAFF_LIST}))"
)
TENANT_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"


@dataclass(frozen=True)
class Policy:
    """One CREATE POLICY: `using` filters rows read, `check` guards rows written."""

    name: str
    role: str
    using: str
    check: str

    def create_sql(self, table: str) -> str:
        return (
            f"CREATE POLICY {self.name} ON {table} AS PERMISSIVE FOR ALL TO {self.role} "
            f"USING ({self.using}) WITH CHECK ({self.check})"
        )

    def drop_sql(self, table: str) -> str:
        return f"DROP POLICY IF EXISTS {self.name} ON {table}"

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role, "using": self.using, "check": self.check}


def _policies(table: str, tenant: str, staff: str) -> tuple[Policy, ...]:
    return (
        Policy(f"{table}_tenant", "authenticated", tenant, tenant),
        Policy(f"{table}_back_office", "back_office", staff, staff),
        Policy(f"{table}_service", "service_role", "true", "true"),
    )


def shop_policies(table: str) -> tuple[Policy, ...]:
    return _policies(table, SHOP_MATCHES, STAFF_SHOP_MATCHES)


def user_shop_policies(table: str) -> tuple[Policy, ...]:
    return _policies(table, f"{USER_MATCHES} AND {SHOP_MATCHES}", STAFF_SHOP_MATCHES)


def user_policies(table: str) -> tuple[Policy, ...]:
    return _policies(table, USER_MATCHES, STAFF_USER_MATCHES)


def ceo_policies(table: str) -> tuple[Policy, ...]:
    return _policies(table, f"{SHOP_MATCHES} AND {CEO_ROLE}", STAFF_SHOP_MATCHES)


# The SQL of each policy kind a model may declare (tenancy/tables.py).
POLICY_BUILDERS: dict[PolicyKind, Callable[[str], tuple[Policy, ...]]] = {
    PolicyKind.SHOP: shop_policies,
    PolicyKind.USER: user_policies,
    PolicyKind.USER_SHOP: user_shop_policies,
    PolicyKind.CEO: ceo_policies,
}


def tenant_policies() -> dict[str, tuple[Policy, ...]]:
    """Every tenant table and its policies, built from the models' declarations.

    A new tenant table declares `tenancy = TenantTable(...)` on its model (a catalog test fails
    for any table with a shop_domain or user_id column that declares nothing)."""
    return {declared.table: POLICY_BUILDERS[declared.traits.policy](declared.table) for declared in declared_tables()}


def _policy_list(policies: list[dict[str, str]] | tuple[Policy, ...]) -> list[Policy]:
    return [p if isinstance(p, Policy) else Policy(**p) for p in policies]


class FrozenSqlOperation(Operation):
    """A migration operation that runs literal SQL statements its arguments freeze
    (`forwards_sql` / `backwards_sql`) and leaves the model state alone."""

    reduces_to_sql = True
    reversible = True

    def forwards_sql(self) -> list[str]:
        raise NotImplementedError

    def backwards_sql(self) -> list[str]:
        raise NotImplementedError

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        # Only the database changes; the models are as they were.
        pass

    def database_forwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        for statement in self.forwards_sql():
            schema_editor.execute(statement, params=None)

    def database_backwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        for statement in self.backwards_sql():
            schema_editor.execute(statement, params=None)


class SecureTable(FrozenSqlOperation):
    """ENABLE and FORCE row level security on a table, grant `authenticated` its privileges
    and install the table's policies; backwards removes exactly that.

    With `previous` given it replaces an earlier policy set instead (and backwards restores
    it), which is how a changed policy reaches deployed databases.
    """

    def __init__(
        self,
        table: str,
        policies: list[dict[str, str]],
        previous: list[dict[str, str]] | None = None,
    ) -> None:
        self.table = table
        self.policies = policies
        self.previous = previous

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {"table": self.table, "policies": self.policies}
        if self.previous is not None:
            kwargs["previous"] = self.previous
        return (self.__class__.__qualname__, [], kwargs)

    def forwards_sql(self) -> list[str]:
        new = _policy_list(self.policies)
        if self.previous is not None:
            return [p.drop_sql(self.table) for p in _policy_list(self.previous)] + [
                p.create_sql(self.table) for p in new
            ]
        return [
            f"ALTER TABLE {self.table} ENABLE ROW LEVEL SECURITY",
            f"ALTER TABLE {self.table} FORCE ROW LEVEL SECURITY",
            f"REVOKE ALL ON {self.table} FROM PUBLIC, anon",
            f"GRANT {TENANT_PRIVILEGES} ON {self.table} TO authenticated",
            *[p.create_sql(self.table) for p in new],
        ]

    def backwards_sql(self) -> list[str]:
        new = _policy_list(self.policies)
        if self.previous is not None:
            return [p.drop_sql(self.table) for p in new] + [
                p.create_sql(self.table) for p in _policy_list(self.previous)
            ]
        return [
            *[p.drop_sql(self.table) for p in new],
            f"REVOKE {TENANT_PRIVILEGES} ON {self.table} FROM authenticated",
            f"ALTER TABLE {self.table} NO FORCE ROW LEVEL SECURITY",
            f"ALTER TABLE {self.table} DISABLE ROW LEVEL SECURITY",
        ]

    def describe(self) -> str:
        verb = "Replace policies of" if self.previous is not None else "Enable and force row level security on"
        return f"{verb} {self.table}"

    @property
    def migration_name_fragment(self) -> str:
        return f"secure_{self.table}"
