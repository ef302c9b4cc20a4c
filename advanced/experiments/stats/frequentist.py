"""Fixed-horizon statistics of conversion rates and revenue: pure functions on plain numbers.

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
- Holm's step-down correction (family-wise error) and Benjamini-Hochberg's step-up correction
  (false discovery rate) of the treatments' p-values (undefined p-values are left out of the
  family).

These are valid at one planned look. Looked at daily they are not (see `sequential`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from scipy import stats as _scipy

from .figures import Doc

SRM_ALPHA = 0.001


@dataclass(frozen=True)
class Interval:
    lower: Annotated[float, Doc("Lower bound.")]
    upper: Annotated[float, Doc("Upper bound.")]


@dataclass(frozen=True)
class ZTest:
    statistic: float
    p_value: float


@dataclass(frozen=True)
class SampleRatioMismatch:
    """Chi-square goodness of fit of observed participants against the planned split."""

    statistic: Annotated[float | None, Doc("Chi-square statistic (k - 1 degrees of freedom).")]
    p_value: Annotated[float | None, Doc("Chi-square p-value of the observed split against the weights.")]
    flagged: Annotated[bool, Doc("p < 0.001: the split of participants does not match the weights.")]


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


def benjamini_hochberg(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg step-up adjusted p-values (q-values), in the order given; None stays
    None and is not counted in the family. adjusted_(i) = min over j >= i of m·p_(j)/j."""
    defined = sorted((p, position) for position, p in enumerate(p_values) if p is not None)
    family = len(defined)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 1.0
    for rank in range(family - 1, -1, -1):
        p, position = defined[rank]
        running = min(running, family * p / (rank + 1))
        adjusted[position] = min(1.0, running)
    return adjusted
