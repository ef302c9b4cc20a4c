"""Which tables hold a shop's data: the project's table registry, cross-checked against the
database catalog, in the order erasure and import need.

Nothing here lists a domain table by name. `registered_tenant_tables` is the one place that
knows where the project's registry lives (`tenancy.tables.declared_tables`, the models'
`tenancy = TenantTable(...)` declarations); `shop_data_plan` then
asks PostgreSQL which tables carry a `shop_domain` column and refuses to run while one of them
is neither registered, a directory table, nor one of this app's records. A new table with a
`shop_domain` column therefore stops every erasure and export until it is registered (and
tests/shopify/test_registry.py fails first).

Monthly partitions are not separate entries: the catalog lists partitioned parents only
(`NOT relispartition`), and every statement goes through the parent, which reaches every
partition including DEFAULT.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import DEFAULT_DB_ALIAS, connections

from tenancy.models import Shop, ShopMembership

from .models import RECORD_TABLES

SHOP_COLUMN = "shop_domain"
# Directory tables: they name a shop but are not rows of its data. The erasure deletes the
# shop's memberships itself (last) and keeps its row in `shops`, marked inactive.
SHOPS_TABLE = Shop._meta.db_table
MEMBERSHIPS_TABLE = ShopMembership._meta.db_table
DIRECTORY_TABLES = frozenset({SHOPS_TABLE, MEMBERSHIPS_TABLE})


def registered_tenant_tables() -> frozenset[str]:
    """Every tenant table the project's registry declares (the models' `tenancy =
    TenantTable(...)`, collected from the app registry).

    The single dependency on where the registry lives: if it moves, only this function changes."""
    from tenancy.tables import declared_tables

    return frozenset(declared.table for declared in declared_tables())


class CoverageError(RuntimeError):
    """The catalog has a table with a shop's rows that the registry does not cover."""


@dataclass(frozen=True)
class TablePlan:
    """One table of a shop's data, as the catalog describes it."""

    table: str
    columns: tuple[str, ...]  # stored columns, in table order (generated ones left out)
    generated: tuple[str, ...]
    # column -> table it references by `id` (foreign keys among the shop's tables)
    references: dict[str, str] = field(default_factory=dict)
    has_user: bool = False  # a `user_id` column: the policies also match the subject
    partitioned: bool = False

    @property
    def self_references(self) -> tuple[str, ...]:
        return tuple(column for column, target in self.references.items() if target == self.table)


def _fetch(sql: str, params: list[Any], *, using: str) -> list[tuple[Any, ...]]:
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def tables_with_shop_column(*, using: str = DEFAULT_DB_ALIAS) -> dict[str, bool]:
    """{table: partitioned} of every table (partitioned parents, not their partitions) of the
    current schema with a `shop_domain` column."""
    rows = _fetch(
        """
        SELECT c.relname, c.relkind = 'p' FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = %s AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
        """,
        [SHOP_COLUMN],
        using=using,
    )
    return {str(name): bool(partitioned) for name, partitioned in rows}


