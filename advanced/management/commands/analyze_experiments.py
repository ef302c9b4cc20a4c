"""Analyse A/B experiments across shops: statistics onto the latest snapshots, winners declared."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from advanced.experiments.models import Experiment
from advanced.experiments.review import summary_line
from advanced.experiments.services import experiment_analyze, experiments_to_analyze
from tenancy.errors import Refused
from tenancy.management.options import day_option, shop_option
from tenancy.scope import atomic_scope, service_scope


class Command(BaseCommand):
    help = (
        "Analyse A/B experiments (default: every running or paused experiment of every shop) under "
        "each experiment's engine (sequential, fixed_horizon at its plan, or bayesian), with its "
        "correction, guardrails, CUPED and the sample ratio check; stores the engine's figures on each "
        "variant's latest snapshot and declares a winner when the decision is valid at this look. "
        "Runs as service_role."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--shop", help="Only this shop's experiments (its domain).")
        parser.add_argument("--experiment-key", help="Only the experiment(s) with this key, whatever their status.")
        parser.add_argument("--as-of", help="Use each variant's latest snapshot on or before this day, YYYY-MM-DD.")

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = day_option("--as-of", options["as_of"]) if options["as_of"] else None
        shop = shop_option(options["shop"])
        key = options["experiment_key"]
        with atomic_scope(service_scope()):
            targets = experiments_to_analyze(shop_id=shop, experiment_key=key)
        if key and not targets:
            where = f" in shop {shop!r}" if shop else ""
            raise CommandError(f"No experiment with key {key!r}{where}.")

        started = time.monotonic()
        counts = {"winner": 0, "no winner": 0, "failed": 0}
        for position, (pk, shop_id, experiment_key) in enumerate(targets, start=1):
            prefix = f"[{position}/{len(targets)}] {shop_id} {experiment_key}"
            try:
                # One transaction per experiment: a failure rolls back that experiment only.
                with atomic_scope(service_scope()):
                    result = experiment_analyze(experiment=Experiment.objects.get(pk=pk), as_of=as_of)
            except Refused as exc:
                counts["failed"] += 1
                reasons = "; ".join(f"{field}: {message}" for field, message in exc.problems)
                self.stderr.write(f"{prefix}: failed: {reasons}")
                continue
            counts["winner" if result.winner is not None else "no winner"] += 1
            self.stdout.write(f"{prefix}: {summary_line(result)}")

        elapsed = time.monotonic() - started
        if not targets:
            self.stdout.write("No running or paused experiments to analyse.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Analysed {len(targets) - counts['failed']} of {len(targets)} experiments in {elapsed:.1f} s: "
                f"{counts['winner']} with a winner, {counts['no winner']} without, {counts['failed']} failed."
            )
        )
        if counts["failed"]:
            raise CommandError(f"{counts['failed']} of {len(targets)} experiments could not be analysed")
