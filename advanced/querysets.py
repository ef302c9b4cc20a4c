"""Chainable read filters for experiments, knowledge documents and briefings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Avg, Count, ExpressionWrapper, FloatField, Q
from pgvector.django import CosineDistance

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

    def with_any_tags(self, tags: list[str]) -> KnowledgeDocumentQuerySet:
        """Documents carrying at least one of the tags given (GIN `&&`)."""
        return self.filter(tags__overlap=tags)

    def versions_of(self, document_key: str) -> KnowledgeDocumentQuerySet:
        """Every version of one document, newest first."""
        return self.filter(document_key=document_key).order_by("-version")

    def searchable(
        self,
        *,
        tags: Sequence[str] = (),
        tags_mode: str = "all",
        document_type: str | None = None,
        embedding_model: str | None = None,
    ) -> KnowledgeDocumentQuerySet:
        """Current versions with an embedding that pass a search's filters (no tags: no filter)."""
        queryset = self.current().filter(embedding__isnull=False)
        if tags:
            queryset = queryset.with_any_tags(list(tags)) if tags_mode == "any" else queryset.with_tags(list(tags))
        if document_type:
            queryset = queryset.filter(document_type=document_type)
        if embedding_model is not None:
            queryset = queryset.filter(embedding_model=embedding_model)
        return queryset

    def nearest(self, vector: Sequence[float], *, exact: bool) -> KnowledgeDocumentQuerySet:
        """Annotated with cosine `distance` to `vector`, nearest first.

        `exact=False` orders by the bare `embedding <=> vector`, the one shape the IVFFlat
        index can serve. `exact=True` annotates and orders by `(embedding <=> vector) + 0`: an
        expression no index matches, so the planner must compute every candidate's distance
        and sort them (an exact search), whatever its cost estimates say. The ORDER BY names
        the selected expression, so each distance is computed once; `id` breaks ties.
        """
        distance = CosineDistance("embedding", list(vector))
        if exact:
            annotated = self.annotate(distance=ExpressionWrapper(distance + 0.0, output_field=FloatField()))
            return annotated.order_by("distance", "id")
        return self.annotate(distance=distance).order_by("distance")


@dataclass(frozen=True)
class RatingStatistics:
    """How staff rated the briefings of one generation model."""

    generation_model: str
    briefings: int
    reviewed: int
    rated: int
    average_rating: float | None
    # Briefings rated 1, 2, 3, 4 and 5.
    distribution: tuple[int, int, int, int, int]


class CeoBriefingQuerySet(ShopQuerySet["CeoBriefing"]):
    def unreviewed(self) -> CeoBriefingQuerySet:
        return self.filter(reviewed_at__isnull=True)

    def reviewed(self) -> CeoBriefingQuerySet:
        return self.filter(reviewed_at__isnull=False)

    def rating_statistics(self) -> list[RatingStatistics]:
        """Per generation model (most briefings first): counts, average rating and the
        distribution of ratings 1-5, in one grouped query over this queryset's rows."""
        ratings = {f"rated_{value}": Count("id", filter=Q(rating=value)) for value in range(1, 6)}
        rows = (
            self.order_by()
            .values("generation_model")
            .annotate(
                briefings=Count("id"),
                reviewed_count=Count("id", filter=Q(reviewed_at__isnull=False)),
                rated=Count("rating"),
                average=Avg("rating"),
                **ratings,
            )
            .order_by("-briefings", "generation_model")
        )
        return [
            RatingStatistics(
                generation_model=row["generation_model"],
                briefings=row["briefings"],
                reviewed=row["reviewed_count"],
                rated=row["rated"],
                average_rating=None if row["average"] is None else float(row["average"]),
                distribution=(row["rated_1"], row["rated_2"], row["rated_3"], row["rated_4"], row["rated_5"]),
            )
            for row in rows
        ]
