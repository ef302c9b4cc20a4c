"""The analysis of one experiment: every treatment against control under the experiment's
engine, the guardrails, the sample ratio check, power, and the decision.

Engines (`Design.engine`):
- `sequential` (the default of running experiments): always-valid p-values and confidence
  sequences of the relative lift (`sequential`); a winner declared at any look keeps alpha.
- `fixed_horizon`: the two-proportion z-test (pooled; on the CUPED-adjusted difference when
  covariates are given) and Wald intervals, valid at ONE look: the planned sample or end date.
  Before the plan is reached the analysis is "interim" and declares nothing.
- `bayesian`: the Gaussian model of the relative lift (`bayesian`): chance to beat control,
  expected loss and credible interval; a winner needs both chance to win >= confidence and an
  expected loss <= `risk_threshold`.

The p-values of the treatments are corrected for the family (Holm, or Benjamini-Hochberg).
A winner is declared only when every variant has `min_sample_size` participants, the sample
ratio is not flagged, and (frequentist engines) some treatment is better than control at
corrected p < alpha, or (Bayesian) some treatment passes both thresholds, and that treatment's
guardrails are not significantly worse under the same engine. Control is the winner when every
treatment is significantly worse. See docs/experiments.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from scipy import stats as _scipy

from . import bayesian, cuped, power, sequential
from .declarations import (
    BAYESIAN as BAYESIAN,
)
from .declarations import (
    BENJAMINI_HOCHBERG as BENJAMINI_HOCHBERG,
)
from .declarations import (
    CORRECTIONS as CORRECTIONS,
)
from .declarations import (
    DECIDED as DECIDED,
)
from .declarations import (
    DEFAULT_RISK_THRESHOLD as DEFAULT_RISK_THRESHOLD,
)
from .declarations import (
    ENGINES as ENGINES,
)
from .declarations import (
    FIXED_HORIZON as FIXED_HORIZON,
)
from .declarations import (
    GUARDRAIL_METRICS as GUARDRAIL_METRICS,
)
from .declarations import (
    HOLM as HOLM,
)
from .declarations import (
    INCONCLUSIVE as INCONCLUSIVE,
)
from .declarations import (
    INTERIM as INTERIM,
)
from .declarations import (
    REVENUE_PER_USER as REVENUE_PER_USER,
)
from .declarations import (
    SEQUENTIAL as SEQUENTIAL,
)
from .declarations import (
    Design as Design,
)
from .declarations import (
    ExperimentStatistics as ExperimentStatistics,
)
from .declarations import (
    GuardrailResult as GuardrailResult,
)
from .declarations import (
    PowerFigures as PowerFigures,
)
from .declarations import (
    VariantFigures as VariantFigures,
)
from .declarations import (
    VariantStatistics as VariantStatistics,
)
from .frequentist import (
    SRM_ALPHA,
    Interval,
    SampleRatioMismatch,
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


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _wald(effect: cuped.Effect | None, confidence: float) -> Interval | None:
    z = z_critical(confidence)
    if effect is None or z is None or not effect.variance >= 0:
        return None
    margin = z * math.sqrt(effect.variance)
    lower, upper = _finite(effect.estimate - margin), _finite(effect.estimate + margin)
    return None if lower is None or upper is None else Interval(lower, upper)


def _means(variants: Sequence[VariantFigures]) -> tuple[list[cuped.Mean | None], float | None, bool]:
    """Each variant's conversion mean: CUPED-adjusted when every variant has covariates."""
    if variants and all(v.covariate is not None for v in variants):
        adjusted, theta = cuped.cuped_means(
            [cuped.CupedVariant(v.participants, v.conversions, v.covariate) for v in variants if v.covariate]
        )
        if theta is not None:
            return adjusted, theta, True
    return [cuped.conversion_mean(v.participants, v.conversions) for v in variants], None, False


def _revenue_mean(variant: VariantFigures) -> cuped.Mean | None:
    if variant.revenue_per_user is None or variant.revenue_per_user_stddev is None or variant.participants < 2:
        return None
    return cuped.Mean(variant.revenue_per_user, variant.revenue_per_user_stddev**2, variant.participants)


