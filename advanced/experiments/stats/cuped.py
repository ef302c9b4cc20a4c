"""Means with their variances, the relative effect (delta method) and CUPED.

CUPED (Deng, Xu, Kohavi, Walker, "Improving the sensitivity of online controlled experiments
by utilizing pre-experiment data", WSDM 2013): with a covariate X measured before exposure
(e.g. each participant's orders in the 28 days before the experiment), the adjusted metric
Y - θ(X - E[X]) has the same expected difference between variants and the variance

    Var(Y) + θ²Var(X) - 2θCov(X, Y)  = Var(Y)(1 - ρ²)  at θ = Cov(X, Y) / Var(X).

A variant's snapshot carries the aggregates that needs, over its participants (n, the count):
the metric's sum (conversions; a conversion is 0/1, so its sum of squares is the same sum), the
covariate's sum Σx, sum of squares Σx² and cross-product with the metric Σxy. θ is estimated once
per experiment from the within-variant covariances pooled over all variants; each variant's
adjusted mean is ȳ - θ(x̄ - x̄_all), with the variance of that mean (Var(Y) + θ²Var(X) -
2θCov)/n (θ's own estimation error is ignored, as in the paper and in GrowthBook: it is
O(1/n)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Relative slack for aggregate consistency checks: sums arrive as decimals of float sums.
CONSISTENCY_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Covariate:
    """Pre-exposure covariate aggregates over a variant's participants."""

    sum: float
    sum_squares: float
    cross_sum: float  # Σ x·y with the metric y


@dataclass(frozen=True)
class Mean:
    """A variant's metric mean, the per-participant variance and the variance of the mean."""

    mean: float
    unit_variance: float
    n: int

    @property
    def variance(self) -> float:
        return self.unit_variance / self.n if self.n > 0 else math.inf


@dataclass(frozen=True)
class Effect:
    """An estimate of the treatment's lift over control and the variance of that estimate."""

    estimate: float
    variance: float


def conversion_mean(participants: int, conversions: int) -> Mean | None:
    if participants <= 0:
        return None
    rate = conversions / participants
    return Mean(mean=rate, unit_variance=rate * (1 - rate), n=participants)


def relative_effect(treatment: Mean, control: Mean) -> Effect | None:
    """treatment/control - 1 with Var ≈ v_t/m_c² + m_t²·v_c/m_c⁴ (independent variants)."""
    if control.mean <= 0 or treatment.n <= 0 or control.n <= 0:
        return None
    estimate = treatment.mean / control.mean - 1
    variance = treatment.variance / control.mean**2 + treatment.mean**2 * control.variance / control.mean**4
    if not (math.isfinite(estimate) and math.isfinite(variance)):
        return None
    return Effect(estimate, variance)


def absolute_effect(treatment: Mean, control: Mean) -> Effect | None:
    if treatment.n <= 0 or control.n <= 0:
        return None
    return Effect(treatment.mean - control.mean, treatment.variance + control.variance)


def covariate_errors(participants: int, conversions: int, covariate: Covariate) -> dict[str, str]:
    """Why the aggregates cannot come from `participants` people with nonnegative covariates
    and 0/1 conversions (field -> reason); empty when they can."""
    errors: dict[str, str] = {}
    values = {
        "covariate_sum": covariate.sum,
        "covariate_sum_squares": covariate.sum_squares,
        "covariate_cross_sum": covariate.cross_sum,
    }
    for name, value in values.items():
        if not math.isfinite(value) or value < 0:
            errors[name] = "Must be a finite number of at least 0."
    if errors:
        return errors
    slack = CONSISTENCY_TOLERANCE * max(1.0, covariate.sum_squares, covariate.sum**2)
    if participants == 0 and any(values.values()):
        return {"covariate_sum": "Must be 0 when participants is 0."}
    if participants and covariate.sum**2 > participants * covariate.sum_squares + slack:
        errors["covariate_sum_squares"] = (
            f"Too small for covariate_sum over {participants} participants: n·Σx² ≥ (Σx)² always holds."
        )
    # y is 0 or 1, so x·y <= x; and by Cauchy-Schwarz (Σxy)² <= Σx²·Σy² with Σy² = conversions.
    if covariate.cross_sum > covariate.sum * (1 + CONSISTENCY_TOLERANCE):
        errors["covariate_cross_sum"] = "Must not exceed covariate_sum (a conversion is 0 or 1)."
    elif covariate.cross_sum**2 > covariate.sum_squares * conversions + slack:
        errors["covariate_cross_sum"] = (
            "Inconsistent with covariate_sum_squares and conversions: (Σxy)² ≤ Σx²·conversions always holds."
        )
    return errors


@dataclass(frozen=True)
class CupedVariant:
    participants: int
    conversions: int
    covariate: Covariate


def cuped_means(variants: Sequence[CupedVariant]) -> tuple[list[Mean | None], float | None]:
    """Adjusted conversion means of every variant and the θ used; (plain means, None) when
    the covariate has no variance to use."""
    plain = [conversion_mean(v.participants, v.conversions) for v in variants]
    total = sum(v.participants for v in variants)
    if total <= 0:
        return plain, None
    covariance = variance = 0.0
    for v in variants:
        n = v.participants
        if n <= 0:
            continue
        x_mean, y_mean = v.covariate.sum / n, v.conversions / n
        covariance += v.covariate.cross_sum - n * x_mean * y_mean
        variance += v.covariate.sum_squares - n * x_mean * x_mean
    if not variance > CONSISTENCY_TOLERANCE * total:
        return plain, None
    theta = covariance / variance
    x_all = sum(v.covariate.sum for v in variants) / total
    adjusted: list[Mean | None] = []
    for v, mean in zip(variants, plain, strict=True):
        if mean is None:
            adjusted.append(None)
            continue
        n = v.participants
        x_mean = v.covariate.sum / n
        var_x = max(0.0, v.covariate.sum_squares / n - x_mean**2)
        cov = v.covariate.cross_sum / n - x_mean * mean.mean
        unit = max(0.0, mean.unit_variance + theta**2 * var_x - 2 * theta * cov)
        adjusted.append(Mean(mean=mean.mean - theta * (x_mean - x_all), unit_variance=unit, n=n))
    return adjusted, theta
