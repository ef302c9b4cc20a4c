"""Serializers of experiments, their results and their analysis."""

from __future__ import annotations

import dataclasses
import datetime
import types
import typing
from typing import Any, ClassVar

from rest_framework import serializers

from tenancy.api.serializers import AUDIT_FIELDS, StrictFieldsMixin, StrictModelSerializer, TenantModelSerializer

from ..models import (
    Experiment,
    ExperimentResult,
    ExperimentStatus,
)
from ..services import (
    DESIGN_FIELDS,
    AnalysisResult,
    LiftPoint,
    VariantAnalysis,
    design_change_errors,
    design_errors,
    variant_errors,
    variant_keys,
    variants_change_error,
)
from ..stats import GuardrailResult, Interval, PowerFigures, SampleRatioMismatch
from ..stats.cuped import Covariate, covariate_errors
from ..stats.figures import DeclaredFigure, declared_figures

# Owned by the lifecycle actions and the analysis, so read-only here. A request may repeat the
# current value (a PUT of a fetched representation does) but not change it: a change is a 400
# that says which action to use, rather than a write DRF would silently drop.
LIFECYCLE_FIELDS: dict[str, str] = {
    "status": (
        "Changes only through POST /api/v1/experiments/{id}/start/, pause/, resume/, complete/ and "
        "archive/; a new experiment is a draft."
    ),
    "started_at": "Stamped by the start action.",
    "ended_at": "Stamped by the complete action.",
    "winning_variant": "Set by the complete action (winner) or by the analysis (POST .../{id}/analyze/).",
    "confidence_level": "Set by the analysis (POST .../{id}/analyze/): 1 - the winner's Holm-adjusted p.",
}


def _lifecycle_parsers() -> dict[str, serializers.Field[Any, Any, Any, Any]]:
    """Parsers of the values a request may echo, to compare them with the stored ones."""
    return {
        "status": serializers.ChoiceField(choices=ExperimentStatus.choices),
        "started_at": serializers.DateTimeField(allow_null=True),
        "ended_at": serializers.DateTimeField(allow_null=True),
        "winning_variant": serializers.CharField(allow_null=True, allow_blank=True),
        "confidence_level": serializers.DecimalField(max_digits=5, decimal_places=4, allow_null=True),
    }


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
            *DESIGN_FIELDS,
            "target_mde",
            *AUDIT_FIELDS,
        )
        read_only_fields = (*TenantModelSerializer.Meta.read_only_fields, *LIFECYCLE_FIELDS)
        extra_kwargs = {
            # An experiment without its variants is not an experiment (the model's default is []).
            "variants": {"required": True},
            **{name: {"help_text": text} for name, text in LIFECYCLE_FIELDS.items()},
        }

    def validate_variants(self, value: Any) -> Any:
        errors = variant_errors(value)
        if errors:
            raise serializers.ValidationError(errors)
        return value

    def _lifecycle_errors(self) -> dict[str, list[str]]:
        data = getattr(self, "initial_data", None)
        if not isinstance(data, dict):
            return {}
        errors: dict[str, list[str]] = {}
        for name, parser in _lifecycle_parsers().items():
            if name not in data:
                continue
            if self.instance is not None:
                current = getattr(self.instance, name)
            else:
                current = ExperimentStatus.DRAFT if name == "status" else None
            try:
                same = (parser.run_validation(data[name]) or None) == (current or None)
            except serializers.ValidationError:
                same = False
            if not same:
                what = "A new experiment starts as draft" if name == "status" and self.instance is None else "Read-only"
                errors[name] = [f"{what}; cannot set {data[name]!r}. {LIFECYCLE_FIELDS[name]}"]
        return errors

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors = self._lifecycle_errors()
        if errors:
            raise serializers.ValidationError(errors, code="read_only")
        if self.instance is not None and "variants" in attrs:
            frozen = variants_change_error(experiment=self.instance, variants=attrs["variants"])
            if frozen:
                raise serializers.ValidationError({"variants": [frozen]}, code="invalid")
        if self.instance is not None:
            changed = design_change_errors(experiment=self.instance, values=attrs)
            if changed:
                raise serializers.ValidationError({name: [reason] for name, reason in changed.items()}, code="invalid")
        design = {name: attrs.get(name, getattr(self.instance, name, None)) for name in DESIGN_FIELDS}
        if self.instance is None:
            design["stats_engine"] = attrs.get("stats_engine", Experiment._meta.get_field("stats_engine").default)
        problems = design_errors(design)
        if problems:
            raise serializers.ValidationError({name: [reason] for name, reason in problems.items()}, code="invalid")
        return attrs


class ExperimentCompleteSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """Body of POST /experiments/{id}/complete/."""

    winner = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=100,
        help_text=(
            "Key of the winning variant. Omitted or null: the winner the latest analysis declared "
            "(possibly none) stays."
        ),
    )


class ExperimentAnalyzeSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """Body of POST /experiments/{id}/analyze/."""

    as_of = serializers.DateField(
        required=False,
        allow_null=True,
        help_text="Analyse each variant's latest snapshot on or before this day (default: the latest).",
    )


# The serializer field of each scalar kind of figure.
SCALAR_FIELDS: dict[Any, type[serializers.Field[Any, Any, Any, Any]]] = {
    str: serializers.CharField,
    bool: serializers.BooleanField,
    int: serializers.IntegerField,
    float: serializers.FloatField,
    datetime.date: serializers.DateField,
}


def figure_field(figure: DeclaredFigure, source: str | None = None) -> serializers.Field[Any, Any, Any, Any]:
    """The serializer field of one declared figure: its kind from its type (None allowed: null
    allowed), its description from its `Doc`."""
    if figure.doc is None:
        raise TypeError(f"{figure.name} has no Doc: every figure of the answer says what it means")
    kind, kwargs = figure.type, dict[str, Any](help_text=figure.doc.description)
    arguments = typing.get_args(kind)
    if typing.get_origin(kind) in (types.UnionType, typing.Union) and type(None) in arguments:
        (kind,) = [argument for argument in arguments if argument is not type(None)]
        kwargs["allow_null"] = True
    if source is not None:
        kwargs["source"] = source
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        if item in SCALAR_FIELDS:
            return serializers.ListField(child=SCALAR_FIELDS[item](), **kwargs)
        return NESTED_SERIALIZERS[item](many=True, **kwargs)
    if kind in NESTED_SERIALIZERS:
        return NESTED_SERIALIZERS[kind](**kwargs)
    return SCALAR_FIELDS[kind](**kwargs)


def figure_fields(cls: type) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
    """The answer's fields of a dataclass of figures, in order. A field without a `Doc` holding
    a dataclass (`VariantAnalysis.statistics`) contributes that dataclass' figures in place; a
    figure whose `Doc` names another (`after`) follows it."""
    fields: dict[str, serializers.Field[Any, Any, Any, Any]] = {}
    placed: list[tuple[str, DeclaredFigure]] = []
    for figure in declared_figures(cls):
        if figure.doc is None and dataclasses.is_dataclass(figure.type):
            for inner in declared_figures(typing.cast(type, figure.type)):
                fields[inner.name] = figure_field(inner, source=f"{figure.name}.{inner.name}")
        elif figure.doc is not None and figure.doc.after is not None:
            placed.append((figure.doc.after, figure))
        else:
            fields[figure.name] = figure_field(figure)
    for anchor, figure in placed:
        names = list(fields)
        if anchor not in fields:
            raise TypeError(f"{cls.__name__}.{figure.name} is placed after {anchor!r}, which is not a figure")
        at = names.index(anchor) + 1
        items = list(fields.items())
        fields = dict([*items[:at], (figure.name, figure_field(figure)), *items[at:]])
    return fields


# A read-only answer whose fields are derived from the dataclass `figures` declares. (A comment,
# not a docstring: drf-spectacular would give it to every subclass without one as its description.)
class FiguresSerializer(serializers.Serializer[Any]):
    figures: ClassVar[type]

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        return figure_fields(self.figures)


class IntervalSerializer(FiguresSerializer):
    figures = Interval