def _guardrail(
    variant: VariantFigures, control: VariantFigures, design: Design, confidence: float, welch_p: float | None
) -> GuardrailResult:
    alpha = 1 - confidence
    treatment_mean, control_mean = _revenue_mean(variant), _revenue_mean(control)
    effect = None
    if treatment_mean is not None and control_mean is not None:
        effect = cuped.relative_effect(treatment_mean, control_mean)
    if effect is None or not effect.variance > 0:
        return GuardrailResult(REVENUE_PER_USER, None if effect is None else effect.estimate, None, None, None, False)
    n = variant.participants + control.participants
    if design.engine == BAYESIAN:
        posterior = bayesian.gaussian_effect(effect.estimate, effect.variance, confidence=confidence)
        chance = None if posterior is None else posterior.chance_to_win
        worse = chance is not None and 1 - chance >= confidence
        interval = None if posterior is None else posterior.interval
        return GuardrailResult(REVENUE_PER_USER, effect.estimate, interval, None, chance, worse)
    if design.engine == SEQUENTIAL:
        p = sequential.p_value(effect.estimate, effect.variance, n, alpha, design.sequential_tuning)
        interval = sequential.interval(effect.estimate, effect.variance, n, alpha, design.sequential_tuning)
    else:
        p, interval = welch_p, _wald(effect, confidence)
    worse = p is not None and p < alpha and effect.estimate < 0
    return GuardrailResult(REVENUE_PER_USER, effect.estimate, interval, p, None, worse)


def _plan_reached(design: Design, variants: Sequence[VariantFigures]) -> bool:
    if design.planned_sample_size is None and design.end_date_reached is None:
        return True
    smallest = min((v.participants for v in variants), default=0)
    by_sample = design.planned_sample_size is not None and smallest >= design.planned_sample_size
    return by_sample or bool(design.end_date_reached)


def _power(design: Design, variants: Sequence[VariantFigures], control: VariantFigures, alpha: float) -> PowerFigures:
    smallest = min((v.participants for v in variants), default=0)
    baseline = conversion_rate(control.participants, control.conversions)
    tuning = design.sequential_tuning if design.engine == SEQUENTIAL else None
    mde = needed = None
    if baseline is not None:
        mde = power.minimum_detectable_effect(
            baseline=baseline,
            participants_per_variant=smallest,
            alpha=alpha,
            power=design.power,
            sequential_tuning=tuning,
        )
        if design.target_mde is not None:
            found = power.sample_size_per_variant(
                baseline=baseline,
                relative_lift=design.target_mde,
                alpha=alpha,
                power=design.power,
                sequential_tuning=tuning,
            )
            needed = None if found is None else float(found)
    goal = design.planned_sample_size or needed
    per_day = smallest / design.days_running if design.days_running and design.days_running > 0 else None
    remaining = None
    if goal is not None and per_day:
        remaining = max(0.0, (goal - smallest) / per_day)
    return PowerFigures(
        baseline_rate=baseline,
        participants_per_variant=smallest,
        minimum_detectable_effect=_finite(mde),
        target_mde=design.target_mde,
        power=design.power,
        sample_size_per_variant=needed,
        planned_sample_size=design.planned_sample_size,
        progress=None if not goal else smallest / goal,
        days_running=design.days_running,
        participants_per_day=per_day,
        days_remaining=_finite(remaining),
        plan_reached=_plan_reached(design, variants),
    )


@dataclass
class _EngineView:
    """A treatment's figures under the engine, as the engine works them out (all None for
    control or without data). Each is a figure of `VariantStatistics` of the same name and
    reaches it through `figures()`, except `INTERNAL`'s, which only the decision reads."""

    INTERNAL: ClassVar[frozenset[str]] = frozenset({"expected_loss_control"})

    z_statistic: float | None = None
    p_value: float | None = None
    lift: float | None = None
    lift_stddev: float | None = None
    lift_interval: Interval | None = None
    decision_interval: Interval | None = None
    chance_to_win: float | None = None
    expected_loss: float | None = None
    expected_loss_control: float | None = None
    variance_reduction: float | None = None

    def figures(self) -> dict[str, Any]:
        """The figures by name, NaN and infinity as None (a name VariantStatistics does not
        declare fails its construction)."""
        values = {field.name: getattr(self, field.name) for field in fields(self) if field.name not in self.INTERNAL}
        return {name: v if isinstance(v, Interval) else _finite(v) for name, v in values.items()}


@dataclass(frozen=True)
class _Means:
    treatment: cuped.Mean
    control: cuped.Mean
    plain_treatment: cuped.Mean | None
    plain_control: cuped.Mean | None
    adjusted: bool


