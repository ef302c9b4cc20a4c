"""The statistical analysis of an experiment (`experiment_analyze`) and its history.

`experiment_analyze` reads each variant's latest snapshot (on or before `as_of`), runs
`advanced.experiments.stats.experiment_statistics` under the experiment's engine (`stats_engine`: sequential,
fixed_horizon or bayesian; see docs/experiments.md), and stores on each treatment's snapshot row
the engine's figures: `p_value` (sequential: always-valid; fixed horizon: the z-test; Bayesian:
null), the engine's interval of the absolute lift (`confidence_interval_lower/upper`: confidence
sequence, Wald interval, or credible interval), and for the Bayesian engine `chance_to_win` and
`expected_loss`; control rows get nulls. The experiment's winning_variant and confidence_level
(1 - the winner's corrected p; Bayesian: its chance to win) follow the analysis while the
experiment is undecided (a winner is set only by a decision valid at this look, and cleared when
the data no longer support it); once completed or archived with a winner, that recorded decision
is kept. A fixed-horizon experiment before its planned sample or end date is "interim": nothing
is declared.

The answer also carries the cumulative lift of each treatment on every snapshot day with the
engine's interval of that day (`lift_history`): the review screen's chart of the lift over time.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections import defaultdict
from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, Decimal
from typing import Annotated, Any

from django.db import models, transaction
from django.utils import timezone

from tenancy.errors import Refused

from .. import stats
from ..models import Experiment, ExperimentResult, ExperimentStatus
from ..stats.figures import Doc
from .lifecycle import DECIDED_STATUSES, _locked, variant_errors

# The only metric the analysis decides on; other primary metrics get statistics, no winner.
DECIDING_METRIC = "conversion_rate"
CONFIDENCE_PLACES = Decimal("1e-4")
# Days of lift history returned (the newest); a year of daily snapshots.
HISTORY_DAYS = 366


@dataclass(frozen=True)
class VariantAnalysis:
    """One variant in the analysis: its pure figures as computed (`statistics`, not copied) and
    what the declaration and the snapshot add. The API's answer is one flat object: the
    statistics' figures with these placed `after` the figure their `Doc` names."""

    statistics: stats.VariantStatistics
    name: Annotated[str, Doc("The variant's name (its key when unnamed).", after="key")]
    weight: Annotated[float, Doc("As declared in variants.", after="is_control")]
    snapshot_date: Annotated[
        datetime.date | None, Doc("Day of the snapshot analysed; null: none yet.", after="expected_share")
    ]
    avg_order_value: Annotated[float | None, Doc("As reported on the snapshot.", after="adjusted_p_value")]
    revenue_per_user_stddev: Annotated[
        float | None, Doc("Per-user standard deviation, as reported.", after="revenue_per_user")
    ]
    cuped: Annotated[bool, Doc("The snapshot carries the CUPED covariate aggregates.", after="variance_reduction")]


@dataclass(frozen=True)
class LiftPoint:
    """A treatment's cumulative relative lift on one snapshot day, with the engine's interval."""

    snapshot_date: Annotated[datetime.date, Doc("Day of the cumulative snapshots.")]
    variant_key: Annotated[str, Doc("The treatment.")]
    participants: Annotated[int, Doc("The treatment's cumulative participants on that day.")]
    lift: Annotated[float | None, Doc("Cumulative relative lift on that day.")]
    lower: Annotated[float | None, Doc("The engine's interval on that day (lower).")]
    upper: Annotated[float | None, Doc("The engine's interval on that day (upper).")]
    p_value: Annotated[float | None, Doc("The engine's p-value on that day (Bayesian: null).")]
    chance_to_win: Annotated[float | None, Doc("Bayesian: P(lift > 0) on that day.")]


