"""Write the migrations that bring the database's RLS policies to the models' declarations
(`tenancy.rls.tenant_policies`)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import migrations
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.writer import MigrationWriter

from tenancy.rls import SecureTable, tenant_policies
from tenancy.tables import declared_tables


def frozen_policies(loader: MigrationLoader) -> dict[str, list[dict[str, str]]]:
    """The policies each table has once every migration on disk is applied."""
    found: dict[str, list[dict[str, str]]] = {}
    for key in loader.graph.leaf_nodes():
        for node in loader.graph.forwards_plan(key):
            for operation in loader.graph.nodes[node].operations:
                if isinstance(operation, SecureTable):
                    found[operation.table] = operation.policies
    return found


def pending_operations() -> dict[str, list[SecureTable]]:
    """SecureTable operations still needed, grouped by the app that owns each table."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    frozen = frozen_policies(loader)
    owners = {declared.table: declared.app_label for declared in declared_tables()}
    pending: dict[str, list[SecureTable]] = {}
    for table, policies in tenant_policies().items():
        wanted = [p.as_dict() for p in policies]
        current = frozen.get(table)
        if current == wanted:
            continue
        pending.setdefault(owners[table], []).append(SecureTable(table=table, policies=wanted, previous=current))
    return pending


class Command(BaseCommand):
    help = "Create migrations for row level security policies that differ from the models' declarations."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true", help="Exit non-zero if a policy migration is missing.")
        parser.add_argument("--name", default="row_level_security", help="Name of the new migrations.")

    def handle(self, *args: Any, **options: Any) -> None:
        pending = pending_operations()
        if not pending:
            self.stdout.write("No policy changes detected.")
            return
        tables = ", ".join(op.table for ops in pending.values() for op in ops)
        if options["check"]:
            raise CommandError(f"Policies changed without a migration for: {tables}. Run makepolicymigrations.")
        loader = MigrationLoader(None, ignore_no_migrations=True)
        for app_label, operations in sorted(pending.items()):
            leaves = loader.graph.leaf_nodes(app_label)
            number = int(leaves[0][1][:4]) + 1 if leaves else 1
            migration_class = type(
                "Migration",
                (migrations.Migration,),
                {"dependencies": [*leaves, ("tenancy", "0003_auth_uid")], "operations": list(operations)},
            )
            migration = migration_class(f"{number:04d}_{options['name']}", app_label)
            writer = MigrationWriter(migration)
            with open(writer.path, "w", encoding="utf-8") as handle:
                handle.write(writer.as_string())
            self.stdout.write(f"Wrote {writer.path}: {', '.join(op.table for op in operations)}")
