"""Create the roles, database and extension the project needs, or say that they exist."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from config.dbbootstrap import APP_OWNER, SCOPE_ROLES, BootstrapError, bootstrap


class Command(BaseCommand):
    help = (
        "Idempotently create the cluster roles (app_owner, authenticated, anon, back_office, "
        "service_role), the application database and the vector extension. Needs a superuser "
        "DSN (--admin-url or DATABASE_ADMIN_URL); without one it only verifies the server. On a "
        "Citus coordinator it also prepares the database on every node (docs/scaling.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--admin-url", default="", help="Superuser DSN (default: DATABASE_ADMIN_URL).")
        parser.add_argument(
            "--app-password",
            default=None,
            help="Password for a newly created app_owner (default: the one in DATABASE_URL).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        admin_url = options["admin_url"] or settings.DATABASE_ADMIN_URL
        db = settings.DATABASES["default"]
        if admin_url:
            password = options["app_password"] or str(db.get("PASSWORD") or "") or None
            try:
                report = bootstrap(superuser_dsn=admin_url, database=str(db["NAME"]), app_password=password)
            except BootstrapError as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(self.style.SUCCESS(report.summary()) if report.changed else report.summary())
            return
        self.stdout.write("No superuser DSN (DATABASE_ADMIN_URL); verifying the server as the application role.")
        problems = self._verify()
        if problems:
            raise CommandError("The database is not ready: " + "; ".join(problems))
        self.stdout.write("Bootstrap: nothing to change (roles, grants and the vector extension are in place).")

    def _verify(self) -> list[str]:
        problems: list[str] = []
        with connection.cursor() as cur:
            cur.execute("SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            row = cur.fetchone()
            assert row is not None
            user, is_super, bypass = row
            if user != APP_OWNER:
                problems.append(f"connected as {user}, expected {APP_OWNER}")
            if is_super or bypass:
                problems.append(f"{user} is SUPERUSER or BYPASSRLS, so row level security would not apply")
            for role in SCOPE_ROLES:
                cur.execute("SELECT pg_has_role(current_user, %s, 'SET')", [role])
                allowed = cur.fetchone()
                if not allowed or not allowed[0]:
                    problems.append(f"{user} cannot SET ROLE {role}")
            cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
            if cur.fetchone() is None:
                problems.append("the vector extension is not installed on the server")
        return problems