@dataclass(frozen=True, kw_only=True)
class AnalysisResult:
    """What `experiment_analyze` found and recorded (the API's answer, in its order)."""

    experiment_id: Annotated[int, Doc("The experiment's id.")]
    experiment_key: Annotated[str, Doc("The experiment's key.")]
    # A plain string: a second enum named "status" would collide in the schema's enum naming.
    status: Annotated[str, Doc("The experiment's status (draft, running, paused, completed, archived).")]
    primary_metric: Annotated[str, Doc("Only conversion_rate declares a winner automatically.")]
    as_of: Annotated[datetime.date | None, Doc("The as_of day asked for (null: the latest snapshots).")]
    snapshot_date: Annotated[datetime.date | None, Doc("The newest snapshot analysed.")]
    confidence_threshold: Annotated[float, Doc("The experiment's confidence threshold.")]
    alpha: Annotated[float, Doc("1 - confidence_threshold: adjusted p-values below it are significant.")]
    min_sample_size: Annotated[int, Doc("Participants every variant needs before a winner.")]
    control: Annotated[str, Doc("Key of the control variant.")]
    stats_engine: Annotated[str, Doc("sequential, fixed_horizon or bayesian.")] = stats.SEQUENTIAL
    multiple_testing_correction: Annotated[str, Doc("holm or benjamini_hochberg.")] = stats.HOLM
    sequential_tuning: Annotated[float, Doc("Sequential: the confidence sequence's tuning N*.")] = 5000.0
    risk_threshold: Annotated[float | None, Doc("Bayesian: the largest expected loss a winner may carry.")] = None
    prior_mean: Annotated[float | None, Doc("Bayesian: mean of the prior on the relative lift (null: flat prior).")] = (
        None
    )
    prior_variance: Annotated[float | None, Doc("Bayesian: variance of that prior.")] = None
    guardrail_metrics: Annotated[tuple[str, ...], Doc("Metrics a winner must not make significantly worse.")] = ()
    # interim (fixed horizon before its plan), inconclusive, or decided.
    state: Annotated[
        str, Doc("interim: fixed horizon before its plan, nothing is declared; inconclusive; decided.")
    ] = stats.INCONCLUSIVE
    variants: Annotated[tuple[VariantAnalysis, ...], Doc("Every declared variant, control included.")]
    sample_ratio_mismatch: Annotated[stats.SampleRatioMismatch, Doc("The split of participants against the weights.")]
    power: Annotated[
        stats.PowerFigures | None, Doc("Minimum detectable effect, sample size needed and progress to the plan.")
    ] = None
    cuped_theta: Annotated[float | None, Doc("CUPED: the θ used (null: no adjustment).")] = None
    # The analysis' verdict, and what the experiment records after it (a completed
    # experiment keeps the winner it was completed with).
    significant: Annotated[bool, Doc("A winner was declared at this look.")] = dataclasses.field(init=False)
    winner: Annotated[str | None, Doc("The analysis' verdict; null: no winner at this look.")]
    confidence_level: Annotated[float | None, Doc("1 - the winner's corrected p (Bayesian: its chance to win).")]
    winning_variant: Annotated[
        str | None, Doc("What the experiment records now (a completed experiment keeps its winner).")
    ]
    recorded_confidence_level: Annotated[float | None, Doc("The confidence_level the experiment records now.")]
    reasons: Annotated[tuple[str, ...], Doc("Why no winner was declared.")]
    warnings: Annotated[tuple[str, ...], Doc("Problems of the snapshots (missing variants, different days).")]
    results_updated: Annotated[int, Doc("Snapshot rows whose engine figures were stored.")]
    lift_history: Annotated[
        tuple[LiftPoint, ...], Doc("Each treatment's cumulative lift and engine interval on every snapshot day.")
    ] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "significant", self.winner is not None)


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


def experiment_design(experiment: Experiment, *, on: datetime.date | None = None) -> stats.Design:
    """The experiment's analysis settings as `advanced.experiments.stats.Design`, on day `on` (today)."""
    day = on or timezone.localdate()
    started = experiment.started_at.date() if experiment.started_at else None
    return stats.Design(
        engine=experiment.stats_engine,
        correction=experiment.multiple_testing_correction,
        planned_sample_size=experiment.planned_sample_size,
        end_date_reached=None if experiment.planned_end_date is None else day >= experiment.planned_end_date,
        sequential_tuning=float(experiment.sequential_tuning),
        prior_mean=_optional_float(experiment.prior_mean),
        prior_variance=_optional_float(experiment.prior_variance),
        risk_threshold=float(experiment.risk_threshold),
        guardrails=tuple(experiment.guardrail_metrics or ()),
        target_mde=_optional_float(experiment.target_mde),
        days_running=None if started is None else max(1, (day - started).days + 1),
    )


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