def _engine_view(
    variant: VariantFigures, control: VariantFigures, means: _Means, *, design: Design, confidence: float
) -> _EngineView:
    alpha = 1 - confidence
    n_c, x_c = control.participants, control.conversions
    relative = cuped.relative_effect(means.treatment, means.control)
    absolute = cuped.absolute_effect(means.treatment, means.control)
    n = variant.participants + n_c
    view = _EngineView()
    test = two_proportion_z_test(variant.participants, variant.conversions, n_c, x_c)
    view.z_statistic = None if test is None else test.statistic
    if relative is not None:
        view.lift, view.lift_stddev = relative.estimate, math.sqrt(relative.variance)
        plain_treatment, plain_control = means.plain_treatment, means.plain_control
        plain_relative = (
            cuped.relative_effect(plain_treatment, plain_control) if plain_treatment and plain_control else None
        )
        if means.adjusted and plain_relative is not None and plain_relative.variance > 0:
            view.variance_reduction = 1 - relative.variance / plain_relative.variance
    if design.engine == FIXED_HORIZON:
        if means.adjusted and absolute is not None and absolute.variance > 0:
            view.z_statistic = absolute.estimate / math.sqrt(absolute.variance)
            view.p_value = min(1.0, 2 * float(_scipy.norm.sf(abs(view.z_statistic))))
        elif test is not None:
            view.p_value = test.p_value
        view.lift_interval = _wald(relative, confidence)
        view.decision_interval = (
            _wald(absolute, confidence)
            if means.adjusted
            else absolute_lift_interval(variant.participants, variant.conversions, n_c, x_c, confidence)
        )
    elif design.engine == SEQUENTIAL:
        tuning = design.sequential_tuning
        if relative is not None and alpha > 0:
            view.p_value = sequential.p_value(relative.estimate, relative.variance, n, alpha, tuning)
            view.lift_interval = sequential.interval(relative.estimate, relative.variance, n, alpha, tuning)
        if absolute is not None and alpha > 0:
            view.decision_interval = sequential.interval(absolute.estimate, absolute.variance, n, alpha, tuning)
    else:
        prior = design.prior_mean is not None and design.prior_variance is not None
        if relative is not None:
            posterior = bayesian.gaussian_effect(
                relative.estimate,
                relative.variance,
                confidence=confidence,
                prior_mean=design.prior_mean,
                prior_variance=design.prior_variance,
            )
            if posterior is not None:
                view.lift, view.lift_stddev, view.lift_interval = posterior.mean, posterior.stddev, posterior.interval
                view.chance_to_win = posterior.chance_to_win
                view.expected_loss = posterior.expected_loss
                view.expected_loss_control = posterior.expected_loss_control
        if absolute is not None:
            # The same prior on the absolute scale: the relative one times control's rate.
            scale = means.control.mean
            scaled = prior and scale > 0 and design.prior_mean is not None and design.prior_variance is not None
            absolute_posterior = bayesian.gaussian_effect(
                absolute.estimate,
                absolute.variance,
                confidence=confidence,
                prior_mean=design.prior_mean * scale if scaled and design.prior_mean is not None else None,
                prior_variance=design.prior_variance * scale**2
                if scaled and design.prior_variance is not None
                else None,
            )
            view.decision_interval = None if absolute_posterior is None else absolute_posterior.interval
    view.p_value = _finite(view.p_value)
    return view


def experiment_statistics(
    variants: Sequence[VariantFigures], *, confidence: float, min_sample_size: int, design: Design | None = None
) -> ExperimentStatistics:
    """Every variant against the one control, the sample ratio check, and the decision."""
    design = design or Design()
    if design.engine not in ENGINES:
        raise ValueError(f"unknown engine {design.engine!r}; choose among {', '.join(ENGINES)}")
    if design.correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {design.correction!r}; choose among {', '.join(CORRECTIONS)}")
    controls = [v for v in variants if v.is_control]
    if len(controls) != 1:
        raise ValueError(f"exactly one variant must be the control; {len(controls)} are")
    control = controls[0]
    control_index = variants.index(control)
    alpha = 1 - confidence
    n_c, x_c = control.participants, control.conversions
    means, theta, adjusted = _means(variants)
    plain_means = [cuped.conversion_mean(v.participants, v.conversions) for v in variants]
    control_mean, plain_control = means[control_index], plain_means[control_index]

    views: list[_EngineView] = []
    for variant, mean, plain in zip(variants, means, plain_means, strict=True):
        if variant.is_control or mean is None or control_mean is None:
            views.append(_EngineView())
            continue
        views.append(
            _engine_view(
                variant,
                control,
                _Means(mean, control_mean, plain, plain_control, adjusted),
                design=design,
                confidence=confidence,
            )
        )
    p_values = [view.p_value for view in views]
    correct = holm if design.correction == HOLM else benjamini_hochberg
    corrected = correct(p_values)

    weight_total = sum(v.weight for v in variants)
    rows: list[VariantStatistics] = []
    for variant, view, adjusted_p in zip(variants, views, corrected, strict=True):
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
        guardrails = (
            tuple(_guardrail(variant, control, design, confidence, revenue_p) for _ in design.guardrails)
            if treatment
            else ()
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
                adjusted_p_value=adjusted_p,
                revenue_per_user=variant.revenue_per_user,
                revenue_per_user_lift=revenue_lift,
                revenue_p_value=revenue_p,
                meets_min_sample_size=n >= min_sample_size and n > 0,
                guardrails=guardrails,
                **view.figures(),
            )
        )
    srm = sample_ratio_mismatch([v.participants for v in variants], [v.weight for v in variants])
    power_figures = _power(design, variants, control, alpha)
    control_losses = [view.expected_loss_control for view in views if view.expected_loss_control is not None]
    winner, level, reasons, state = _decide(
        rows,
        srm,
        design=design,
        alpha=alpha,
        confidence=confidence,
        min_sample_size=min_sample_size,
        plan_reached=power_figures.plan_reached,
        control_losses=control_losses,
    )
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
        engine=design.engine,
        correction=design.correction,
        state=state,
        power=power_figures,
        cuped_theta=_finite(theta),
    )


