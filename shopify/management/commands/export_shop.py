"""Write a shop's archive (NDJSON per table + manifest) to a file, or '-' for stdout."""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from shopify.archive import ArchiveError, shop_export_write


class Command(BaseCommand):
    help = "Export DOMAIN's data to FILE (a zip of NDJSON files and a manifest), read under the shop's policies."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("domain")
        parser.add_argument("file", help="Path of the archive to write, or '-' for standard output.")

    def handle(self, *args: Any, **options: Any) -> None:
        domain, path = options["domain"].strip().lower(), options["file"]
        try:
            if path == "-":
                size = shop_export_write(shop_domain=domain, target=sys.stdout.buffer)
                return
            partial = f"{path}.partial"
            with open(partial, "wb") as target:
                size = shop_export_write(shop_domain=domain, target=target)
            os.replace(partial, path)
        except ArchiveError as exc:
            if path != "-" and os.path.exists(f"{path}.partial"):
                os.remove(f"{path}.partial")
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"Exported {domain} to {path} ({size} bytes).")
