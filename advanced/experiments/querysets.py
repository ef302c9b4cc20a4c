"""Chainable read filters for experiments and their results."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenancy.querysets import ShopQuerySet

if TYPE_CHECKING:
    # Named in string type arguments below, which ruff does not count as uses.
    from .models import Experiment, ExperimentResult  # noqa: F401


class ExperimentQuerySet(ShopQuerySet["Experiment"]):
    def running(self) -> ExperimentQuerySet:
        return self.filter(status="running")


class ExperimentResultQuerySet(ShopQuerySet["ExperimentResult"]):
    def latest_per_variant(self) -> ExperimentResultQuerySet:
        """The newest snapshot of each (experiment, variant)."""
        return self.order_by("experiment_id", "variant_key", "-snapshot_date").distinct("experiment_id", "variant_key")
