"""A/B experiments: the rules of `variants`, the lifecycle, and the statistical analysis.

Lifecycle (`status`), one service per move:

    draft --start--> running --pause--> paused --resume--> running
    running/paused --complete--> completed --archive--> archived

`start` stamps started_at the first time and requires valid variants; `complete` stamps
ended_at and may record a winner. A paused experiment cannot be archived directly: it is
completed first, so every archived experiment has an end and a recorded decision. Archived is
final. An illegal move raises a DRF ValidationError on `status` (code `invalid_transition`,
a 400 over the API) naming the current status and the moves allowed from it, and writes
nothing. Each move locks the experiment's row first, so concurrent moves apply one at a time.

Analysis (`experiment_analyze`) reads each variant's latest snapshot (on or before `as_of`),
computes the statistics of `advanced.stats`, and stores on each variant's snapshot row the
two-sided z-test p-value (unadjusted) and the interval of the absolute lift of its conversion
rate over control, at the experiment's confidence_threshold; control rows get nulls. The
experiment's winning_variant and confidence_level (1 - the winner's Holm-adjusted p) follow
the analysis while the experiment is undecided (a winner is set only when significant, and
cleared when the data no longer supports it); once completed or archived with a winner, that
recorded decision is kept.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from tenancy.services import row_update

from .. import stats
from ..models import Experiment, ExperimentResult, ExperimentStatus

# Weights are shares of traffic: fractions summing to 1, or percentages summing to 100.
WEIGHT_TOTALS = (1.0, 100.0)
WEIGHT_TOLERANCE = 1e-9
# winning_variant and experiment_results.variant_key are varchar(100); a longer key could
# never be reported on.
VARIANT_KEY_MAX_LENGTH = 100
INVALID_TRANSITION = "invalid_transition"
# The only metric the analysis decides on; other primary metrics get statistics, no winner.
DECIDING_METRIC = "conversion_rate"

# status -> {move: new status}
TRANSITIONS: dict[str, dict[str, str]] = {
    ExperimentStatus.DRAFT: {"start": ExperimentStatus.RUNNING},
    ExperimentStatus.RUNNING: {"pause": ExperimentStatus.PAUSED, "complete": ExperimentStatus.COMPLETED},
    ExperimentStatus.PAUSED: {"resume": ExperimentStatus.RUNNING, "complete": ExperimentStatus.COMPLETED},
    ExperimentStatus.COMPLETED: {"archive": ExperimentStatus.ARCHIVED},
    ExperimentStatus.ARCHIVED: {},
}
# Statuses in which a recorded winner is a decision the analysis must not overturn.
DECIDED_STATUSES = frozenset({ExperimentStatus.COMPLETED, ExperimentStatus.ARCHIVED})

P_VALUE_PLACES = Decimal("1e-10")
INTERVAL_PLACES = Decimal("1e-8")
CONFIDENCE_PLACES = Decimal("1e-4")


# --- variants ----------------------------------------------------------------------------


def _is_nonempty_string(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_number(value: Any) -> bool:
    # JSON true/false are ints to Python; a weight of `true` is a mistake, not 1.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def variant_errors(variants: Any, *, check_weight_total: bool = True) -> list[str]:
    """Every problem of an experiment's `variants`, each naming the variant and the rule:
    at least two objects, unique non-empty keys, positive weights summing to 1 or 100, and
    exactly one control. `check_weight_total=False` lets the analysis read rows whose weights
    were rounded (1/3 stored as 0.3333): it normalises them anyway."""
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
    if (
        check_weight_total
        and not errors
        and not any(math.isclose(total, goal, rel_tol=WEIGHT_TOLERANCE) for goal in WEIGHT_TOTALS)
    ):
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


def variants_change_error(*, experiment: Experiment, variants: Any) -> str | None:
    """Why `experiment`'s variants may not become `variants`, or None. Variants are the design
    traffic is split by: they change only while the experiment is a draft (the admin shows them
    read-only after that, the API refuses the change)."""
    if experiment.status == ExperimentStatus.DRAFT or variants == experiment.variants:
        return None
    return (
        f"Variants can only change while the experiment is a draft; it is {experiment.status}. "
        "Create a new experiment to test another design."
    )


# --- lifecycle ---------------------------------------------------------------------------


def _locked(experiment: Experiment) -> Experiment:
    """The experiment's current state, locked until the transaction ends."""
    return Experiment.objects.select_for_update().get(pk=experiment.pk)


