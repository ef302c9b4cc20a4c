"""Reads of the experiment tables behind CEO briefings, for one shop and one span of UTC days
(tenancy/spans.py). The shop is filtered on explicitly: briefings run as `service_role`, whose
policies show every shop."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tenancy.spans import Span

from .models import Experiment, ExperimentStatus


@dataclass(frozen=True)
class ConcludedExperiment:
    experiment_id: int
    experiment_key: str
    experiment_name: str
    ended_at: datetime.datetime
    winning_variant: str | None
    winning_variant_name: str | None
    confidence_level: Decimal | None


def _variant_name(variants: Any, key: str | None) -> str | None:
    if key is None or not isinstance(variants, list):
        return None
    for variant in variants:
        if isinstance(variant, dict) and variant.get("key") == key and isinstance(variant.get("name"), str):
            return str(variant["name"])
    return None


def concluded_experiments(*, shop_id: str, span: Span) -> list[ConcludedExperiment]:
    """Experiments completed with an end in the span, in the order they ended."""
    rows = (
        Experiment.objects.for_shop(shop_id)
        .filter(
            status=ExperimentStatus.COMPLETED,
            ended_at__gte=span.starts_at,
            ended_at__lt=span.ends_before,
        )
        .order_by("ended_at", "id")
        .values(
            "id",
            "experiment_key",
            "experiment_name",
            "ended_at",
            "winning_variant",
            "variants",
            "confidence_level",
        )
    )
    concluded: list[ConcludedExperiment] = []
    for row in rows:
        # An empty string is "no winner" too; the API would never store one, ingestion might.
        winner = row["winning_variant"] or None
        ended_at = row["ended_at"]
        assert ended_at is not None  # filtered on above
        concluded.append(
            ConcludedExperiment(
                experiment_id=row["id"],
                experiment_key=row["experiment_key"],
                experiment_name=row["experiment_name"],
                ended_at=ended_at,
                winning_variant=winner,
                winning_variant_name=_variant_name(row["variants"], winner),
                confidence_level=row["confidence_level"],
            )
        )
    return concluded
