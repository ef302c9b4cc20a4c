"""Serializers of CEO briefings."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import serializers

from tenancy.api.serializers import AUDIT_FIELDS, TenantModelSerializer

from ..models import (
    CeoBriefing,
)
from ..services.reviews import FEEDBACK_NOTES_MAX_LENGTH


class CeoBriefingSerializer(TenantModelSerializer):
    class Meta(TenantModelSerializer.Meta):
        model = CeoBriefing
        fields = (
            "id",
            "shop_domain",
            "briefing_type",
            "period_start",
            "period_end",
            "executive_summary",
            "key_metrics",
            "insights",
            "generation_model",
            "generation_tokens",
            "rating",
            "feedback_notes",
            "reviewed_by",
            "reviewed_at",
            *AUDIT_FIELDS,
        )
        read_only_fields = (*TenantModelSerializer.Meta.read_only_fields, "reviewed_by", "reviewed_at")
        # The review service's limit (the admin's review form says the same).
        extra_kwargs = {"feedback_notes": {"max_length": FEEDBACK_NOTES_MAX_LENGTH}}

    def validate_key_metrics(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object of metric name -> figures.")
        return value

    def validate_insights(self, value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise serializers.ValidationError("Must be a JSON array of insights.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start = attrs.get("period_start", getattr(self.instance, "period_start", None))
        end = attrs.get("period_end", getattr(self.instance, "period_end", None))
        if start and end and end < start:
            raise serializers.ValidationError({"period_end": ["Must not be before period_start."]})
        if {"rating", "feedback_notes"} & set(attrs):
            # As in the admin: the reviewer is whoever last rated the briefing or wrote notes.
            attrs["reviewed_by_id"] = self.context["request"].user.pk
            attrs["reviewed_at"] = timezone.now()
        return attrs
