"""Statistics of A/B experiments: pure functions on plain numbers (no Django, no database).

- `frequentist`: rates, z-test, Wald intervals, Welch's t-test, sample ratio check, Holm and
  Benjamini-Hochberg (valid at one planned look).
- `sequential`: asymptotic confidence sequences and always-valid p-values (valid at every look).
- `bayesian`: the Gaussian model of the relative lift (chance to win, expected loss).
- `cuped`: means, the relative effect (delta method) and the CUPED adjustment.
- `power`: minimum detectable effect and sample size.
- `decision`: one experiment's analysis under its engine, and the decision.

Figures are floats, or None where undefined: no NaN or infinity reaches the database or JSON.
"""

from __future__ import annotations

from .cuped import Covariate
from .decision import (
    BAYESIAN,
    BENJAMINI_HOCHBERG,
    CORRECTIONS,
    DECIDED,
    DEFAULT_RISK_THRESHOLD,
    ENGINES,
    FIXED_HORIZON,
    GUARDRAIL_METRICS,
    HOLM,
    INCONCLUSIVE,
    INTERIM,
    REVENUE_PER_USER,
    SEQUENTIAL,
    Design,
    ExperimentStatistics,
    GuardrailResult,
    PowerFigures,
    VariantFigures,
    VariantStatistics,
    experiment_statistics,
)
from .frequentist import (
    SRM_ALPHA,
    Interval,
    SampleRatioMismatch,
    ZTest,
    absolute_lift,
    absolute_lift_interval,
    benjamini_hochberg,
    conversion_rate,
    holm,
    rate_interval,
    relative_lift,
    relative_lift_interval,
    sample_ratio_mismatch,
    two_proportion_z_test,
    welch_t_test,
    z_critical,
)

__all__ = [
    "BAYESIAN",
    "BENJAMINI_HOCHBERG",
    "CORRECTIONS",
    "DECIDED",
    "DEFAULT_RISK_THRESHOLD",
    "ENGINES",
    "FIXED_HORIZON",
    "GUARDRAIL_METRICS",
    "HOLM",
    "INCONCLUSIVE",
    "INTERIM",
    "REVENUE_PER_USER",
    "SEQUENTIAL",
    "SRM_ALPHA",
    "Covariate",
    "Design",
    "ExperimentStatistics",
    "GuardrailResult",
    "Interval",
    "PowerFigures",
    "SampleRatioMismatch",
    "VariantFigures",
    "VariantStatistics",
    "ZTest",
    "absolute_lift",
    "absolute_lift_interval",
    "benjamini_hochberg",
    "conversion_rate",
    "experiment_statistics",
    "holm",
    "rate_interval",
    "relative_lift",
    "relative_lift_interval",
    "sample_ratio_mismatch",
    "two_proportion_z_test",
    "welch_t_test",
    "z_critical",
]
