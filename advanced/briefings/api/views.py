"""CEO briefings."""

from __future__ import annotations

from tenancy.api.permissions import IsShopWriterOrReadOnly
from tenancy.api.viewsets import TenantViewSet

from ..filters import CeoBriefingFilterSet
from ..models import CeoBriefing
from .permissions import IsBriefingWriterOrReadOnly
from .serializers import CeoBriefingSerializer


class CeoBriefingViewSet(TenantViewSet):
    """Executive briefings; only the shop's CEO and owner see or write them (row level security)."""

    queryset = CeoBriefing.objects.all()
    serializer_class = CeoBriefingSerializer
    filterset_class = CeoBriefingFilterSet
    ordering_fields = ["period_end", "rating", "created_at"]
    ordering = ["-period_end", "-id"]

    tenant_permission_classes = (IsShopWriterOrReadOnly, IsBriefingWriterOrReadOnly)
