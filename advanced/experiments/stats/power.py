"""Power, minimum detectable effect and sample size for the relative lift of a conversion rate.

With baseline rate p and a relative lift δ (treatment rate p(1+δ)), the relative-lift estimate
after n participants per variant has (delta method) the variance

    V(n) = [ p₁(1-p₁)/p² + p₁²·p(1-p)/p⁴ ] / n,  p₁ = p(1+δ),

- fixed horizon (and the Bayesian engine, whose credible interval without prior is the same
  Wald interval): the two-sided test at alpha detects δ with power 1-β when
  δ = (z_(1-alpha/2) + z_(1-β))·sqrt(V(n)), so n = (z_(1-alpha/2) + z_(1-β))²·n·V(n) / δ²;
- sequential: the confidence sequence's half-width replaces z_(1-alpha/2)·sqrt(V):
  δ = halfwidth(V(n), 2n) + z_(1-β)·sqrt(V(n)) (power at that look; earlier looks only add
  chances), solved for n by bisection.

The MDE at current traffic is δ at the participants each variant has now (the smallest
variant, with p the control's observed rate).
"""

from __future__ import annotations

import math

from scipy import stats as _scipy

from . import sequential

DEFAULT_POWER = 0.8
MAX_SAMPLE = 10**12


def _unit_variance(baseline: float, lift: float) -> float:
    treated = baseline * (1 + lift)
    return treated * (1 - treated) / baseline**2 + treated**2 * baseline * (1 - baseline) / baseline**4


def _usable(baseline: float, alpha: float, power: float) -> bool:
    return 0 < baseline < 1 and 0 < alpha < 1 and 0 < power < 1


def minimum_detectable_effect(
    *,
    baseline: float,
    participants_per_variant: int,
    alpha: float,
    power: float = DEFAULT_POWER,
    sequential_tuning: float | None = None,
) -> float | None:
    """Smallest relative lift detected with `power` at this sample (sequential when a tuning is
    given); None when undefined. Computed with the variance at the null (δ = 0) and refined once
    at the found δ, which moves it by under 1% in the range used."""
    n = participants_per_variant
    if n <= 0 or not _usable(baseline, alpha, power):
        return None
    z_power = float(_scipy.norm.ppf(power))
    lift = 0.0
    for _ in range(3):
        treated = baseline * (1 + lift)
        if not 0 < treated < 1:
            return None
        variance = _unit_variance(baseline, lift) / n
        if sequential_tuning is None:
            width = float(_scipy.norm.isf(alpha / 2)) * math.sqrt(variance)
        else:
            found = sequential.halfwidth(variance, 2 * n, alpha, sequential_tuning)
            if found is None:
                return None
            width = found
        lift = width + z_power * math.sqrt(variance)
    return lift if math.isfinite(lift) else None


def sample_size_per_variant(
    *,
    baseline: float,
    relative_lift: float,
    alpha: float,
    power: float = DEFAULT_POWER,
    sequential_tuning: float | None = None,
) -> int | None:
    """Participants per variant to detect `relative_lift` with `power`; None when undefined."""
    if not _usable(baseline, alpha, power) or relative_lift == 0 or not 0 < baseline * (1 + relative_lift) < 1:
        return None
    unit = _unit_variance(baseline, relative_lift)
    z_power = float(_scipy.norm.ppf(power))
    if sequential_tuning is None:
        z_alpha = float(_scipy.norm.isf(alpha / 2))
        return math.ceil((z_alpha + z_power) ** 2 * unit / relative_lift**2)

    def detects(n: int) -> bool:
        width = sequential.halfwidth(unit / n, 2 * n, alpha, sequential_tuning)
        return width is not None and width + z_power * math.sqrt(unit / n) <= abs(relative_lift)

    low, high = 1, 2
    while not detects(high):
        low, high = high, high * 2
        if high > MAX_SAMPLE:
            return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if detects(middle) else (middle, high)
    return high
