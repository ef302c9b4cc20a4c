"""The experiment review screen of the back office: what staff read before shipping a variant.

Built from `experiment_review` (the analysis, computed without writing): per treatment the
relative lift with the engine's interval (the decision view), the cumulative lift over time
with the engine's band (sequential: the confidence sequence, which is valid at every look),
chance to win and expected loss (Bayesian), the sample ratio check, guardrails, and progress to
the plan. docs/experiments.md says what each number means. Also the one line a result is
to `manage.py analyze_experiments` (`summary_line`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from backoffice.charts import IntervalRow, Series, interval_chart, line_chart
from tenancy.errors import Refused

from . import stats
from .models import Experiment
from .services import AnalysisResult, VariantAnalysis, experiment_review

SHORT_BANDS = {
    stats.SEQUENTIAL: "confidence sequence",
    stats.FIXED_HORIZON: "confidence interval",
    stats.BAYESIAN: "credible interval",
}
ENGINE_BANDS = {
    stats.SEQUENTIAL: "confidence sequence (valid at every look)",
    stats.FIXED_HORIZON: "confidence interval (valid at the planned sample only)",
    stats.BAYESIAN: "credible interval",
}


def signed_percent(value: float) -> str:
    return f"{value * 100:+.1f}%"


def _percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def _interval(interval: stats.Interval | None) -> str:
    return "—" if interval is None else f"{signed_percent(interval.lower)} to {signed_percent(interval.upper)}"


# The review table's figures of a treatment: the cell (the template's `row.<name>`) and how it
# shows the treatment's `VariantStatistics`. A figure staff should read is one line here (and
# its column in the template).
TREATMENT_FIGURES: dict[str, Callable[[stats.VariantStatistics], str]] = {
    "lift": lambda f: "—" if f.lift is None else signed_percent(f.lift),
    "interval": lambda f: _interval(f.lift_interval),
    "p_value": lambda f: "—" if f.adjusted_p_value is None else f"{f.adjusted_p_value:.4g}",
    "chance_to_win": lambda f: _percent(f.chance_to_win),
    "expected_loss": lambda f: _percent(f.expected_loss, 3),
    "variance_reduction": lambda f: _percent(f.variance_reduction),
}


def _treatment(variant: VariantAnalysis) -> dict[str, Any]:
    """One row of the review table: the treatment, its `TREATMENT_FIGURES` and its guardrails."""
    figures = variant.statistics
    return {
        "key": figures.key,
        "name": variant.name,
        **{name: show(figures) for name, show in TREATMENT_FIGURES.items()},
        "guardrails": [
            {
                "metric": g.metric,
                "lift": "—" if g.relative_lift is None else signed_percent(g.relative_lift),
                "worse": g.worse,
            }
            for g in figures.guardrails
        ],
    }


def lift_chart(result: AnalysisResult) -> SafeString:
    """Each treatment's relative lift with the engine's interval; 0 (no change) is the reference."""
    band = SHORT_BANDS.get(result.stats_engine, "interval")
    return interval_chart(
        rows=[
            IntervalRow(
                label=f"{name} ({v.key})" + (" ★ winner" if v.key == result.winner else ""),
                value=v.lift,
                lower=v.lift_interval.lower if v.lift_interval else None,
                upper=v.lift_interval.upper if v.lift_interval else None,
                detail=f"n = {v.participants:,}",
                highlight=v.key == result.winner,
            )
            for name, v in ((variant.name, variant.statistics) for variant in result.variants)
            if not v.is_control
        ],
        title=f"Relative lift over control with its {result.confidence_threshold:.0%} {band}",
        value_label="relative lift of the conversion rate",
        reference=0.0,
        reference_label="no change",
        value_format=signed_percent,
    )


def history_chart(result: AnalysisResult) -> SafeString:
    """The cumulative lift on each snapshot day with the lower and upper bound of that day."""
    days = sorted({point.snapshot_date for point in result.lift_history})
    labels = [day.isoformat() for day in days]
    series: list[Series] = []
    for variant in (v.statistics for v in result.variants):
        if variant.is_control:
            continue
        points = {p.snapshot_date: p for p in result.lift_history if p.variant_key == variant.key}
        for name, attribute in (("lift", "lift"), ("lower bound", "lower"), ("upper bound", "upper")):
            series.append(
                Series(
                    f"{variant.key} {name}",
                    [getattr(points[day], attribute) if day in points else None for day in days],
                )
            )
    band = SHORT_BANDS.get(result.stats_engine, "interval")
    return line_chart(
        series=series,
        x_labels=labels,
        title=f"Cumulative lift by day with that day's {band}",
        y_label="relative lift",
        value_format=signed_percent,
    )


def review_context(result: AnalysisResult) -> dict[str, Any]:
    power = result.power
    srm = result.sample_ratio_mismatch
    return {
        "result": result,
        "engine_band": ENGINE_BANDS.get(result.stats_engine, "interval"),
        "treatments": [_treatment(v) for v in result.variants if not v.statistics.is_control],
        "lift_chart": lift_chart(result),
        "history_chart": history_chart(result),
        "srm_text": (
            "no data"
            if srm.p_value is None
            else f"{'MISMATCH' if srm.flagged else 'ok'} (chi-square p = {srm.p_value:.3g})"
        ),
        "progress": None if power is None or power.progress is None else min(1.0, power.progress),
        "progress_text": "—" if power is None or power.progress is None else f"{power.progress:.0%}",
        "mde_text": "—" if power is None else _percent(power.minimum_detectable_effect),
        "needed_text": "—"
        if power is None or power.sample_size_per_variant is None
        else f"{power.sample_size_per_variant:,.0f}",
        "days_remaining_text": "—" if power is None or power.days_remaining is None else f"{power.days_remaining:,.0f}",
    }


def render_review(experiment: Experiment) -> SafeString:
    try:
        result = experiment_review(experiment=experiment)
    except Refused as exc:  # variants written before validation existed: say so, no 500
        reasons = "; ".join(message for _, message in exc.problems)
        return render_to_string("admin/advanced/experiment/review.html", {"error": reasons})
    return render_to_string("admin/advanced/experiment/review.html", review_context(result))


def _confidence(level: float | None) -> str:
    # Rounded down, as stored: 0.99999998 is not shown as a certain 1.0000.
    return "n/a" if level is None else f"{math.floor(level * 10_000) / 10_000:.4f}"


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def summary_line(result: AnalysisResult) -> str:
    """One line: the engine, the verdict, each treatment's p-values (Bayesian: chance to win and
    expected loss), and the sample ratio check."""
    if result.winner is not None:
        verdict = f"winner {result.winner} (confidence {_confidence(result.confidence_level)})"
    else:
        verdict = "no winner" + (f": {result.reasons[0]}" if result.reasons else "")
    if result.winning_variant != result.winner:
        verdict += f"; keeps recorded winner {result.winning_variant}"
    correction = "Holm" if result.multiple_testing_correction == stats.HOLM else "BH"
    treatments = [v.statistics for v in result.variants if not v.statistics.is_control]
    if result.stats_engine == stats.BAYESIAN:
        tests = ", ".join(
            f"{v.key} chance to win={_p(v.chance_to_win)} expected loss={_p(v.expected_loss)}" for v in treatments
        )
    else:
        tests = ", ".join(f"{v.key} p={_p(v.p_value)} ({correction} {_p(v.adjusted_p_value)})" for v in treatments)
    srm = result.sample_ratio_mismatch
    check = "SRM!" if srm.flagged else "SRM ok"
    return f"{result.stats_engine}: {verdict} | {tests} | {check} (p={_p(srm.p_value)})"
