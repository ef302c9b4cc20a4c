"""Import a shop archive into a shop that holds no data (all or nothing)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from shopify.archive import ArchiveError, shop_import
from tenancy.models import shop_domain_validator


class Command(BaseCommand):
    help = "Import FILE (written by export_shop) into the shop DOMAIN, which must hold no data."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--shop", required=True, help="Domain of the shop to import into.")

    def handle(self, *args: Any, **options: Any) -> None:
        domain = options["shop"].strip().lower()
        try:
            shop_domain_validator(domain)
        except ValidationError as exc:
            raise CommandError(f"--shop {options['shop']!r} is not a shop domain") from exc
        try:
            written = shop_import(source=options["file"], shop_domain=domain)
        except FileNotFoundError as exc:
            raise CommandError(f"no such file: {options['file']}") from exc
        except (ArchiveError, DatabaseError) as exc:
            raise CommandError(f"nothing imported: {exc}") from exc
        for table, rows in written.items():
            self.stdout.write(f"{table}: {rows}")
        self.stdout.write(f"Imported {sum(written.values())} rows into {domain}.")
