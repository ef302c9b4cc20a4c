"""Statistics of A/B experiments: pure functions on plain numbers (no Django, no database).

Every function takes counts and figures per variant and returns floats, or None where the
figure is undefined (no participants, a zero standard error, a zero control rate, ...), so no
NaN or infinity ever reaches the database or the JSON of the API. The tests compare every
figure with statsmodels and scipy.

Methods (two-sided throughout; `confidence` is the experiment's confidence_threshold):
- conversion rate x/n; its Wald interval p ± z·sqrt(p(1-p)/n), clipped to [0, 1] like
  statsmodels' `proportion_confint(method="normal")`.
- two-proportion z-test of a treatment against control with the pooled standard error.
- absolute lift p_t - p_c with the unpooled (Wald) interval d ± z·sqrt(v_t + v_c), where
  v = p(1-p)/n; not clipped.
- relative lift p_t/p_c - 1 with a delta-method interval on the ratio R = p_t/p_c:
  Var(R) ≈ v_t/p_c² + p_t²·v_c/p_c⁴, interval (R - 1) ± z·sqrt(Var(R)). Unlike the log-ratio
  interval it stays defined when the treatment has no conversions; it needs p_c > 0. Like
  every Wald-type interval (and statsmodels' "normal" one), it collapses to a point where
  both rates are 0 or 1, or the treatment's is 0.
- Welch's t-test of revenue per user, from each variant's mean, per-user standard deviation
  (ddof=1) and size.
- sample ratio mismatch: chi-square goodness of fit of the participants against the planned
  weights; flagged when p < 0.001.
- Holm's step-down correction of the treatments' z-test p-values (treatments whose p-value
  is undefined are left out of the family).

Decision (`experiment_statistics`): with alpha = 1 - confidence, a winner is declared only when
every variant has at least `min_sample_size` participants, the sample ratio is not flagged, and
either some treatment is better than control with Holm-adjusted p < alpha (the winner is the
best such treatment by conversion rate; confidence = 1 - its adjusted p), or every treatment
is worse than control with adjusted p < alpha (the winner is control; confidence = 1 - the
largest adjusted p, i.e. the weakest of those comparisons).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as _scipy

SRM_ALPHA = 0.001


@dataclass(frozen=True)
class Interval:
    lower: float
    upper: float


@dataclass(frozen=True)
class ZTest:
    statistic: float
    p_value: float


@dataclass(frozen=True)
class SampleRatioMismatch:
    """Chi-square goodness of fit of observed participants against the planned split."""

    statistic: float | None
    p_value: float | None
    flagged: bool


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


@dataclass(frozen=True)
class VariantStatistics:
    """One variant's figures and, for a treatment, its comparison with control."""

    key: str
    is_control: bool
    participants: int
    conversions: int
    expected_share: float
    conversion_rate: float | None
    conversion_rate_interval: Interval | None
    absolute_lift: float | None
    absolute_lift_interval: Interval | None
    relative_lift: float | None
    relative_lift_interval: Interval | None
    z_statistic: float | None
    p_value: float | None
    adjusted_p_value: float | None
    revenue_per_user: float | None
    revenue_per_user_lift: float | None
    revenue_p_value: float | None
    meets_min_sample_size: bool


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


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def z_critical(confidence: float) -> float | None:
    """The two-sided normal quantile for `confidence`; None at 1 (an infinite interval)."""
    if not 0 <= confidence < 1:
        return None
    return float(_scipy.norm.isf((1 - confidence) / 2))


def conversion_rate(participants: int, conversions: int) -> float | None:
    return conversions / participants if participants > 0 else None


def _rate_variance(participants: int, conversions: int) -> float:
    rate = conversions / participants
    return rate * (1 - rate) / participants


def rate_interval(participants: int, conversions: int, confidence: float) -> Interval | None:
    """Wald interval of a conversion rate, clipped to [0, 1]."""
    z = z_critical(confidence)
    if participants <= 0 or z is None:
        return None
    rate = conversions / participants
    margin = z * math.sqrt(_rate_variance(participants, conversions))
    return Interval(max(0.0, rate - margin), min(1.0, rate + margin))


def two_proportion_z_test(
    treatment_participants: int,
    treatment_conversions: int,
    control_participants: int,
    control_conversions: int,
) -> ZTest | None:
    """Two-sided z-test of p_t - p_c with the pooled standard error; None when it is zero
    (no participants, or everyone or no one converted on both sides)."""
    n_t, x_t, n_c, x_c = treatment_participants, treatment_conversions, control_participants, control_conversions
    if n_t <= 0 or n_c <= 0:
        return None
    pooled = (x_t + x_c) / (n_t + n_c)
    standard_error = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    if standard_error == 0:
        return None
    z = (x_t / n_t - x_c / n_c) / standard_error
    return ZTest(statistic=z, p_value=min(1.0, 2 * float(_scipy.norm.sf(abs(z)))))