def uncovered_tables(*, using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Tables with a `shop_domain` column that no erasure or export would reach."""
    known = registered_tenant_tables() | DIRECTORY_TABLES | RECORD_TABLES
    return sorted(set(tables_with_shop_column(using=using)) - known)


def _columns(tables: list[str], *, using: str) -> dict[str, list[tuple[str, bool]]]:
    rows = _fetch(
        """
        SELECT c.relname, a.attname, a.attgenerated <> '' FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
        WHERE c.relname = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY c.relname, a.attnum
        """,
        [tables],
        using=using,
    )
    out: dict[str, list[tuple[str, bool]]] = {}
    for table, column, generated in rows:
        out.setdefault(str(table), []).append((str(column), bool(generated)))
    return out


def _references(tables: list[str], *, using: str) -> list[tuple[str, str, str]]:
    """(table, column, referenced table) of every foreign key among `tables` whose column
    points at the referenced table's `id` (composite keys also match `shop_domain`)."""
    rows = _fetch(
        """
        SELECT con.conrelid::regclass::text, a.attname, con.confrelid::regclass::text
        FROM pg_constraint con
        CROSS JOIN LATERAL unnest(con.conkey, con.confkey) AS k(col, fcol)
        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.col
        JOIN pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = k.fcol
        WHERE con.contype = 'f' AND con.conparentid = 0 AND fa.attname = 'id'
          AND con.conrelid::regclass::text = ANY(%s) AND con.confrelid::regclass::text = ANY(%s)
        """,
        [tables, tables],
        using=using,
    )
    return [(str(t), str(c), str(r)) for t, c, r in rows]


def _parents_first(tables: list[str], references: list[tuple[str, str, str]]) -> list[str]:
    """Tables ordered so that every referenced table comes before the tables referencing it
    (ties by name, so the order is stable)."""
    needs = {
        table: {target for source, _, target in references if source == table and target != table} for table in tables
    }
    ordered: list[str] = []
    while needs:
        ready = sorted(table for table, targets in needs.items() if not targets - set(ordered))
        if not ready:
            raise CoverageError(f"foreign keys among {sorted(needs)} form a cycle")
        ordered.extend(ready)
        for table in ready:
            del needs[table]
    return ordered


def shop_data_plan(*, using: str = DEFAULT_DB_ALIAS) -> list[TablePlan]:
    """Every table holding a shop's rows, parents before children (export and import order;
    erasure walks it backwards). Raises CoverageError while a table is not covered."""
    missing = uncovered_tables(using=using)
    if missing:
        raise CoverageError(
            f"tables with a {SHOP_COLUMN} column are not in the tenant table registry: {', '.join(missing)}; "
            "register them (with their policies) before any shop can be exported or erased"
        )
    with_shop = tables_with_shop_column(using=using)
    tables = sorted(t for t in registered_tenant_tables() if t in with_shop)
    columns = _columns(tables, using=using)
    references = _references(tables, using=using)
    plans = []
    for table in _parents_first(tables, references):
        cols = columns[table]
        plans.append(
            TablePlan(
                table=table,
                columns=tuple(name for name, generated in cols if not generated),
                generated=tuple(name for name, generated in cols if generated),
                references={column: target for source, column, target in references if source == table},
                has_user=any(name == "user_id" for name, _ in cols),
                partitioned=with_shop[table],
            )
        )
    return plans


def directory_plan(table: str, *, using: str = DEFAULT_DB_ALIAS) -> TablePlan:
    """The plan of a directory table (memberships), for export and import."""
    cols = _columns([table], using=using)[table]
    return TablePlan(
        table=table,
        columns=tuple(name for name, generated in cols if not generated),
        generated=tuple(name for name, generated in cols if generated),
        has_user=any(name == "user_id" for name, _ in cols),
    )


# --- Customer personal data -------------------------------------------------------------
# `customers/redact` and `customers/data_request` can only be answered honestly while no
# table holds a customer's personal data. A model declares `holds_customer_data = True` when
# it does; until someone writes the handler for it, those webhooks fail (and Shopify retries)
# instead of answering 200 over data they ignored. Every registered table must have been
# reviewed: a model without the attribute is read from this review of today's schema (no
# table stores a customer of the shop: they hold the shop's own metrics, content and staff),
# and a test fails for a registered table that is in neither.
CUSTOMER_DATA_REVIEW: dict[str, bool] = {
    "seo_audits": False,
    "seo_rankings": False,
    "ad_campaigns": False,
    "ad_performance": False,
    "social_posts": False,
    "social_analytics": False,
    "onboarding_progress": False,
    "feature_tours": False,
    "experiments": False,
    "experiment_results": False,
    "knowledge_base": False,
    "ceo_briefings": False,
}


def customer_data_declarations() -> dict[str, bool | None]:
    """{table: holds customer data?} for every registered table; None: nobody decided."""
    declared = {
        model._meta.db_table: bool(model.holds_customer_data)
        for model in apps.get_models()
        if hasattr(model, "holds_customer_data")
    }
    return {table: declared.get(table, CUSTOMER_DATA_REVIEW.get(table)) for table in sorted(registered_tenant_tables())}


def customer_data_tables() -> list[str]:
    """Registered tables that hold customer personal data, or that nobody has reviewed."""
    return sorted(table for table, holds in customer_data_declarations().items() if holds is not False)
