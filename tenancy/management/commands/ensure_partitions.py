"""Create the monthly partitions ahead of time and empty the DEFAULT partitions (run daily)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenancy.management.options import day_option, today_utc
from tenancy.partitions import DEFAULT_MONTHS_AHEAD, partitions_ensure


class Command(BaseCommand):
    help = (
        "Create the monthly partitions of ad_performance, seo_rankings and social_analytics from the "
        "start of each table's retention window to --months-ahead months after today, and move rows of "
        "those months out of the DEFAULT partitions. Idempotent; `migrate` runs it too. Schedule it "
        "daily, before the month turns."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--months-ahead",
            type=int,
            default=DEFAULT_MONTHS_AHEAD,
            help=f"Months after the current one to create (0 to 120, default {DEFAULT_MONTHS_AHEAD}).",
        )
        parser.add_argument(
            "--since",
            default=None,
            help="First day to cover, YYYY-MM-DD (default: the start of each table's retention window), "
            "e.g. to backfill history older than the retention window.",
        )
        parser.add_argument("--today", default=None, help="The current day, YYYY-MM-DD (default: today in UTC).")
        parser.add_argument("--dry-run", action="store_true", help="Report what would be created; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        months_ahead = int(options["months_ahead"])
        if not 0 <= months_ahead <= 120:
            raise CommandError(f"--months-ahead must be between 0 and 120, not {months_ahead}")
        today = day_option("--today", options["today"]) if options["today"] else today_utc()
        since = day_option("--since", options["since"]) if options["since"] else None
        if since is not None and since > today:
            raise CommandError(f"--since ({since}) must not be after today ({today})")
        dry_run = bool(options["dry_run"])
        verbose = options["verbosity"] >= 2
        reports = partitions_ensure(
            today=today,
            months_ahead=months_ahead,
            since=since,
            dry_run=dry_run,
            progress=(lambda message: self.stderr.write(message)) if verbose else None,
        )
        if not reports:
            raise CommandError("No partitioned table found: run `manage.py migrate` first.")
        verb = "would create" if dry_run else "created"
        for report in reports:
            line = (
                f"{report.table}: {report.first_month:%Y-%m} to {report.last_month:%Y-%m}, "
                f"{verb} {len(report.created)} partitions, moved {report.moved_rows} rows out of the default partition"
            )
            self.stdout.write(line)
            if report.left_in_default:
                months = ", ".join(f"{month:%Y-%m}" for month in report.left_in_default)
                self.stdout.write(
                    self.style.WARNING(
                        f"{report.table}: rows of {months} stay in the default partition (outside the range; "
                        "older ones are removed by purge_expired, use --since to keep them in partitions)"
                    )
                )
        title = "Dry run, nothing changed" if dry_run else "Partitions ready"
        self.stdout.write(self.style.SUCCESS(f"{title}."))