def absolute_lift(
    treatment_participants: int, treatment_conversions: int, control_participants: int, control_conversions: int
) -> float | None:
    if treatment_participants <= 0 or control_participants <= 0:
        return None
    return treatment_conversions / treatment_participants - control_conversions / control_participants


def absolute_lift_interval(
    treatment_participants: int,
    treatment_conversions: int,
    control_participants: int,
    control_conversions: int,
    confidence: float,
) -> Interval | None:
    """Interval of p_t - p_c with the unpooled standard error."""
    lift = absolute_lift(treatment_participants, treatment_conversions, control_participants, control_conversions)
    z = z_critical(confidence)
    if lift is None or z is None:
        return None
    variance = _rate_variance(treatment_participants, treatment_conversions) + _rate_variance(
        control_participants, control_conversions
    )
    margin = z * math.sqrt(variance)
    return Interval(lift - margin, lift + margin)


def relative_lift(
    treatment_participants: int, treatment_conversions: int, control_participants: int, control_conversions: int
) -> float | None:
    if treatment_participants <= 0 or control_participants <= 0 or control_conversions <= 0:
        return None
    control_rate = control_conversions / control_participants
    return (treatment_conversions / treatment_participants) / control_rate - 1


def relative_lift_interval(
    treatment_participants: int,
    treatment_conversions: int,
    control_participants: int,
    control_conversions: int,
    confidence: float,
) -> Interval | None:
    """Delta-method interval of p_t/p_c - 1 (see the module docstring)."""
    lift = relative_lift(treatment_participants, treatment_conversions, control_participants, control_conversions)
    z = z_critical(confidence)
    if lift is None or z is None:
        return None
    p_t = treatment_conversions / treatment_participants
    p_c = control_conversions / control_participants
    variance = (
        _rate_variance(treatment_participants, treatment_conversions) / p_c**2
        + p_t**2 * _rate_variance(control_participants, control_conversions) / p_c**4
    )
    margin = z * math.sqrt(variance)
    lower, upper = _finite(lift - margin), _finite(lift + margin)
    return Interval(lower, upper) if lower is not None and upper is not None else None


def welch_t_test(
    treatment_mean: float,
    treatment_stddev: float,
    treatment_size: int,
    control_mean: float,
    control_stddev: float,
    control_size: int,
) -> float | None:
    """Two-sided p-value of Welch's t-test from summary figures (stddev with ddof=1); None
    with fewer than two participants on a side or a zero standard error."""
    if treatment_size < 2 or control_size < 2 or treatment_stddev < 0 or control_stddev < 0:
        return None
    share_t = treatment_stddev**2 / treatment_size
    share_c = control_stddev**2 / control_size
    variance = share_t + share_c
    if variance == 0 or not math.isfinite(variance):
        return None
    t = (treatment_mean - control_mean) / math.sqrt(variance)
    # Welch-Satterthwaite written with each side's share of the variance (they sum to 1), so
    # tiny variances cannot underflow the denominator to zero (squares of ~1e-170 do).
    weight_t, weight_c = share_t / variance, share_c / variance
    degrees = 1 / (weight_t**2 / (treatment_size - 1) + weight_c**2 / (control_size - 1))
    p_value = _finite(2 * float(_scipy.t.sf(abs(t), degrees)))
    return None if p_value is None else min(1.0, p_value)