def _transition_error(status: str, move: str) -> ValidationError:
    allowed = TRANSITIONS.get(status, {})
    moves = ", ".join(f"{name} (to {target})" for name, target in allowed.items()) or "none (archived is final)"
    message = f"Cannot {move} an experiment that is {status}. Allowed from {status}: {moves}."
    return ValidationError({"status": [message]}, code=INVALID_TRANSITION)


def _apply(locked: Experiment, move: str, **changes: Any) -> Experiment:
    """Make `move` on a locked experiment, or refuse it if its status does not allow it."""
    target = TRANSITIONS.get(locked.status, {}).get(move)
    if target is None:
        raise _transition_error(locked.status, move)
    return row_update(instance=locked, data={"status": target, **changes})


@transaction.atomic
def experiment_start(*, experiment: Experiment) -> Experiment:
    """draft -> running; started_at is stamped the first time. The variants must be valid."""
    locked = _locked(experiment)
    if "start" not in TRANSITIONS.get(locked.status, {}):
        raise _transition_error(locked.status, "start")
    errors = variant_errors(locked.variants)
    if errors:
        raise ValidationError({"variants": errors})
    return _apply(locked, "start", started_at=locked.started_at or timezone.now())


@transaction.atomic
def experiment_pause(*, experiment: Experiment) -> Experiment:
    """running -> paused."""
    return _apply(_locked(experiment), "pause")


@transaction.atomic
def experiment_resume(*, experiment: Experiment) -> Experiment:
    """paused -> running."""
    return _apply(_locked(experiment), "resume")


@transaction.atomic
def experiment_complete(*, experiment: Experiment, winner: str | None) -> Experiment:
    """running or paused -> completed; ended_at is stamped.

    `winner`, when given, must be a variant key and becomes winning_variant; confidence_level
    is kept only if the analysis had declared that same winner (it measures the analysis'
    confidence, which a person's choice does not have). With no `winner`, whatever the
    latest analysis declared (possibly nothing) stays the result.
    """
    locked = _locked(experiment)
    if "complete" not in TRANSITIONS.get(locked.status, {}):
        raise _transition_error(locked.status, "complete")
    changes: dict[str, Any] = {"ended_at": timezone.now()}
    if winner is not None:
        keys = variant_keys(locked.variants)
        if winner not in keys:
            message = f"{winner!r} is not a variant of this experiment (keys: {', '.join(keys) or 'none'})."
            raise ValidationError({"winner": [message]}, code="invalid_choice")
        changes["winning_variant"] = winner
        if winner != locked.winning_variant:
            changes["confidence_level"] = None
    return _apply(locked, "complete", **changes)


@transaction.atomic
def experiment_archive(*, experiment: Experiment) -> Experiment:
    """completed -> archived (final)."""
    return _apply(_locked(experiment), "archive")


# --- analysis ----------------------------------------------------------------------------


@dataclass(frozen=True)
class VariantAnalysis:
    """One variant's latest figures and its comparison with control (None: undefined)."""

    key: str
    name: str
    is_control: bool
    weight: float
    expected_share: float
    snapshot_date: datetime.date | None
    participants: int
    conversions: int
    conversion_rate: float | None
    conversion_rate_interval: stats.Interval | None
    absolute_lift: float | None
    absolute_lift_interval: stats.Interval | None
    relative_lift: float | None
    relative_lift_interval: stats.Interval | None
    z_statistic: float | None
    p_value: float | None
    adjusted_p_value: float | None
    avg_order_value: float | None
    revenue_per_user: float | None
    revenue_per_user_stddev: float | None
    revenue_per_user_lift: float | None
    revenue_p_value: float | None
    meets_min_sample_size: bool


