"""Serializers of the growth resources."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from tenancy.api.serializers import AUDIT_FIELDS, ConstraintBoundsMixin, StrictFieldsMixin, TenantModelSerializer

from ..models import AdCampaign, AdPerformance

RATIOS = ("ctr", "cpc", "cpa", "roas")


class AdCampaignSerializer(TenantModelSerializer):
    class Meta(TenantModelSerializer.Meta):
        model = AdCampaign
        fields = (
            "id",
            "shop_domain",
            "platform",
            "platform_campaign_id",
            "campaign_name",
            "daily_budget",
            "total_budget",
            "currency",
            "bid_strategy",
            "campaign_status",
            "start_date",
            "end_date",
            *AUDIT_FIELDS,
        )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start = attrs.get("start_date", getattr(self.instance, "start_date", None))
        end = attrs.get("end_date", getattr(self.instance, "end_date", None))
        if start and end and end < start:
            raise serializers.ValidationError({"end_date": ["Must not be before start_date."]})
        return attrs


class AdPerformanceSerializer(TenantModelSerializer):
    # Only campaigns the scope can see (its shop's) are valid choices.
    campaign = serializers.PrimaryKeyRelatedField(queryset=AdCampaign.objects.all())

    class Meta(TenantModelSerializer.Meta):
        model = AdPerformance
        fields = (
            "id",
            "shop_domain",
            "campaign",
            "date",
            "impressions",
            "clicks",
            "conversions",
            "cost",
            "revenue",
            *RATIOS,
            *AUDIT_FIELDS,
        )
        read_only_fields = (*TenantModelSerializer.Meta.read_only_fields, *RATIOS)


class AdPerformanceRowSerializer(StrictFieldsMixin, ConstraintBoundsMixin, serializers.ModelSerializer[AdPerformance]):
    """One bulk row: the parent by id (checked per batch, not per row)."""

    campaign_id = serializers.IntegerField(min_value=1)

    class Meta:
        model = AdPerformance
        fields = ("campaign_id", "date", "impressions", "clicks", "conversions", "cost", "revenue")
        # The batch checks its natural key itself; per-row unique validators would query.
        validators: list[Any] = []
