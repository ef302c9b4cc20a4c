"""Serializers of the onboarding resources."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import serializers

from tenancy.api.serializers import AUDIT_FIELDS, StrictFieldsMixin, StrictModelSerializer, TenantModelSerializer

from ..models import FeatureTour, OnboardingProgress, StepStatus
from ..services import MAX_COUNTER
from ..steps import ONBOARDING_STEPS


class OnboardingProgressSerializer(TenantModelSerializer):
    # The row's user is the token's subject (set from the scope, like the shop).
    user = serializers.UUIDField(source="user_id", read_only=True)

    class Meta(TenantModelSerializer.Meta):
        model = OnboardingProgress
        fields = (
            "id",
            "shop_domain",
            "user",
            "step_key",
            "step_order",
            "status",
            "started_at",
            "completed_at",
            "attempts",
            "time_spent_seconds",
            *AUDIT_FIELDS,
        )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        status = attrs.get("status", getattr(self.instance, "status", StepStatus.NOT_STARTED))
        if status == StepStatus.COMPLETED:
            # The table refuses a completed step without a time (completed_has_time); a
            # client that just reports "completed" means "now", one that sends null is wrong.
            if "completed_at" in attrs:
                if attrs["completed_at"] is None:
                    raise serializers.ValidationError({"completed_at": ["Required when status is completed."]})
            elif getattr(self.instance, "completed_at", None) is None:
                attrs["completed_at"] = timezone.now()
        started = attrs.get("started_at", getattr(self.instance, "started_at", None))
        completed = attrs.get("completed_at", getattr(self.instance, "completed_at", None))
        if started and completed and completed < started:
            raise serializers.ValidationError({"completed_at": ["Must not be before started_at."]})
        return attrs


def _is_nonempty_string(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


class FeatureTourSerializer(StrictModelSerializer):
    """A tour belongs to a user, not to a shop: no shop_domain."""

    user = serializers.UUIDField(source="user_id", read_only=True)

    class Meta:
        model = FeatureTour
        fields = (
            "id",
            "user",
            "tour_key",
            "tour_name",
            "steps",
            "status",
            "current_step",
            "times_shown",
            "interactions",
            "last_shown_at",
            "completed_at",
            "dismissed_at",
            *AUDIT_FIELDS,
        )
        read_only_fields = ("id", *AUDIT_FIELDS)

    def validate_steps(self, value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            raise serializers.ValidationError("Must be a JSON array of step objects.")
        for position, step in enumerate(value):
            if not isinstance(step, dict):
                raise serializers.ValidationError(f"steps[{position}] must be an object, not {type(step).__name__}.")
            if not _is_nonempty_string(step.get("title")):
                raise serializers.ValidationError(f"steps[{position}].title must be a non-empty string.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        steps = attrs.get("steps", getattr(self.instance, "steps", []))
        current = attrs.get("current_step", getattr(self.instance, "current_step", 0))
        # Mirrors the current_step_in_steps CHECK, so a bad index is a 400, not a refusal.
        if current != 0 and current >= len(steps):
            if steps:
                reason = f"Step {current} is outside the tour's {len(steps)} steps (0 to {len(steps) - 1})."
            else:
                reason = "Must be 0: the tour has no steps."
            raise serializers.ValidationError({"current_step": [reason]})
        return attrs


# --- workflow actions --------------------------------------------------------------------


class OnboardingStepSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """Body of start, skip and retry: which canonical step."""

    step_key = serializers.ChoiceField(
        choices=list(ONBOARDING_STEPS), help_text="One of the canonical onboarding steps (see the summary)."
    )


class OnboardingStepCompleteSerializer(OnboardingStepSerializer):
    """Body of complete: the step, and the seconds this attempt took (added to the total)."""

    time_spent_seconds = serializers.IntegerField(min_value=0, max_value=MAX_COUNTER)


class OnboardingSummarySerializer(serializers.Serializer[Any]):
    """The caller's standing on the shop's canonical onboarding steps."""

    total_steps = serializers.IntegerField()
    completed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    in_progress = serializers.IntegerField()
    not_started = serializers.IntegerField(help_text="Steps without progress count as not started.")
    percent_complete = serializers.FloatField(help_text="completed / total_steps * 100, one decimal.")
    next_step = serializers.CharField(
        allow_null=True, help_text="First step by step_order neither completed nor skipped; null when none is left."
    )
