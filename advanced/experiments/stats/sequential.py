"""Always-valid inference: the asymptotic confidence sequences of Waudby-Smith et al.

An experiment analysed every day gives a fixed-horizon test 28 chances to cross alpha: in A/A
experiments with 5% conversion and 28 daily looks, 26.5% declared a winner at 95% confidence
(measured on the project's own analysis before this module). A confidence sequence is an
interval that holds at every look at once: P(the true effect leaves it at any n) <= alpha, so
a winner declared at any look keeps the promised error rate.

Asymptotic confidence sequence (Waudby-Smith, Arnold, Wu, Howard, Ramdas, "Time-uniform central
limit theory and asymptotic confidence sequences", Annals of Statistics 2024, arXiv:2103.06476,
eq. 9 with the rho (here r) of eq. 161), as GrowthBook's gbstats uses it:

    halfwidth(n) = sqrt(s²) · sqrt( 2(nr² + 1) / (n²r²) · log( sqrt(nr² + 1) / alpha ) )
    r = sqrt( (-2 log alpha + log(-2 log alpha + 1)) / N* )

where n is the number of participants of the comparison (both variants), s² = n · Var(estimate)
the per-participant variance of the estimator, and N* the tuning parameter: the sample size at
which the sequence is tightest (GrowthBook's default 5,000). The always-valid p-value is the
reciprocal of the e-value of the same mixture (eq. 155): with t² = n · estimate² / Var(estimate),

    e = exp( r² t² / (2(nr² + 1)) ) / sqrt(nr² + 1),  p = min(1, 1/e),

so p < alpha exactly when the sequence at alpha excludes 0.
"""

from __future__ import annotations

import math

from .frequentist import Interval

DEFAULT_TUNING = 5000.0


def rho(alpha: float, tuning: float = DEFAULT_TUNING) -> float:
    """The mixture's r for a two-sided sequence at `alpha` tuned for `tuning` participants."""
    if not 0 < alpha < 1 or tuning <= 0:
        raise ValueError(f"alpha must be in (0, 1) and tuning > 0; got {alpha}, {tuning}")
    log_alpha = math.log(alpha)
    return math.sqrt((-2 * log_alpha + math.log(-2 * log_alpha + 1)) / tuning)


def halfwidth(variance: float, n: int, alpha: float, tuning: float = DEFAULT_TUNING) -> float | None:
    """Half-width of the sequence around an estimate whose variance is `variance` after `n`
    participants; None when undefined (no participants, no or infinite variance, alpha 0)."""
    if n <= 0 or not variance > 0 or not math.isfinite(variance) or not 0 < alpha < 1:
        return None
    r2 = rho(alpha, tuning) ** 2
    s2 = variance * n
    width = math.sqrt(s2 * 2 * (n * r2 + 1) * math.log(math.sqrt(n * r2 + 1) / alpha) / (n * n * r2))
    return width if math.isfinite(width) else None


def interval(estimate: float, variance: float, n: int, alpha: float, tuning: float = DEFAULT_TUNING) -> Interval | None:
    width = halfwidth(variance, n, alpha, tuning)
    if width is None or not math.isfinite(estimate):
        return None
    return Interval(estimate - width, estimate + width)


def p_value(estimate: float, variance: float, n: int, alpha: float, tuning: float = DEFAULT_TUNING) -> float | None:
    """Always-valid two-sided p-value of estimate = 0 (None when the variance is undefined)."""
    if n <= 0 or not variance > 0 or not math.isfinite(variance) or not math.isfinite(estimate):
        return None
    r2 = rho(alpha, tuning) ** 2
    t2 = n * estimate * estimate / variance
    spread = n * r2 + 1
    # In logs: e itself overflows for |t| beyond ~40 at large n.
    log_e = r2 * t2 / (2 * spread) - 0.5 * math.log(spread)
    return 1.0 if log_e <= 0 else math.exp(-log_e)
