"""Delete rows past the schema's retention period, in every shop (see tenancy/retention.py)."""

from __future__ import annotations

import datetime
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from tenancy.management.options import day_option, today_utc
from tenancy.ratelimit import expired_rate_counts_purge
from tenancy.retention import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, expired_rows_purge, retention_rules


class Command(BaseCommand):
    help = (
        "Delete measurements older than their retention period, across all shops: seo_rankings and "
        "social_analytics 365 days, ad_performance 730 days, ceo_briefings 365 days; experiment_results "
        "and knowledge_base are kept forever. Drops the monthly partitions whose every row is expired and "
        "deletes the rest in batches, one short transaction each."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count the expired rows; delete nothing.")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Rows deleted per transaction (1 to {MAX_BATCH_SIZE}, default {DEFAULT_BATCH_SIZE}).",
        )
        parser.add_argument(
            "--today",
            default=None,
            help="The day retention counts back from, YYYY-MM-DD (default: today in UTC).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        batch_size = int(options["batch_size"])
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE}, not {batch_size}")
        today = day_option("--today", options["today"]) if options["today"] else today_utc()
        dry_run = bool(options["dry_run"])
        started = time.monotonic()
        # Bars go to stderr: tqdm redraws its line with carriage returns, which Django's
        # OutputWrapper would break by appending a newline to every write.
        bars: dict[str, tqdm[Any]] = {}

        def advance(table: str, done: int, total: int) -> None:
            bar = bars.get(table)
            if bar is None:
                # Tables are purged one after the other: the previous table's bar is finished.
                for finished in bars.values():
                    finished.close()
                bar = bars[table] = tqdm(
                    total=total,
                    desc=table,
                    unit="row",
                    file=sys.stderr,
                    disable=dry_run or options["verbosity"] == 0,
                )
            bar.update(done - bar.n)

        dropped: list[tuple[str, int]] = []
        try:
            removed = expired_rows_purge(
                today=today,
                dry_run=dry_run,
                batch_size=batch_size,
                progress=advance,
                dropped=lambda name, rows: dropped.append((name, rows)),
            )
        finally:
            for bar in bars.values():
                bar.close()
        elapsed = time.monotonic() - started

        verb = "would remove" if dry_run else "removed"
        title = "Dry run, nothing deleted" if dry_run else "Expired rows deleted"
        self.stdout.write(self.style.SUCCESS(f"{title}: retention counted back from {today} ({elapsed:.1f} s)."))
        rules = retention_rules()
        width = max(len(rule.table) for rule in rules)
        self.stdout.write(f"{'table'.ljust(width)}  {'keeps':>9}  {'first kept':>10}  {verb:>12}")
        for rule in rules:
            if rule.days is None:
                self.stdout.write(f"{rule.table.ljust(width)}  {'forever':>9}  {'-':>10}  {'-':>12}")
                continue
            first_kept = today - datetime.timedelta(days=rule.days)
            self.stdout.write(
                f"{rule.table.ljust(width)}  {f'{rule.days} days':>9}  {first_kept.isoformat():>10}  "
                f"{removed[rule.table]:>12}"
            )
        for name, rows in dropped:
            self.stdout.write(f"{'Would drop' if dry_run else 'Dropped'} partition {name} ({rows} rows).")
        self.stdout.write(f"Total {verb}: {sum(removed.values())} rows.")
        if not dry_run:
            # Not shop data: the API's rate-limit counters of windows that have passed.
            counters = expired_rate_counts_purge()
            self.stdout.write(f"Rate-limit counters of past windows removed: {counters}.")
