"""Routes of the growth resources under /api/v1/."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from .views import (
    AdCampaignViewSet,
    AdPerformanceViewSet,
    SeoAuditViewSet,
    SeoRankingViewSet,
    SocialAnalyticsViewSet,
    SocialPostViewSet,
)

router = SimpleRouter()
router.register("ad-campaigns", AdCampaignViewSet, basename="ad-campaign")
router.register("ad-performance", AdPerformanceViewSet, basename="ad-performance")
router.register("seo-audits", SeoAuditViewSet, basename="seo-audit")
router.register("seo-rankings", SeoRankingViewSet, basename="seo-ranking")
router.register("social-posts", SocialPostViewSet, basename="social-post")
router.register("social-analytics", SocialAnalyticsViewSet, basename="social-analytics")

urlpatterns = router.urls