@dataclass(frozen=True)
class AnalysisResult:
    """What `experiment_analyze` found and recorded."""

    experiment_id: int
    experiment_key: str
    status: str
    primary_metric: str
    as_of: datetime.date | None
    snapshot_date: datetime.date | None
    confidence_threshold: float
    alpha: float
    min_sample_size: int
    control: str
    variants: tuple[VariantAnalysis, ...]
    sample_ratio_mismatch: stats.SampleRatioMismatch
    # The analysis' verdict, and what the experiment records after it (a completed
    # experiment keeps the winner it was completed with).
    winner: str | None
    confidence_level: float | None
    winning_variant: str | None
    recorded_confidence_level: float | None
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    results_updated: int

    @property
    def significant(self) -> bool:
        return self.winner is not None


def _optional_float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _quantize(value: float | None, places: Decimal, *, low: float | None = None, high: float | None = None) -> Any:
    if value is None or not math.isfinite(value):
        return None
    if low is not None:
        value = max(low, value)
    if high is not None:
        value = min(high, value)
    return Decimal(value).quantize(places)


def _snapshot_warnings(keys: list[str], latest: dict[str, ExperimentResult]) -> list[str]:
    warnings: list[str] = []
    unknown = sorted(set(latest) - set(keys))
    if unknown:
        warnings.append(f"Snapshots of keys that are not variants were ignored: {', '.join(unknown)}.")
    missing = [key for key in keys if key not in latest]
    if missing:
        warnings.append(f"No snapshot yet (counted as 0 participants): {', '.join(missing)}.")
    if len({latest[key].snapshot_date for key in keys if key in latest}) > 1:
        days = ", ".join(f"{key} {latest[key].snapshot_date}" for key in keys if key in latest)
        warnings.append(f"The variants' latest snapshots are from different days ({days}).")
    return warnings


def _figures(variant: dict[str, Any], row: ExperimentResult | None) -> stats.VariantFigures:
    return stats.VariantFigures(
        key=str(variant["key"]),
        participants=row.participants if row else 0,
        conversions=row.conversions if row else 0,
        weight=float(variant["weight"]),
        is_control=bool(variant.get("is_control", False)),
        revenue_per_user=_optional_float(row.revenue_per_user) if row else None,
        revenue_per_user_stddev=_optional_float(row.revenue_per_user_stddev) if row else None,
    )


def _store_statistics(computed: stats.ExperimentStatistics, latest: dict[str, ExperimentResult]) -> int:
    """Each variant's z-test p-value and absolute-lift interval onto its latest snapshot row
    (nulls for control and wherever a figure is undefined); returns the rows written."""
    now = timezone.now()
    rows: list[ExperimentResult] = []
    for figures in computed.variants:
        row = latest.get(figures.key)
        if row is None:
            continue
        interval = figures.absolute_lift_interval
        row.p_value = _quantize(figures.p_value, P_VALUE_PLACES, low=0.0, high=1.0)
        row.confidence_interval_lower = _quantize(interval.lower if interval else None, INTERVAL_PLACES)
        row.confidence_interval_upper = _quantize(interval.upper if interval else None, INTERVAL_PLACES)
        row.updated_at = now
        rows.append(row)
    ExperimentResult.objects.bulk_update(
        rows, ["p_value", "confidence_interval_lower", "confidence_interval_upper", "updated_at"]
    )
    return len(rows)


def _record_decision(experiment: Experiment, winner: str | None, level: float | None) -> None:
    """The winner follows the analysis unless a completed experiment already records one."""
    if experiment.status in DECIDED_STATUSES and experiment.winning_variant:
        return
    experiment.winning_variant = winner
    # Rounded down: the stored confidence never claims more than the analysis found.
    experiment.confidence_level = (
        None if level is None else Decimal(max(0.0, min(1.0, level))).quantize(CONFIDENCE_PLACES, ROUND_DOWN)
    )
    experiment.save(update_fields=["winning_variant", "confidence_level", "updated_at"])


