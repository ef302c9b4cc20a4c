"""FilterSets for the onboarding resources: the columns the schema indexes."""

from __future__ import annotations

from tenancy.api.filters import TenantFilterSet

from .models import FeatureTour, OnboardingProgress


class OnboardingProgressFilterSet(TenantFilterSet):
    class Meta:
        model = OnboardingProgress
        fields = {
            "status": ["exact", "in"],
            "step_key": ["exact"],
        }


class FeatureTourFilterSet(TenantFilterSet):
    class Meta:
        model = FeatureTour
        fields = {
            "status": ["exact", "in"],
            "tour_key": ["exact"],
        }
