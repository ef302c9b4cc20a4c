"""What an analysis takes and gives: the engines, corrections and metrics, the experiment's
design, a variant's figures in, and one declaration per figure out (`Doc`: the API, storage and
the review screen are derived from these; see docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from . import cuped, power, sequential
from .figures import Doc
from .frequentist import (
    Interval,
    SampleRatioMismatch,
)

SEQUENTIAL, FIXED_HORIZON, BAYESIAN = "sequential", "fixed_horizon", "bayesian"
ENGINES = (SEQUENTIAL, FIXED_HORIZON, BAYESIAN)
HOLM, BENJAMINI_HOCHBERG = "holm", "benjamini_hochberg"
CORRECTIONS = (HOLM, BENJAMINI_HOCHBERG)
REVENUE_PER_USER = "revenue_per_user"
GUARDRAIL_METRICS = (REVENUE_PER_USER,)
# GrowthBook's default "acceptable risk" of a metric: 0.25% relative loss.
DEFAULT_RISK_THRESHOLD = 0.0025
INTERIM, INCONCLUSIVE, DECIDED = "interim", "inconclusive", "decided"


@dataclass(frozen=True)
class Design:
    """How the experiment is analysed (its fields on the Experiment row)."""

    engine: str = FIXED_HORIZON
    correction: str = HOLM
    # Fixed horizon: participants per variant planned, and whether the planned end date has
    # passed (None: no end date planned). With neither planned, the caller vouches that this
    # is the one planned look.
    planned_sample_size: int | None = None
    end_date_reached: bool | None = None
    sequential_tuning: float = sequential.DEFAULT_TUNING
    prior_mean: float | None = None
    prior_variance: float | None = None
    risk_threshold: float = DEFAULT_RISK_THRESHOLD
    guardrails: tuple[str, ...] = ()
    target_mde: float | None = None
    power: float = power.DEFAULT_POWER
    days_running: int | None = None


@dataclass(frozen=True)
class VariantFigures:
    """What one variant's snapshot holds (the input of the analysis)."""

    key: str
    participants: int
    conversions: int
    weight: float
    is_control: bool = False
    revenue_per_user: float | None = None
    revenue_per_user_stddev: float | None = None
    covariate: cuped.Covariate | None = None


@dataclass(frozen=True)
class GuardrailResult:
    """A guardrail metric of a treatment against control under the experiment's engine."""

    metric: Annotated[str, Doc("The guardrail metric (revenue_per_user).")]
    relative_lift: Annotated[float | None, Doc("Treatment / control - 1 of the metric.")]
    interval: Annotated[Interval | None, Doc("The engine's interval of that relative lift.")]
    p_value: Annotated[float | None, Doc("Sequential: always-valid p; fixed horizon: Welch's t-test; Bayesian: null.")]
    chance_to_win: Annotated[float | None, Doc("Bayesian: P(treatment better on the metric).")]
    # Significantly worse than control: blocks this treatment from winning.
    worse: Annotated[bool, Doc("Significantly worse than control: blocks this treatment from winning.")]