def sample_ratio_mismatch(participants: Sequence[int], weights: Sequence[float]) -> SampleRatioMismatch:
    """Chi-square goodness of fit of `participants` against the shares `weights` plan."""
    total, weight_total = sum(participants), sum(weights)
    if len(participants) < 2 or total <= 0 or weight_total <= 0 or len(weights) != len(participants):
        return SampleRatioMismatch(statistic=None, p_value=None, flagged=False)
    expected = [total * weight / weight_total for weight in weights]
    statistic = sum((observed - e) ** 2 / e for observed, e in zip(participants, expected, strict=True))
    p_value = float(_scipy.chi2.sf(statistic, len(participants) - 1))
    return SampleRatioMismatch(statistic=statistic, p_value=p_value, flagged=p_value < SRM_ALPHA)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm step-down adjusted p-values, in the order given; None stays None and is not
    counted in the family."""
    defined = sorted((p, position) for position, p in enumerate(p_values) if p is not None)
    family = len(defined)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, position) in enumerate(defined):
        running = max(running, min(1.0, (family - rank) * p))
        adjusted[position] = running
    return adjusted


def experiment_statistics(
    variants: Sequence[VariantFigures], *, confidence: float, min_sample_size: int
) -> ExperimentStatistics:
    """Every variant against the one control, the sample ratio check, and the decision."""
    controls = [v for v in variants if v.is_control]
    if len(controls) != 1:
        raise ValueError(f"exactly one variant must be the control; {len(controls)} are")
    control = controls[0]
    alpha = 1 - confidence
    n_c, x_c = control.participants, control.conversions
    tests = [None if v.is_control else two_proportion_z_test(v.participants, v.conversions, n_c, x_c) for v in variants]
    adjusted = holm([None if test is None else test.p_value for test in tests])
    weight_total = sum(v.weight for v in variants)
    rows: list[VariantStatistics] = []
    for variant, test, adjusted_p in zip(variants, tests, adjusted, strict=True):
        n, x = variant.participants, variant.conversions
        treatment = not variant.is_control
        revenue_lift = revenue_p = None
        if treatment and variant.revenue_per_user is not None and control.revenue_per_user is not None:
            revenue_lift = variant.revenue_per_user - control.revenue_per_user
            if variant.revenue_per_user_stddev is not None and control.revenue_per_user_stddev is not None:
                revenue_p = welch_t_test(
                    variant.revenue_per_user,
                    variant.revenue_per_user_stddev,
                    n,
                    control.revenue_per_user,
                    control.revenue_per_user_stddev,
                    n_c,
                )
        rows.append(
            VariantStatistics(
                key=variant.key,
                is_control=variant.is_control,
                participants=n,
                conversions=x,
                expected_share=variant.weight / weight_total if weight_total > 0 else 0.0,
                conversion_rate=conversion_rate(n, x),
                conversion_rate_interval=rate_interval(n, x, confidence),
                absolute_lift=absolute_lift(n, x, n_c, x_c) if treatment else None,
                absolute_lift_interval=absolute_lift_interval(n, x, n_c, x_c, confidence) if treatment else None,
                relative_lift=relative_lift(n, x, n_c, x_c) if treatment else None,
                relative_lift_interval=relative_lift_interval(n, x, n_c, x_c, confidence) if treatment else None,
                z_statistic=None if test is None else test.statistic,
                p_value=None if test is None else test.p_value,
                adjusted_p_value=adjusted_p,
                revenue_per_user=variant.revenue_per_user,
                revenue_per_user_lift=revenue_lift,
                revenue_p_value=revenue_p,
                meets_min_sample_size=n >= min_sample_size and n > 0,
            )
        )
    srm = sample_ratio_mismatch([v.participants for v in variants], [v.weight for v in variants])
    winner, level, reasons = _decide(rows, srm, alpha=alpha, confidence=confidence, min_sample_size=min_sample_size)
    return ExperimentStatistics(
        control=control.key,
        confidence=confidence,
        alpha=alpha,
        min_sample_size=min_sample_size,
        variants=tuple(rows),
        sample_ratio_mismatch=srm,
        winner=winner,
        confidence_level=level,
        reasons=tuple(reasons),
    )


def _decide(
    rows: Sequence[VariantStatistics],
    srm: SampleRatioMismatch,
    *,
    alpha: float,
    confidence: float,
    min_sample_size: int,
) -> tuple[str | None, float | None, list[str]]:
    reasons: list[str] = []
    small = [f"{row.key} ({row.participants})" for row in rows if not row.meets_min_sample_size]
    if small:
        reasons.append(f"Fewer than min_sample_size ({min_sample_size}) participants: {', '.join(small)}.")
    if srm.flagged:
        reasons.append(
            f"Sample ratio mismatch: participants do not match the planned weights "
            f"(chi-square p = {srm.p_value:.3g} < {SRM_ALPHA}); the assignment is suspect."
        )
    control = next(row for row in rows if row.is_control)
    treatments = [row for row in rows if not row.is_control]

    def significant(row: VariantStatistics) -> bool:
        return row.adjusted_p_value is not None and row.adjusted_p_value < alpha

    better = [row for row in treatments if significant(row) and (row.absolute_lift or 0) > 0]
    worse = [row for row in treatments if significant(row) and (row.absolute_lift or 0) < 0]
    winner: VariantStatistics | None = None
    level: float | None = None
    if better:
        # Several treatments beat control: the best observed rate (then the stronger evidence).
        winner = max(better, key=lambda row: (row.conversion_rate or 0.0, -(row.adjusted_p_value or 0.0)))
        level = 1 - (winner.adjusted_p_value or 0.0)
    elif treatments and len(worse) == len(treatments):
        winner = control
        level = 1 - max(row.adjusted_p_value or 0.0 for row in worse)
    else:
        defined = [row.adjusted_p_value for row in treatments if row.adjusted_p_value is not None]
        smallest = f" (smallest Holm-adjusted p = {min(defined):.3g})" if defined else " (no p-value is defined)"
        reasons.append(
            f"No treatment beats control, nor does control beat every treatment, "
            f"at {confidence:.2%} confidence{smallest}."
        )
    if reasons or winner is None:
        return None, None, reasons
    return winner.key, level, reasons
