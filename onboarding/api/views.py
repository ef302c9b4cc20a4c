"""Onboarding resources: each user's progress through a shop's setup steps, and feature tours."""

from __future__ import annotations

from tenancy.api.viewsets import TenantViewSet

from ..filters import FeatureTourFilterSet, OnboardingProgressFilterSet
from ..models import FeatureTour, OnboardingProgress
from .serializers import FeatureTourSerializer, OnboardingProgressSerializer


class OnboardingProgressViewSet(TenantViewSet):
    """The caller's own progress through the shop's onboarding steps (other users' is not visible)."""

    queryset = OnboardingProgress.objects.all()
    serializer_class = OnboardingProgressSerializer
    filterset_class = OnboardingProgressFilterSet
    owner_fields = ("shop", "user")
    ordering_fields = ["step_order", "step_key", "status", "created_at"]
    ordering = ["step_order", "step_key"]


class FeatureTourViewSet(TenantViewSet):
    """The caller's own feature tours; they follow the user across shops, so X-Shop-Domain is optional."""

    queryset = FeatureTour.objects.all()
    serializer_class = FeatureTourSerializer
    filterset_class = FeatureTourFilterSet
    owner_fields = ("user",)
    shop_required = False
    ordering_fields = ["tour_key", "status", "last_shown_at", "created_at"]
    ordering = ["tour_key"]
