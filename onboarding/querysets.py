"""Chainable read filters for onboarding progress and feature tours."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import models
from django.db.models import Count, F, Func, Q

from tenancy.querysets import ShopQuerySet

from .steps import ONBOARDING_STEPS

if TYPE_CHECKING:
    # Named in string type arguments below, which ruff does not count as uses.
    from .models import FeatureTour, OnboardingProgress  # noqa: F401


# The statuses a progress row records; a participant without a row for a step is not started.
RECORDED_STATUSES = ("in_progress", "completed", "skipped")


@dataclass(frozen=True)
class FunnelStep:
    step_key: str
    not_started: int
    in_progress: int
    completed: int
    skipped: int

    @property
    def total(self) -> int:
        return self.not_started + self.in_progress + self.completed + self.skipped

    @property
    def completed_percent(self) -> float | None:
        return round(100 * self.completed / self.total, 1) if self.total else None


@dataclass(frozen=True)
class Funnel:
    """Counts by status per canonical step, over the participants of the filtered rows."""

    participants: int
    steps: tuple[FunnelStep, ...]
    # Rows whose step is not in the canonical list (renamed or retired steps): not counted.
    other_rows: int


class OnboardingProgressQuerySet(ShopQuerySet["OnboardingProgress"]):
    def for_user(self, user_id: uuid.UUID | str) -> OnboardingProgressQuerySet:
        return self.filter(user_id=user_id)

    def completed(self) -> OnboardingProgressQuerySet:
        return self.filter(status="completed")

    def funnel(self, steps: Sequence[str] = ONBOARDING_STEPS) -> Funnel:
        """Per step, in `steps` order, how many participants have it in each status.

        A participant is a (user, shop) pair with at least one row for a listed step; one who
        has no row for a step counts as not started there, as in the API's onboarding summary.
        So every step totals the same number of participants and the steps read as a funnel.
        One aggregate query: a conditional COUNT per step and recorded status.
        """
        listed = Q(step_key__in=steps)
        counts = {
            f"s{i}_{status}": Count("pk", filter=Q(step_key=key, status=status))
            for i, key in enumerate(steps)
            for status in RECORDED_STATUSES
        }
        row = self.order_by().aggregate(
            participants=Count(Func(F("user_id"), F("shop_id"), function="ROW"), distinct=True, filter=listed),
            other_rows=Count("pk", filter=~listed),
            **counts,
        )
        participants = int(row["participants"])
        funnel_steps = []
        for i, key in enumerate(steps):
            recorded = {status: int(row[f"s{i}_{status}"]) for status in RECORDED_STATUSES}
            funnel_steps.append(FunnelStep(step_key=key, not_started=participants - sum(recorded.values()), **recorded))
        return Funnel(participants=participants, steps=tuple(funnel_steps), other_rows=int(row["other_rows"]))


class FeatureTourQuerySet(models.QuerySet["FeatureTour"]):
    def for_user(self, user_id: uuid.UUID | str) -> FeatureTourQuerySet:
        return self.filter(user_id=user_id)

    def open(self) -> FeatureTourQuerySet:
        return self.filter(status__in=["pending", "active"])