def _covariate(row: ExperimentResult | None) -> stats.Covariate | None:
    if row is None or row.covariate_sum is None or row.covariate_sum_squares is None or row.covariate_cross_sum is None:
        return None
    return stats.Covariate(float(row.covariate_sum), float(row.covariate_sum_squares), float(row.covariate_cross_sum))


def _figures(variant: dict[str, Any], row: ExperimentResult | None) -> stats.VariantFigures:
    return stats.VariantFigures(
        key=str(variant["key"]),
        participants=row.participants if row else 0,
        conversions=row.conversions if row else 0,
        weight=float(variant["weight"]),
        is_control=bool(variant.get("is_control", False)),
        revenue_per_user=_optional_float(row.revenue_per_user) if row else None,
        revenue_per_user_stddev=_optional_float(row.revenue_per_user_stddev) if row else None,
        covariate=_covariate(row),
    )


@dataclass(frozen=True)
class StoredFigure:
    """A figure of `VariantStatistics` kept on the variant's snapshot row: an interval in two
    columns (lower, upper), any other figure in one. Precision and range are the columns' own
    (their decimal places and digits); a value beyond the range is stored as unknown, not refused
    (an interval only whole)."""

    figure: str
    columns: tuple[str, ...]
    low: float | None = None
    high: float | None = None


# The engine's figures stored on each variant's latest snapshot row (nulls for control and
# wherever a figure is undefined).
STORED_FIGURES = (
    StoredFigure("p_value", ("p_value",), low=0.0, high=1.0),
    StoredFigure("decision_interval", ("confidence_interval_lower", "confidence_interval_upper")),
    StoredFigure("chance_to_win", ("chance_to_win",), low=0.0, high=1.0),
    StoredFigure("expected_loss", ("expected_loss",), low=0.0),
)
STORED_FIELDS = [*(column for stored in STORED_FIGURES for column in stored.columns), "updated_at"]


def _stored_values(stored: StoredFigure, figures: stats.VariantStatistics) -> tuple[Decimal | None, ...]:
    value = getattr(figures, stored.figure)
    parts: tuple[float | None, ...] = (value.lower, value.upper) if isinstance(value, stats.Interval) else (value,)
    if len(parts) != len(stored.columns):
        parts = (None,) * len(stored.columns)
    values: list[Decimal | None] = []
    for column, part in zip(stored.columns, parts, strict=True):
        field = ExperimentResult._meta.get_field(column)
        assert isinstance(field, models.DecimalField)
        places = Decimal(10) ** -field.decimal_places
        # numeric(12, 8) holds |x| < 10⁴: beyond that (a handful of participants) is unknown.
        limit = Decimal(10) ** (field.max_digits - field.decimal_places)
        quantized = _quantize(part, places, low=stored.low, high=stored.high)
        if quantized is None or abs(quantized) >= limit:
            return (None,) * len(stored.columns)
        values.append(quantized)
    return tuple(values)


def _store_statistics(computed: stats.ExperimentStatistics, latest: dict[str, ExperimentResult]) -> int:
    """Each variant's `STORED_FIGURES` onto its latest snapshot row; returns the rows written."""
    now = timezone.now()
    rows: list[ExperimentResult] = []
    for figures in computed.variants:
        row = latest.get(figures.key)
        if row is None:
            continue
        for stored in STORED_FIGURES:
            for column, value in zip(stored.columns, _stored_values(stored, figures), strict=True):
                setattr(row, column, value)
        row.updated_at = now
        rows.append(row)
    ExperimentResult.objects.bulk_update(rows, STORED_FIELDS)
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
        statistics=figures,
        name=str(variant.get("name") or figures.key),
        weight=float(variant["weight"]),
        snapshot_date=row.snapshot_date if row else None,
        avg_order_value=_optional_float(row.avg_order_value) if row else None,
        revenue_per_user_stddev=_optional_float(row.revenue_per_user_stddev) if row else None,
        cuped=_covariate(row) is not None,
    )


