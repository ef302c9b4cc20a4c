"""Chainable read filters for onboarding progress and feature tours."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.db import models

from tenancy.querysets import ShopQuerySet

if TYPE_CHECKING:
    # Named in string type arguments below, which ruff does not count as uses.
    from .models import FeatureTour, OnboardingProgress  # noqa: F401


class OnboardingProgressQuerySet(ShopQuerySet["OnboardingProgress"]):
    def for_user(self, user_id: uuid.UUID | str) -> OnboardingProgressQuerySet:
        return self.filter(user_id=user_id)

    def completed(self) -> OnboardingProgressQuerySet:
        return self.filter(status="completed")


class FeatureTourQuerySet(models.QuerySet["FeatureTour"]):
    def for_user(self, user_id: uuid.UUID | str) -> FeatureTourQuerySet:
        return self.filter(user_id=user_id)

    def open(self) -> FeatureTourQuerySet:
        return self.filter(status__in=["pending", "active"])
