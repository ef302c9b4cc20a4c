"""Bayesian engine: a Gaussian model of the relative effect, as GrowthBook's gbstats (>= 0.7).

The data give an estimate of the relative lift with a variance (delta method, CUPED-adjusted
when covariates are given): the likelihood N(estimate, v). With a prior N(m0, v0) on the lift
(`prior_mean`, `prior_variance`) the posterior is normal with

    precision = 1/v + 1/v0,   mean = (estimate/v + m0/v0) / precision,   sd = 1/sqrt(precision)

and without a prior (improper flat prior) it is N(estimate, v). From it:

- chance to beat control  P(lift > 0) = Φ(mean / sd)
- credible interval       mean ± z_(1 - alpha/2) · sd
- expected loss (risk) of shipping the treatment  E[max(0, -lift)] = sd·φ(mean/sd) - mean·Φ(-mean/sd)
  and of keeping control                         E[max(0,  lift)] = sd·φ(mean/sd) + mean·Φ(mean/sd)
  (the means of the normal truncated at 0, times their probabilities: gbstats' `get_risk`).

References: Stucchio, "Bayesian A/B Testing at VWO" (2015) for expected loss; GrowthBook,
"Bayesian statistics" documentation and gbstats/bayesian/tests.py (EffectBayesianABTest).

A chance to win above a threshold is NOT an error-controlled decision under repeated looks:
the posterior is valid at every look, but "ship when P > 95%" checked daily declares winners in
A/A tests far more often than 5% (bench/experiments measures it). The decision therefore also
requires the expected loss to be under the experiment's `risk_threshold`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as _scipy

from .frequentist import Interval, z_critical


@dataclass(frozen=True)
class Posterior:
    mean: float
    stddev: float
    chance_to_win: float
    interval: Interval | None
    # Expected loss, in relative lift, of shipping the treatment / of keeping control.
    expected_loss: float
    expected_loss_control: float


def expected_losses(mean: float, stddev: float) -> tuple[float, float]:
    """(E[max(0, -X)], E[max(0, X)]) for X ~ N(mean, stddev²)."""
    if stddev <= 0:
        return max(0.0, -mean), max(0.0, mean)
    ratio = mean / stddev
    density = float(_scipy.norm.pdf(ratio))
    below = float(_scipy.norm.cdf(-ratio))
    above = float(_scipy.norm.cdf(ratio))
    return max(0.0, stddev * density - mean * below), max(0.0, stddev * density + mean * above)


def gaussian_effect(
    estimate: float,
    variance: float,
    *,
    confidence: float,
    prior_mean: float | None = None,
    prior_variance: float | None = None,
) -> Posterior | None:
    """The posterior of the effect; None when the data say nothing and there is no prior."""
    proper = prior_mean is not None and prior_variance is not None and prior_variance > 0
    data = math.isfinite(estimate) and math.isfinite(variance) and variance > 0
    if data and proper:
        assert prior_mean is not None and prior_variance is not None
        precision = 1 / variance + 1 / prior_variance
        mean = (estimate / variance + prior_mean / prior_variance) / precision
    elif data:
        precision, mean = 1 / variance, estimate
    else:
        return None
    stddev = math.sqrt(1 / precision)
    if not (math.isfinite(mean) and math.isfinite(stddev) and stddev > 0):
        return None
    z = z_critical(confidence)
    loss_treatment, loss_control = expected_losses(mean, stddev)
    return Posterior(
        mean=mean,
        stddev=stddev,
        chance_to_win=float(_scipy.norm.sf(0, loc=mean, scale=stddev)),
        interval=None if z is None else Interval(mean - z * stddev, mean + z * stddev),
        expected_loss=loss_treatment,
        expected_loss_control=loss_control,
    )