def _decide(
    rows: Sequence[VariantStatistics],
    srm: SampleRatioMismatch,
    *,
    design: Design,
    alpha: float,
    confidence: float,
    min_sample_size: int,
    plan_reached: bool,
    control_losses: list[float],
) -> tuple[str | None, float | None, list[str], str]:
    reasons: list[str] = []
    if design.engine == FIXED_HORIZON and not plan_reached:
        smallest = min((row.participants for row in rows), default=0)
        planned = (
            f"{smallest:,} of the planned {design.planned_sample_size:,} participants per variant"
            if design.planned_sample_size is not None
            else "the planned end date has not passed"
        )
        reasons.append(
            f"Interim look: a fixed-horizon test decides once, at the planned sample or end date ({planned}); "
            "nothing is declared before."
        )
        return None, None, reasons, INTERIM
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
    if design.engine == BAYESIAN:
        better = [
            row
            for row in treatments
            if row.chance_to_win is not None
            and row.chance_to_win >= confidence
            and row.expected_loss is not None
            and row.expected_loss <= design.risk_threshold
        ]
        worse = [row for row in treatments if row.chance_to_win is not None and 1 - row.chance_to_win >= confidence]
        control_safe = bool(control_losses) and max(control_losses) <= design.risk_threshold
    else:

        def significant(row: VariantStatistics) -> bool:
            return row.adjusted_p_value is not None and row.adjusted_p_value < alpha

        better = [row for row in treatments if significant(row) and (row.lift or row.absolute_lift or 0) > 0]
        worse = [row for row in treatments if significant(row) and (row.lift or row.absolute_lift or 0) < 0]
        control_safe = True
    blocked = [row for row in better if any(g.worse for g in row.guardrails)]
    for row in blocked:
        metrics = ", ".join(g.metric for g in row.guardrails if g.worse)
        reasons.append(f"{row.key} beats control but its guardrail {metrics} is significantly worse.")
    better = [row for row in better if row not in blocked]
    winner: VariantStatistics | None = None
    level: float | None = None
    if better:
        if design.engine == BAYESIAN:
            winner = max(better, key=lambda row: (row.chance_to_win or 0.0, row.lift or 0.0))
            level = winner.chance_to_win
        else:
            # Several treatments beat control: the best observed rate (then the stronger evidence).
            winner = max(better, key=lambda row: (row.conversion_rate or 0.0, -(row.adjusted_p_value or 0.0)))
            level = 1 - (winner.adjusted_p_value or 0.0)
    elif treatments and len(worse) == len(treatments) and control_safe:
        winner = control
        if design.engine == BAYESIAN:
            level = min(1 - (row.chance_to_win or 0.0) for row in worse)
        else:
            level = 1 - max(row.adjusted_p_value or 0.0 for row in worse)
    elif not blocked:
        reasons.append(_no_winner_reason(design, treatments, confidence))
    if reasons or winner is None:
        return None, None, reasons, INCONCLUSIVE
    return winner.key, level, reasons, DECIDED


def _no_winner_reason(design: Design, treatments: Sequence[VariantStatistics], confidence: float) -> str:
    if design.engine == BAYESIAN:
        chances = [row.chance_to_win for row in treatments if row.chance_to_win is not None]
        best = f" (best chance to win {max(chances):.1%})" if chances else " (no chance to win is defined)"
        return (
            f"No treatment has a chance to beat control of at least {confidence:.2%} with an expected loss "
            f"of at most {design.risk_threshold:.2%}, nor is control that clearly better{best}."
        )
    name = "Holm" if design.correction == HOLM else "Benjamini-Hochberg"
    kind = "always-valid " if design.engine == SEQUENTIAL else ""
    defined = [row.adjusted_p_value for row in treatments if row.adjusted_p_value is not None]
    smallest = f" (smallest {name}-adjusted {kind}p = {min(defined):.3g})" if defined else " (no p-value is defined)"
    return (
        f"No treatment beats control, nor does control beat every treatment, at {confidence:.2%} confidence{smallest}."
    )
