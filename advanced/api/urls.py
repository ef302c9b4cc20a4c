"""Routes of this app's resources under /api/v1/, each feature's viewsets from its package."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

from ..briefings.api.views import CeoBriefingViewSet
from ..experiments.api.views import ExperimentResultViewSet, ExperimentViewSet
from ..knowledge.api.views import KnowledgeDocumentViewSet

router = SimpleRouter()
router.register("experiments", ExperimentViewSet, basename="experiment")
router.register("experiment-results", ExperimentResultViewSet, basename="experiment-result")
router.register("knowledge-documents", KnowledgeDocumentViewSet, basename="knowledge-document")
router.register("ceo-briefings", CeoBriefingViewSet, basename="ceo-briefing")

urlpatterns = router.urls