def lift_history(
    experiment: Experiment, *, as_of: datetime.date | None = None, design: stats.Design | None = None
) -> tuple[LiftPoint, ...]:
    """Each treatment's cumulative lift on every snapshot day (up to `as_of`), with the interval
    the engine gives on that day: what a person looking daily would have seen (one query)."""
    declared = [v for v in experiment.variants if isinstance(v, dict) and isinstance(v.get("key"), str)]
    if variant_errors(declared, check_weight_total=False):
        return ()
    snapshots = ExperimentResult.objects.filter(experiment=experiment).order_by("snapshot_date")
    if as_of is not None:
        snapshots = snapshots.filter(snapshot_date__lte=as_of)
    by_day: dict[datetime.date, dict[str, ExperimentResult]] = defaultdict(dict)
    for row in snapshots.only(
        "variant_key",
        "snapshot_date",
        "participants",
        "conversions",
        # _figures reads these too: left out, each would be a query per row.
        "revenue_per_user",
        "revenue_per_user_stddev",
        "covariate_sum",
        "covariate_sum_squares",
        "covariate_cross_sum",
    ):
        by_day[row.snapshot_date][row.variant_key] = row
    # Power and guardrails are not part of the chart: left out, they cost nothing per day.
    base = replace(design or experiment_design(experiment), guardrails=(), target_mde=None)
    confidence = float(experiment.confidence_threshold)
    points: list[LiftPoint] = []
    current: dict[str, ExperimentResult] = {}
    for day in sorted(by_day)[-HISTORY_DAYS:] if len(by_day) > HISTORY_DAYS else sorted(by_day):
        current.update(by_day[day])
        computed = stats.experiment_statistics(
            [_figures(v, current.get(str(v["key"]))) for v in declared],
            confidence=confidence,
            min_sample_size=0,
            design=base,
        )
        for figures in computed.variants:
            if figures.is_control or figures.key not in current:
                continue
            interval = figures.lift_interval
            points.append(
                LiftPoint(
                    snapshot_date=day,
                    variant_key=figures.key,
                    participants=figures.participants,
                    lift=figures.lift,
                    lower=interval.lower if interval else None,
                    upper=interval.upper if interval else None,
                    p_value=figures.p_value,
                    chance_to_win=figures.chance_to_win,
                )
            )
    return tuple(points)


@dataclass(frozen=True)
class _Computed:
    statistics: stats.ExperimentStatistics
    latest: dict[str, ExperimentResult]
    declared: dict[str, dict[str, Any]]
    design: stats.Design
    dates: list[datetime.date]
    winner: str | None
    level: float | None
    state: str
    reasons: list[str]
    notes: list[str]
    # The day analysed: as asked, or the fixed horizon's plan day.
    analysed_as_of: datetime.date | None


def _plan_day(experiment: Experiment, as_of: datetime.date | None) -> datetime.date | None:
    """Fixed horizon: the first snapshot day (up to `as_of`) on which the plan was reached,
    every variant at planned_sample_size or the planned end date passed; None before."""
    if experiment.stats_engine != stats.FIXED_HORIZON:
        return None
    keys = [str(v["key"]) for v in experiment.variants]
    snapshots = ExperimentResult.objects.filter(experiment=experiment).order_by("snapshot_date")
    if as_of is not None:
        snapshots = snapshots.filter(snapshot_date__lte=as_of)
    participants: dict[str, int] = {}
    for day, key, count in snapshots.values_list("snapshot_date", "variant_key", "participants"):
        participants[key] = count
        planned = experiment.planned_sample_size
        by_sample = planned is not None and all(participants.get(k, 0) >= planned for k in keys)
        by_date = experiment.planned_end_date is not None and day >= experiment.planned_end_date
        if by_sample or by_date:
            return day
    return None


def _compute(experiment: Experiment, as_of: datetime.date | None) -> _Computed:
    errors = variant_errors(experiment.variants, check_weight_total=False)
    if errors:
        raise Refused({"variants": errors})
    notes: list[str] = []
    # A fixed-horizon test is valid at one look: the plan's. Later snapshots would make every
    # daily analysis after it another test (the inflation this engine exists to avoid).
    plan_day = _plan_day(experiment, as_of)
    if plan_day is not None and (as_of is None or plan_day < as_of):
        notes.append(
            f"Fixed horizon: analysed as of {plan_day}, the day the plan was reached; later snapshots do not "
            "change the decision."
        )
        as_of = plan_day
    snapshots = ExperimentResult.objects.filter(experiment=experiment)
    if as_of is not None:
        snapshots = snapshots.filter(snapshot_date__lte=as_of)
    latest = {row.variant_key: row for row in snapshots.latest_per_variant()}
    declared: dict[str, dict[str, Any]] = {str(v["key"]): v for v in experiment.variants}
    dates = [row.snapshot_date for key, row in latest.items() if key in declared]
    design = experiment_design(experiment, on=as_of or (max(dates) if dates else None))
    computed = stats.experiment_statistics(
        [_figures(variant, latest.get(key)) for key, variant in declared.items()],
        confidence=float(experiment.confidence_threshold),
        min_sample_size=experiment.min_sample_size,
        design=design,
    )
    winner, level, state = computed.winner, computed.confidence_level, computed.state
    reasons = list(computed.reasons)
    if experiment.primary_metric != DECIDING_METRIC and winner is not None:
        reasons.append(
            f"primary_metric is {experiment.primary_metric!r}; only {DECIDING_METRIC} declares a winner "
            "automatically (complete the experiment with the winner you choose)."
        )
        winner = level = None
        state = stats.INCONCLUSIVE
    return _Computed(computed, latest, declared, design, dates, winner, level, state, reasons, notes, as_of)


