"""Routes of the growth resources under /api/v1/."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from .views import AdCampaignViewSet, AdPerformanceViewSet

router = SimpleRouter()
router.register("ad-campaigns", AdCampaignViewSet, basename="ad-campaign")
router.register("ad-performance", AdPerformanceViewSet, basename="ad-performance")

urlpatterns = router.urls
