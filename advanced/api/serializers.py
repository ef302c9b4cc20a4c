"""Serializers of the advanced resources."""

from __future__ import annotations

import math
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from tenancy.api.serializers import AUDIT_FIELDS, TenantModelSerializer

from ..models import EMBEDDING_DIMENSIONS, CeoBriefing, Experiment, ExperimentResult, KnowledgeDocument

# Weights are shares of traffic: fractions summing to 1, or percentages summing to 100.
WEIGHT_TOTALS = (1.0, 100.0)
WEIGHT_TOLERANCE = 1e-9
# winning_variant and experiment_results.variant_key are varchar(100); a longer key could
# never be reported on.
VARIANT_KEY_MAX_LENGTH = 100
# pgvector stores single-precision floats; a larger value is refused by the database.
FLOAT32_MAX = 3.4028234663852886e38


def _is_nonempty_string(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_number(value: Any) -> bool:
    # JSON true/false are ints to Python; a weight of `true` is a mistake, not 1.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def variant_errors(variants: Any) -> list[str]:
    """Every problem of an experiment's `variants`, each naming the variant and the rule."""
    if not isinstance(variants, list):
        return ["Must be a JSON array of variant objects."]
    if len(variants) < 2:
        return [f"An experiment needs at least two variants; got {len(variants)}."]
    errors: list[str] = []
    seen: dict[str, int] = {}
    controls: list[int] = []
    total = 0.0
    for position, variant in enumerate(variants):
        where = f"variants[{position}]"
        if not isinstance(variant, dict):
            errors.append(f"{where} must be an object, not {type(variant).__name__}.")
            continue
        key: Any = variant.get("key")
        if not _is_nonempty_string(key):
            errors.append(f"{where}.key must be a non-empty string.")
        elif len(key) > VARIANT_KEY_MAX_LENGTH:
            errors.append(f"{where}.key must be at most {VARIANT_KEY_MAX_LENGTH} characters.")
        elif key in seen:
            errors.append(f"{where}.key {key!r} is already the key of variants[{seen[key]}]; keys must be unique.")
        else:
            seen[key] = position
        weight: Any = variant.get("weight")
        if not _is_number(weight) or weight <= 0:
            errors.append(f"{where}.weight must be a number greater than 0; got {weight!r}.")
        else:
            total += weight
        is_control: Any = variant.get("is_control", False)
        if not isinstance(is_control, bool):
            errors.append(f"{where}.is_control must be true or false; got {is_control!r}.")
        elif is_control:
            controls.append(position)
    if not errors and not any(math.isclose(total, goal, rel_tol=WEIGHT_TOLERANCE) for goal in WEIGHT_TOTALS):
        errors.append(f"Variant weights must sum to 1 or to 100; they sum to {total:g}.")
    if len(controls) != 1:
        which = f" (variants {', '.join(map(str, controls))})" if controls else ""
        errors.append(f"Exactly one variant must have is_control: true; {len(controls)} do{which}.")
    return errors


def variant_keys(variants: Any) -> list[str]:
    """The keys of stored variants (tolerant of rows written before validation existed)."""
    if not isinstance(variants, list):
        return []
    return [v["key"] for v in variants if isinstance(v, dict) and isinstance(v.get("key"), str)]


class ExperimentSerializer(TenantModelSerializer):
    class Meta(TenantModelSerializer.Meta):
        model = Experiment
        fields = (
            "id",
            "shop_domain",
            "experiment_key",
            "experiment_name",
            "description",
            "variants",
            "status",
            "started_at",
            "ended_at",
            "primary_metric",
            "confidence_threshold",
            "min_sample_size",
            "winning_variant",
            "confidence_level",
            *AUDIT_FIELDS,
        )
        # An experiment without its variants is not an experiment (the model's default is []).
        extra_kwargs = {"variants": {"required": True}}

    def validate_variants(self, value: Any) -> Any:
        errors = variant_errors(value)
        if errors:
            raise serializers.ValidationError(errors)
        return value

    def validate_winning_variant(self, value: str | None) -> str | None:
        # "" and null both mean "no winner yet".
        return value or None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start = attrs.get("started_at", getattr(self.instance, "started_at", None))
        end = attrs.get("ended_at", getattr(self.instance, "ended_at", None))
        if start and end and end < start:
            raise serializers.ValidationError({"ended_at": ["Must not be before started_at."]})
        winner = attrs.get("winning_variant", getattr(self.instance, "winning_variant", None))
        if winner and ("winning_variant" in attrs or "variants" in attrs):
            keys = variant_keys(attrs.get("variants", getattr(self.instance, "variants", [])))
            if winner not in keys:
                message = f"{winner!r} is not a variant of this experiment (keys: {', '.join(keys) or 'none'})."
                raise serializers.ValidationError({"winning_variant": [message]})
        return attrs


RESULT_RATIOS = ("conversion_rate",)


class ExperimentResultSerializer(TenantModelSerializer):
    # Only experiments the scope can see (its shop's) are valid choices.
    experiment = serializers.PrimaryKeyRelatedField(queryset=Experiment.objects.all())

    class Meta(TenantModelSerializer.Meta):
        model = ExperimentResult
        fields = (
            "id",
            "shop_domain",
            "experiment",
            "variant_key",
            "snapshot_date",
            "participants",
            "conversions",
            *RESULT_RATIOS,
            "avg_order_value",
            "revenue_per_user",
            "revenue_per_user_stddev",
            "p_value",
            "confidence_interval_lower",
            "confidence_interval_upper",
            *AUDIT_FIELDS,
        )
        read_only_fields = (*TenantModelSerializer.Meta.read_only_fields, *RESULT_RATIOS)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "experiment" in attrs or "variant_key" in attrs:
            experiment = attrs.get("experiment") or getattr(self.instance, "experiment", None)
            variant = attrs.get("variant_key", getattr(self.instance, "variant_key", None))
            keys = variant_keys(experiment.variants if experiment is not None else [])
            if variant not in keys:
                message = f"{variant!r} is not a variant of experiment {experiment.pk if experiment else None}"
                raise serializers.ValidationError({"variant_key": [f"{message} (keys: {', '.join(keys) or 'none'})."]})
        participants = attrs.get("participants", getattr(self.instance, "participants", 0))
        conversions = attrs.get("conversions", getattr(self.instance, "conversions", 0))
        if conversions > participants:
            message = f"Must not exceed participants ({participants})."
            raise serializers.ValidationError({"conversions": [message]})
        lower = attrs.get("confidence_interval_lower", getattr(self.instance, "confidence_interval_lower", None))
        upper = attrs.get("confidence_interval_upper", getattr(self.instance, "confidence_interval_upper", None))
        if lower is not None and upper is not None and lower > upper:
            message = f"Must not exceed confidence_interval_upper ({upper})."
            raise serializers.ValidationError({"confidence_interval_lower": [message]})
        return attrs


class KnowledgeDocumentSerializer(TenantModelSerializer):
    """The embedding is written here but read back only by retrieve with `?include=embedding`:
    1536 floats per row would make a page of documents megabytes of JSON."""

    embedding = serializers.ListField(
        child=serializers.FloatField(min_value=-FLOAT32_MAX, max_value=FLOAT32_MAX),
        allow_null=True,
        required=False,
        write_only=True,
        help_text=f"{EMBEDDING_DIMENSIONS} finite floats, or null. Returned only by retrieve with ?include=embedding.",
    )
    has_embedding = serializers.SerializerMethodField()

    class Meta(TenantModelSerializer.Meta):
        model = KnowledgeDocument
        fields = (
            "id",
            "shop_domain",
            "document_key",
            "title",
            "content",
            "document_type",
            "embedding",
            "has_embedding",
            "embedding_model",
            "version",
            "is_current",
            "previous_version",
            "tags",
            "source_url",
            *AUDIT_FIELDS,
        )
        # Versioning is managed by the service that creates new versions, not by clients.
        read_only_fields = (*TenantModelSerializer.Meta.read_only_fields, "version", "is_current", "previous_version")

    def get_has_embedding(self, instance: KnowledgeDocument) -> bool:
        if "embedding" in instance.get_deferred_fields():
            # Lists defer the vector and annotate whether it is there (see the view).
            return bool(getattr(instance, "embedding_present", False))
        return instance.embedding is not None

    def validate_embedding(self, value: list[float] | None) -> list[float] | None:
        if value is not None and len(value) != EMBEDDING_DIMENSIONS:
            raise serializers.ValidationError(
                f"Must hold exactly {EMBEDDING_DIMENSIONS} numbers; got {len(value)}.", code="dimensions"
            )
        return value

    def validate_tags(self, value: list[str]) -> list[str]:
        # A tag given twice is the same tag; keep the first occurrence's place.
        return list(dict.fromkeys(value))

    def validate_document_key(self, value: str) -> str:
        if self.instance is not None and value == self.instance.document_key:
            return value
        # One query instead of a refusal by either of two unique indexes, whose names would
        # point at `version`; the index still decides between concurrent writers.
        if KnowledgeDocument.objects.filter(document_key=value).exists():
            raise serializers.ValidationError(f"A document with key {value!r} already exists.", code="unique")
        return value

    def to_representation(self, instance: KnowledgeDocument) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        if self.context.get("include_embedding"):
            data["embedding"] = instance.embedding
        return data


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