def _result(experiment: Experiment, found: _Computed, *, as_of: datetime.date | None, updated: int) -> AnalysisResult:
    computed, design = found.statistics, found.design
    return AnalysisResult(
        experiment_id=experiment.pk,
        experiment_key=experiment.experiment_key,
        status=experiment.status,
        primary_metric=experiment.primary_metric,
        as_of=as_of,
        snapshot_date=max(found.dates) if found.dates else None,
        confidence_threshold=computed.confidence,
        alpha=computed.alpha,
        min_sample_size=experiment.min_sample_size,
        control=computed.control,
        variants=tuple(_variant_analysis(v, found.declared[v.key], found.latest.get(v.key)) for v in computed.variants),
        sample_ratio_mismatch=computed.sample_ratio_mismatch,
        winner=found.winner,
        confidence_level=found.level,
        winning_variant=experiment.winning_variant,
        recorded_confidence_level=_optional_float(experiment.confidence_level),
        reasons=tuple(found.reasons),
        warnings=tuple(found.notes + _snapshot_warnings(list(found.declared), found.latest)),
        results_updated=updated,
        stats_engine=design.engine,
        multiple_testing_correction=design.correction,
        sequential_tuning=design.sequential_tuning,
        risk_threshold=design.risk_threshold,
        prior_mean=design.prior_mean,
        prior_variance=design.prior_variance,
        guardrail_metrics=design.guardrails,
        state=found.state,
        power=computed.power,
        cuped_theta=computed.cuped_theta,
        lift_history=lift_history(experiment, as_of=found.analysed_as_of, design=design),
    )


def experiment_review(*, experiment: Experiment, as_of: datetime.date | None = None) -> AnalysisResult:
    """What `experiment_analyze` would answer, computed without writing anything (the review
    screen shows it on every page view; only the daily analysis records decisions)."""
    return _result(experiment, _compute(experiment, as_of), as_of=as_of, updated=0)


@transaction.atomic
def experiment_analyze(*, experiment: Experiment, as_of: datetime.date | None = None) -> AnalysisResult:
    """Compute the experiment's statistics from each variant's latest snapshot (on or before
    `as_of`), store them on those snapshot rows, update the decision, and return it all."""
    locked = _locked(experiment)
    found = _compute(locked, as_of)
    updated = _store_statistics(found.statistics, found.latest)
    _record_decision(locked, found.winner, found.level)
    return _result(locked, found, as_of=as_of, updated=updated)


# What analyze_experiments runs without an experiment key: the experiments whose data still changes.
DEFAULT_STATUSES = (ExperimentStatus.RUNNING, ExperimentStatus.PAUSED)


def experiments_to_analyze(*, shop_id: str | None, experiment_key: str | None) -> list[tuple[int, str, str]]:
    """(id, shop, key) of the experiments a run of analyze_experiments analyses, by shop and key:
    those with `experiment_key` whatever their status, else every running or paused one; of one
    shop or of every shop the caller's scope shows."""
    experiments = Experiment.objects.all()
    if shop_id is not None:
        experiments = experiments.filter(shop_id=shop_id)
    if experiment_key:
        experiments = experiments.filter(experiment_key=experiment_key)
    else:
        experiments = experiments.filter(status__in=DEFAULT_STATUSES)
    return list(experiments.order_by("shop_id", "experiment_key").values_list("pk", "shop_id", "experiment_key"))
