"""Import a shop archive into a shop that holds no data (all or nothing)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from shopify.archive import MAX_LINE_BYTES, MAX_TOTAL_BYTES, ArchiveError, ImportLimits, shop_import
from tenancy.management.options import bounded_option
from tenancy.models import shop_domain_validator

# Upper bounds of the caps' options: a trusted archive may need more than the defaults, but a
# line is parsed whole in memory, so not unboundedly more.
LINE_BYTES_CEILING = 1024 * 1024 * 1024
TOTAL_BYTES_CEILING = 1024 * 1024 * 1024 * 1024


class Command(BaseCommand):
    help = (
        "Import FILE (written by export_shop) into the shop DOMAIN, which must hold no data. "
        "The archive's memberships are not imported: grant access in the admin afterwards."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--shop", required=True, help="Domain of the shop to import into.")
        parser.add_argument(
            "--max-line-bytes",
            type=int,
            default=MAX_LINE_BYTES,
            help=f"Refuse the archive if a line (one row) is longer (default {MAX_LINE_BYTES}).",
        )
        parser.add_argument(
            "--max-total-bytes",
            type=int,
            default=MAX_TOTAL_BYTES,
            help=f"Refuse the archive if it expands to more bytes (default {MAX_TOTAL_BYTES}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        domain = options["shop"].strip().lower()
        try:
            shop_domain_validator(domain)
        except ValidationError as exc:
            raise CommandError(f"--shop {options['shop']!r} is not a shop domain") from exc
        limits = ImportLimits(
            max_line_bytes=bounded_option("--max-line-bytes", options["max_line_bytes"], LINE_BYTES_CEILING),
            max_total_bytes=bounded_option("--max-total-bytes", options["max_total_bytes"], TOTAL_BYTES_CEILING),
        )
        try:
            result = shop_import(source=options["file"], shop_domain=domain, limits=limits)
        except (ArchiveError, DatabaseError) as exc:
            raise CommandError(f"nothing imported: {exc}") from exc
        for table, rows in result.written.items():
            self.stdout.write(f"{table}: {rows}")
        self.stdout.write(
            f"shop_memberships: {result.memberships_not_imported} in the archive, none imported "
            "(an import grants no one access: grant it in the admin)"
        )
        self.stdout.write(f"Imported {sum(result.written.values())} rows into {domain}.")
