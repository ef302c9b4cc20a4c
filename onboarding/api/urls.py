"""Routes of this app's resources under /api/v1/."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from .views import FeatureTourViewSet, OnboardingProgressViewSet

router = SimpleRouter()
router.register("onboarding-progress", OnboardingProgressViewSet, basename="onboarding-progress")
router.register("feature-tours", FeatureTourViewSet, basename="feature-tour")

urlpatterns = router.urls
