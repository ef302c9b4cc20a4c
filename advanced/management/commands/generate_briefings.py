"""Generate (or regenerate) every shop's CEO briefing for one period."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from advanced.briefings.llm import SummaryWriter, TemplateWriter, summary_writer_from_settings
from advanced.briefings.models import BriefingType
from advanced.briefings.services import (
    BriefingError,
    BriefingFigures,
    BriefingPeriod,
    BriefingSummary,
    briefing_exists,
    briefing_figures,
    briefing_period,
    briefing_save,
    briefing_shop_domains,
    briefing_summary_write,
)
from tenancy.management.options import day_option
from tenancy.scope import atomic_scope, service_scope


class Command(BaseCommand):
    help = (
        "Write each shop's CEO briefing for the period ending on --period-end: daily (that day), "
        "weekly (the 7 days ending then), monthly or quarterly (the calendar month or quarter, "
        "--period-end its last day). Re-running updates the same briefing and keeps its rating "
        "and review. LLM_PROVIDER=openai has a model write the summary (template on failure)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--type", dest="briefing_type", required=True, choices=BriefingType.values)
        parser.add_argument("--period-end", required=True, help="Last day of the period, YYYY-MM-DD (UTC).")
        parser.add_argument("--shop", help="Only this shop (its domain); default every active shop.")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Print what would be written and write nothing (the summary is the template's).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run = bool(options["dry_run"])
        try:
            period = briefing_period(
                briefing_type=options["briefing_type"], period_end=day_option("--period-end", options["period_end"])
            )
            writer: SummaryWriter = TemplateWriter() if dry_run else summary_writer_from_settings()
            with atomic_scope(service_scope()):
                shops = briefing_shop_domains(only=options["shop"])
        except (BriefingError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from exc

        label = f"{period.briefing_type} {period.current.start}..{period.current.end}"
        counts = {"created": 0, "updated": 0, "failed": 0, "fallback": 0}
        for shop in shops:
            try:
                outcome, fell_back = self._one_shop(shop, period, writer, dry_run=dry_run)
            except Exception as exc:
                # One shop's failure (its transaction rolled back) must not stop the others.
                counts["failed"] += 1
                self.stderr.write(f"{shop}: failed: {type(exc).__name__}: {exc}")
                continue
            counts[outcome] += 1
            counts["fallback"] += fell_back

        if not shops:
            self.stdout.write("No active shops.")
        fallback = f", {counts['fallback']} with the template after a provider error" if counts["fallback"] else ""
        if dry_run:
            self.stdout.write(
                f"Dry run, {label}: {counts['created']} would be created, {counts['updated']} updated, "
                f"{counts['failed']} failed; nothing was written."
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Briefings {label}: {counts['created']} created, {counts['updated']} updated, "
                    f"{counts['failed']} failed{fallback}."
                )
            )
        if counts["failed"]:
            raise CommandError(f"{counts['failed']} of {len(shops)} shops failed")

    def _one_shop(self, shop: str, period: BriefingPeriod, writer: SummaryWriter, *, dry_run: bool) -> tuple[str, bool]:
        """Generate one shop's briefing: created or updated, and whether the template stood in."""
        with atomic_scope(service_scope()):
            figures = briefing_figures(shop_id=shop, period=period)
            exists = briefing_exists(shop_id=shop, period=period)
        # Outside any transaction: a provider's call may take seconds.
        summary = briefing_summary_write(figures=figures, writer=writer)
        if dry_run:
            self._print_draft(shop, figures, summary, exists=exists)
            return ("updated" if exists else "created"), False
        with atomic_scope(service_scope()):
            saved = briefing_save(figures=figures, summary=summary)
        outcome = "created" if saved.created else "updated"
        line = f"{shop}: {outcome} ({summary.model}, {len(figures.insights_json)} insights)"
        if summary.fallback_reason is not None:
            self.stdout.write(
                self.style.WARNING(f"{line}; {summary.writer} failed ({summary.fallback_reason}), used the template")
            )
            return outcome, True
        self.stdout.write(line)
        return outcome, False

    def _print_draft(self, shop: str, figures: BriefingFigures, summary: BriefingSummary, *, exists: bool) -> None:
        action = "would update" if exists else "would create"
        self.stdout.write(f"{shop}: {action} ({summary.model}, {len(figures.insights_json)} insights)")
        self.stdout.write(f"  executive_summary: {summary.text}")
        for insight in figures.insights_json:
            self.stdout.write(f"  insight {insight['rank']}: [{insight['kind']}] {insight['title']}")
        self.stdout.write("  key_metrics: " + json.dumps(figures.key_metrics, indent=2).replace("\n", "\n  "))
