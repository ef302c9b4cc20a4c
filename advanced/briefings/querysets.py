"""Chainable read filters for CEO briefings, and their rating statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Avg, Count, Q

from tenancy.querysets import ShopQuerySet

if TYPE_CHECKING:
    # Named in string type arguments below, which ruff does not count as uses.
    from .models import CeoBriefing  # noqa: F401


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
