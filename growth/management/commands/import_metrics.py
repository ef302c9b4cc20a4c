"""Load a CSV or NDJSON file of metrics into one of the growth tables, for one shop."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from config.postgresql.errors import database_unavailable
from growth.ingest import DEFAULT_BATCH_SIZE, FORMATS, TARGETS, MetricsFileError, metrics_import, required_columns

# Progress lines at most this often (seconds), so a fast import does not flood stderr.
PROGRESS_EVERY = 2.0
# The exit status of an import the database's loss stopped: sysexits' EX_TEMPFAIL, "try again
# later", which schedulers and scripts can tell from a bad file (1).
EXIT_DATABASE_UNAVAILABLE = 75


class Command(BaseCommand):
    help = (
        "Upsert the rows of a CSV (header row) or NDJSON (one JSON object a line) file into "
        f"{', '.join(TARGETS)} for one shop, on the table's natural key: re-running a file updates "
        "its rows. All or nothing: an invalid row names its line and column and nothing is written. "
        "Columns: "
        + "; ".join(
            f"{table}: {', '.join(target.inputs)} (required: {', '.join(required_columns(target))})"
            for table, target in TARGETS.items()
        )
        + ". An optional shop_domain column must equal --shop."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("table", choices=list(TARGETS), help="The table to load.")
        parser.add_argument("file", help="Path of the file, or - for standard input.")
        parser.add_argument("--shop", required=True, help="Domain of the shop the rows belong to.")
        parser.add_argument(
            "--format",
            choices=FORMATS,
            default=None,
            help="File format (default: from the extension, .csv or .ndjson/.jsonl; required for -).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Rows staged and upserted per statement (default {DEFAULT_BATCH_SIZE:,}).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Validate and upsert every row, then roll back: nothing is kept."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = str(options["file"])
        name = "<stdin>" if path == "-" else path
        file_format = options["format"] or _format_of(path)
        table = str(options["table"])
        started = last = time.monotonic()

        def progress(rows: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY:
                last = now
                rate = rows / (now - started)
                self.stderr.write(f"{table}: {rows:,} rows loaded, {rate:,.0f} rows/s")

        stream = _open(path)
        try:
            result = metrics_import(
                table=table,
                stream=stream,
                file_format=file_format,
                shop=str(options["shop"]),
                batch_size=int(options["batch_size"]),
                dry_run=bool(options["dry_run"]),
                on_batch=progress,
            )
        except MetricsFileError as exc:
            raise CommandError(f"{name}: {exc}; nothing was written") from exc
        except (LookupError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        except DatabaseError as exc:
            reason = database_unavailable(exc)
            if reason is None:
                raise
            # The import is one transaction, which the server rolls back when its connection goes
            # (lost during the COMMIT itself, the outcome is unknown: running the same file again
            # is right either way, since it upserts).
            raise CommandError(
                f"{name}: the database connection was lost or refused ({reason}); nothing was imported. "
                "Run the same command again once the database is back.",
                returncode=EXIT_DATABASE_UNAVAILABLE,
            ) from exc
        finally:
            if path != "-":
                stream.close()
        seconds = time.monotonic() - started
        verb = "would be" if result.dry_run else "were"
        self.stdout.write(
            f"{table}: {result.rows:,} rows from {name} in {seconds:.1f} s ({result.rows / max(seconds, 1e-9):,.0f} "
            f"rows/s): {result.created:,} {verb} created, {result.updated:,} {verb} updated"
            + (" (dry run, nothing written)" if result.dry_run else "")
        )


def _format_of(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in {".ndjson", ".jsonl"}:
        return "ndjson"
    raise CommandError(f"cannot tell the format of {path!r} from its extension; pass --format csv or ndjson")


def _open(path: str) -> IO[str]:
    # newline="" lets the csv module see quoted line breaks; utf-8-sig drops a spreadsheet's BOM.
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from exc
