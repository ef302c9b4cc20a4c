"""FilterSet of the CEO briefings: the columns the schema indexes."""

from __future__ import annotations

from tenancy.api.filters import TenantFilterSet

from .models import CeoBriefing


class CeoBriefingFilterSet(TenantFilterSet):
    class Meta:
        model = CeoBriefing
        fields = {
            "briefing_type": ["exact", "in"],
            "period_end": ["gte", "lte"],
            "rating": ["exact", "gte", "lte"],
        }