def _variant_analysis(
    figures: stats.VariantStatistics, variant: dict[str, Any], row: ExperimentResult | None
) -> VariantAnalysis:
    return VariantAnalysis(
        key=figures.key,
        name=str(variant.get("name") or figures.key),
        is_control=figures.is_control,
        weight=float(variant["weight"]),
        expected_share=figures.expected_share,
        snapshot_date=row.snapshot_date if row else None,
        participants=figures.participants,
        conversions=figures.conversions,
        conversion_rate=figures.conversion_rate,
        conversion_rate_interval=figures.conversion_rate_interval,
        absolute_lift=figures.absolute_lift,
        absolute_lift_interval=figures.absolute_lift_interval,
        relative_lift=figures.relative_lift,
        relative_lift_interval=figures.relative_lift_interval,
        z_statistic=figures.z_statistic,
        p_value=figures.p_value,
        adjusted_p_value=figures.adjusted_p_value,
        avg_order_value=_optional_float(row.avg_order_value) if row else None,
        revenue_per_user=figures.revenue_per_user,
        revenue_per_user_stddev=_optional_float(row.revenue_per_user_stddev) if row else None,
        revenue_per_user_lift=figures.revenue_per_user_lift,
        revenue_p_value=figures.revenue_p_value,
        meets_min_sample_size=figures.meets_min_sample_size,
    )


@transaction.atomic
def experiment_analyze(*, experiment: Experiment, as_of: datetime.date | None = None) -> AnalysisResult:
    """Compute the experiment's statistics from each variant's latest snapshot (on or before
    `as_of`), store them on those snapshot rows, update the decision, and return it all."""
    locked = _locked(experiment)
    errors = variant_errors(locked.variants, check_weight_total=False)
    if errors:
        raise ValidationError({"variants": errors})
    snapshots = ExperimentResult.objects.filter(experiment=locked)
    if as_of is not None:
        snapshots = snapshots.filter(snapshot_date__lte=as_of)
    latest = {row.variant_key: row for row in snapshots.latest_per_variant()}
    declared: dict[str, dict[str, Any]] = {str(v["key"]): v for v in locked.variants}

    confidence = float(locked.confidence_threshold)
    computed = stats.experiment_statistics(
        [_figures(variant, latest.get(key)) for key, variant in declared.items()],
        confidence=confidence,
        min_sample_size=locked.min_sample_size,
    )
    winner, level = computed.winner, computed.confidence_level
    reasons = list(computed.reasons)
    if locked.primary_metric != DECIDING_METRIC and winner is not None:
        reasons.append(
            f"primary_metric is {locked.primary_metric!r}; only {DECIDING_METRIC} declares a winner automatically "
            "(complete the experiment with the winner you choose)."
        )
        winner = level = None

    updated = _store_statistics(computed, latest)
    _record_decision(locked, winner, level)
    dates = [row.snapshot_date for key, row in latest.items() if key in declared]
    return AnalysisResult(
        experiment_id=locked.pk,
        experiment_key=locked.experiment_key,
        status=locked.status,
        primary_metric=locked.primary_metric,
        as_of=as_of,
        snapshot_date=max(dates) if dates else None,
        confidence_threshold=confidence,
        alpha=computed.alpha,
        min_sample_size=locked.min_sample_size,
        control=computed.control,
        variants=tuple(_variant_analysis(v, declared[v.key], latest.get(v.key)) for v in computed.variants),
        sample_ratio_mismatch=computed.sample_ratio_mismatch,
        winner=winner,
        confidence_level=level,
        winning_variant=locked.winning_variant,
        recorded_confidence_level=_optional_float(locked.confidence_level),
        reasons=tuple(reasons),
        warnings=tuple(_snapshot_warnings(list(declared), latest)),
        results_updated=updated,
    )