class SampleRatioMismatchSerializer(FiguresSerializer):
    figures = SampleRatioMismatch


class GuardrailSerializer(FiguresSerializer):
    figures = GuardrailResult


# The serializer of the dataclasses a figure may hold (a tuple of them: many).
NESTED_SERIALIZERS: dict[Any, type[serializers.Serializer[Any]]] = {
    Interval: IntervalSerializer,
    GuardrailResult: GuardrailSerializer,
}


class VariantAnalysisSerializer(FiguresSerializer):
    """One variant against control; null where a figure is undefined (e.g. no participants)."""

    figures = VariantAnalysis


class PowerSerializer(FiguresSerializer):
    figures = PowerFigures


class LiftPointSerializer(FiguresSerializer):
    figures = LiftPoint


class ExperimentAnalysisSerializer(FiguresSerializer):
    """The answer of POST /experiments/{id}/analyze/ (advanced.experiments.services.AnalysisResult)."""

    figures = AnalysisResult


NESTED_SERIALIZERS.update(
    {
        SampleRatioMismatch: SampleRatioMismatchSerializer,
        PowerFigures: PowerSerializer,
        VariantAnalysis: VariantAnalysisSerializer,
        LiftPoint: LiftPointSerializer,
    }
)


RESULT_RATIOS = ("conversion_rate",)
COVARIATE_FIELDS = ("covariate_sum", "covariate_sum_squares", "covariate_cross_sum")
ANALYSIS_RESULT_FIELDS = ("chance_to_win", "expected_loss")


def covariate_field_errors(attrs: dict[str, Any], instance: Any = None) -> dict[str, list[str]]:
    """CUPED aggregates: all three or none, and consistent with participants and conversions."""
    values = {name: attrs.get(name, getattr(instance, name, None)) for name in COVARIATE_FIELDS}
    given = [name for name, value in values.items() if value is not None]
    if not given:
        return {}
    if len(given) != len(COVARIATE_FIELDS):
        missing = [name for name in COVARIATE_FIELDS if values[name] is None]
        return {name: [f"Required with {', '.join(given)}: CUPED needs all three aggregates."] for name in missing}
    participants = attrs.get("participants", getattr(instance, "participants", 0))
    conversions = attrs.get("conversions", getattr(instance, "conversions", 0))
    covariate = Covariate(*(float(values[name] or 0) for name in COVARIATE_FIELDS))
    return {name: [reason] for name, reason in covariate_errors(participants, conversions, covariate).items()}


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
            *COVARIATE_FIELDS,
            *ANALYSIS_RESULT_FIELDS,
            *AUDIT_FIELDS,
        )
        read_only_fields = (*TenantModelSerializer.Meta.read_only_fields, *RESULT_RATIOS, *ANALYSIS_RESULT_FIELDS)
        extra_kwargs = {
            "chance_to_win": {"help_text": "Bayesian engine: P(lift > 0), written by the analysis."},
            "expected_loss": {
                "help_text": "Bayesian engine: expected relative loss of shipping, written by the analysis."
            },
        }

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
        covariate = covariate_field_errors(attrs, self.instance)
        if covariate:
            raise serializers.ValidationError(covariate)
        return attrs


class ExperimentResultRowSerializer(StrictModelSerializer):
    """One row of POST /experiment-results/bulk/: the experiment by id (its existence in the
    shop and the variant key are checked per batch, not per row)."""

    experiment_id = serializers.IntegerField(min_value=1)

    class Meta:
        model = ExperimentResult
        fields = (
            "experiment_id",
            "variant_key",
            "snapshot_date",
            "participants",
            "conversions",
            "avg_order_value",
            "revenue_per_user",
            "revenue_per_user_stddev",
            *COVARIATE_FIELDS,
        )
        # The batch checks its natural key itself; per-row unique validators would query.
        validators: list[Any] = []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("conversions", 0) > attrs.get("participants", 0):
            raise serializers.ValidationError(
                {"conversions": [f"Must not exceed participants ({attrs.get('participants', 0)})."]}
            )
        covariate = covariate_field_errors(attrs)
        if covariate:
            raise serializers.ValidationError(covariate)
        return attrs
