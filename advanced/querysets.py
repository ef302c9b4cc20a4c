"""Chainable read filters for experiments, knowledge documents and briefings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenancy.querysets import ShopQuerySet

if TYPE_CHECKING:
    # Named in string type arguments below, which ruff does not count as uses.
    from .models import CeoBriefing, Experiment, ExperimentResult, KnowledgeDocument  # noqa: F401


class ExperimentQuerySet(ShopQuerySet["Experiment"]):
    def running(self) -> ExperimentQuerySet:
        return self.filter(status="running")


class ExperimentResultQuerySet(ShopQuerySet["ExperimentResult"]):
    def latest_per_variant(self) -> ExperimentResultQuerySet:
        """The newest snapshot of each (experiment, variant)."""
        return self.order_by("experiment_id", "variant_key", "-snapshot_date").distinct("experiment_id", "variant_key")


class KnowledgeDocumentQuerySet(ShopQuerySet["KnowledgeDocument"]):
    def current(self) -> KnowledgeDocumentQuerySet:
        return self.filter(is_current=True)

    def with_tags(self, tags: list[str]) -> KnowledgeDocumentQuerySet:
        """Documents carrying every tag given (GIN `@>`)."""
        return self.filter(tags__contains=tags)


class CeoBriefingQuerySet(ShopQuerySet["CeoBriefing"]):
    def unreviewed(self) -> CeoBriefingQuerySet:
        return self.filter(reviewed_at__isnull=True)
