"""FilterSets for the growth resources: the columns the schema indexes."""

from __future__ import annotations

import django_filters

from .models import AdCampaign, AdPerformance


class AdCampaignFilterSet(django_filters.FilterSet):
    class Meta:
        model = AdCampaign
        fields = {
            "campaign_status": ["exact", "in"],
            "platform": ["exact"],
            "platform_campaign_id": ["exact"],
            "bid_strategy": ["exact"],
            "start_date": ["gte", "lte"],
        }


class AdPerformanceFilterSet(django_filters.FilterSet):
    date_from = django_filters.DateFilter(field_name="date", lookup_expr="gte")
    date_to = django_filters.DateFilter(field_name="date", lookup_expr="lte")
    min_roas = django_filters.NumberFilter(field_name="roas", lookup_expr="gte")

    class Meta:
        model = AdPerformance
        fields = {"campaign": ["exact"]}