@dataclass(frozen=True)
class VariantStatistics:
    """One variant's figures and, for a treatment, its comparison with control.

    Each field is a figure of the API's answer (`VariantAnalysis`), described by its `Doc`:
    a field added here reaches the answer and the OpenAPI document with no other edit."""

    key: Annotated[str, Doc("The variant's key.")]
    is_control: Annotated[bool, Doc("The variant every treatment is compared with.")]
    expected_share: Annotated[float, Doc("The weight as a share of all weights.")]
    participants: Annotated[int, Doc("Cumulative participants of the snapshot analysed.")]
    conversions: Annotated[int, Doc("Cumulative conversions of the snapshot analysed.")]
    conversion_rate: Annotated[float | None, Doc("conversions / participants.")]
    conversion_rate_interval: Annotated[Interval | None, Doc("Wald interval, clipped to [0, 1].")]
    absolute_lift: Annotated[float | None, Doc("Rate minus control's rate (unadjusted).")]
    absolute_lift_interval: Annotated[
        Interval | None, Doc("Unpooled Wald interval (fixed-horizon, unadjusted; descriptive).")
    ]
    relative_lift: Annotated[float | None, Doc("Rate / control's rate - 1 (unadjusted).")]
    relative_lift_interval: Annotated[
        Interval | None, Doc("Delta method on the ratio (fixed-horizon, unadjusted; descriptive).")
    ]
    z_statistic: Annotated[float | None, Doc("Two-proportion z statistic (pooled).")]
    p_value: Annotated[
        float | None,
        Doc(
            "The engine's two-sided p-value: sequential: always-valid p of the relative lift; fixed horizon: "
            "two-proportion z-test (pooled; of the CUPED-adjusted difference with covariates); Bayesian: null."
        ),
    ]
    adjusted_p_value: Annotated[
        float | None, Doc("p_value corrected over the treatments (multiple_testing_correction).")
    ]
    revenue_per_user: Annotated[float | None, Doc("As reported on the snapshot.")]
    revenue_per_user_lift: Annotated[float | None, Doc("Revenue per user minus control's.")]
    revenue_p_value: Annotated[float | None, Doc("Welch's t-test of revenue per user.")]
    meets_min_sample_size: Annotated[bool, Doc("participants >= min_sample_size (and > 0).")]
    # The engine's view (treatments only): the relative lift it decides on (CUPED-adjusted when
    # covariates are given), its standard error and interval, and the absolute-lift interval
    # stored on the snapshot row.
    lift: Annotated[
        float | None,
        Doc(
            "The relative lift of the conversion rate the engine decides on: CUPED-adjusted when every "
            "variant has covariates; Bayesian: the posterior mean."
        ),
    ] = None
    lift_stddev: Annotated[float | None, Doc("Standard error (Bayesian: posterior sd) of lift.")] = None
    lift_interval: Annotated[
        Interval | None,
        Doc(
            "The engine's interval of lift at confidence_threshold: sequential: confidence sequence (valid "
            "at every look); fixed horizon: Wald interval; Bayesian: credible interval."
        ),
    ] = None
    decision_interval: Annotated[
        Interval | None,
        Doc("The engine's interval of the absolute lift; stored as confidence_interval_lower/upper."),
    ] = None
    chance_to_win: Annotated[float | None, Doc("Bayesian: P(lift > 0).")] = None
    expected_loss: Annotated[
        float | None, Doc("Bayesian: E[max(0, -lift)], the relative conversion lost by shipping it.")
    ] = None
    variance_reduction: Annotated[
        float | None,
        Doc("CUPED: 1 - Var(adjusted lift) / Var(unadjusted lift); null without covariates."),
    ] = None
    guardrails: Annotated[tuple[GuardrailResult, ...], Doc("Treatments: each guardrail metric against control.")] = ()


@dataclass(frozen=True)
class PowerFigures:
    baseline_rate: Annotated[float | None, Doc("Control's conversion rate.")]
    participants_per_variant: Annotated[int, Doc("Participants of the smallest variant.")]
    minimum_detectable_effect: Annotated[
        float | None, Doc("Relative lift detectable with `power` at the current sample under the engine.")
    ]
    target_mde: Annotated[float | None, Doc("The experiment's target_mde.")]
    power: Annotated[float, Doc("The power the figures are computed for (0.8).")]
    sample_size_per_variant: Annotated[
        float | None, Doc("Participants per variant needed to detect target_mde with `power`.")
    ]
    planned_sample_size: Annotated[int | None, Doc("The experiment's planned participants per variant.")]
    # The smallest variant's share of the planned sample (or of the sample the target MDE
    # needs); can exceed 1.
    progress: Annotated[
        float | None, Doc("Smallest variant / planned_sample_size (or / sample_size_per_variant); 1 = reached.")
    ]
    days_running: Annotated[int | None, Doc("Days since started_at, inclusive.")]
    participants_per_day: Annotated[float | None, Doc("Per variant (the smallest).")]
    days_remaining: Annotated[float | None, Doc("At the current traffic, to the goal.")]
    plan_reached: Annotated[
        bool, Doc("Fixed horizon: the planned sample or end date is reached (true when nothing is planned).")
    ]


@dataclass(frozen=True)
class ExperimentStatistics:
    control: str
    confidence: float
    alpha: float
    min_sample_size: int
    variants: tuple[VariantStatistics, ...]
    sample_ratio_mismatch: SampleRatioMismatch
    winner: str | None
    confidence_level: float | None
    # Why no winner was declared (empty when there is one).
    reasons: tuple[str, ...]
    engine: str = FIXED_HORIZON
    correction: str = HOLM
    state: str = INCONCLUSIVE
    power: PowerFigures | None = None
    cuped_theta: float | None = None
