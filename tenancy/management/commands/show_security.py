"""Print the whole security model: every table's policy kind, row level security flags, grants,
policies, retention and partitioning, as declared by the models and as installed."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenancy.security_model import TableSecurity, security_model


class Command(BaseCommand):
    help = (
        "Show every table's security in one place: policy kind, RLS enabled/forced, grants, "
        "policies (installed, checked against the models' declarations), retention, partitioning."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="One JSON document instead of the text report.")
        parser.add_argument("--table", action="append", default=[], help="Only this table (repeatable).")
        parser.add_argument(
            "--check", action="store_true", help="Exit non-zero when a table's policies differ from its declaration."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        rows = security_model()
        wanted = set(options["table"])
        unknown = wanted - {row.table for row in rows}
        if unknown:
            raise CommandError(f"No such table in the security model: {', '.join(sorted(unknown))}")
        if wanted:
            rows = [row for row in rows if row.table in wanted]
        if options["json"]:
            self.stdout.write(json.dumps([row.as_dict() for row in rows], indent=2))
        else:
            for row in rows:
                self._write(row)
        drifted = [row.table for row in rows if row.kind != "directory" and not row.in_step]
        if options["check"] and drifted:
            raise CommandError(f"Installed policies differ from the declarations for: {', '.join(drifted)}")

    def _write(self, row: TableSecurity) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"{row.table}  ({row.model})"))
        flags = ", ".join(
            [
                "enabled" if row.rls_enabled else "DISABLED",
                "forced" if row.rls_forced else "NOT FORCED",
            ]
        )
        grants = "; ".join(f"{role}: {', '.join(privileges)}" for role, privileges in sorted(row.grants.items()))
        self.stdout.write(f"  policy kind   {row.kind}")
        self.stdout.write(f"  rls           {flags if row.kind != 'directory' else 'off (directory table)'}")
        self.stdout.write(f"  grants        {grants or '-'}")
        self.stdout.write(f"  retention     {row.retention}")
        self.stdout.write(f"  partitioning  {row.partitioning}")
        if row.kind == "directory":
            state = "no policies" if not row.installed else "installed"
        elif row.in_step:
            state = "installed as declared"
        else:
            state = self.style.ERROR("DIFFER from the declaration: run makepolicymigrations and migrate")
        self.stdout.write(f"  policies      {state}")
        for policy in row.installed:
            self.stdout.write(f"    {policy.name}  to {policy.role}")
            self.stdout.write(f"      using  {policy.using}")
            if policy.check != policy.using:
                self.stdout.write(f"      check  {policy.check}")
        self.stdout.write("")
