"""advanced.experiments.stats against independent references (statsmodels, scipy, direct formulas).

Every figure of `experiment_statistics` is compared, on hundreds of generated experiments
(2-4 variants, unequal weights as fractions or percentages, samples from 0 to millions,
conversions from none to all), with the reference named in the brief of each check, within
1e-9 relative (1e-12 absolute for figures near 0). Undefined figures must be None exactly
where the reference is undefined (NaN, or no participants).
"""

from __future__ import annotations

import gc
import math
import os
import pathlib
import random
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint, proportions_ztest

from advanced.experiments import stats
from advanced.experiments.stats import VariantFigures, experiment_statistics

CASES = 400
REL = 1e-9
ABS = 1e-12


def close(actual: float | None, expected: float) -> bool:
    return actual is not None and math.isclose(actual, expected, rel_tol=REL, abs_tol=ABS)


def defined(value: float) -> bool:
    return bool(np.isfinite(value))


@contextmanager
def quiet() -> Iterator[None]:
    """The references divide by zero on purpose in the edge cases; their warnings are noise."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


@pytest.fixture
def fast_multipletests(monkeypatch: pytest.MonkeyPatch) -> None:
    # multipletests(method="holm") runs a full gc.collect() on every call: ~0.1 s each in a
    # process holding Django, a minute for these families. Skipped for this test only.
    monkeypatch.setattr(gc, "collect", lambda generation=2: 0)


def _sample_size(rng: random.Random) -> int:
    kind = rng.random()
    if kind < 0.08:
        return 0
    if kind < 0.2:
        return rng.choice([1, 2, 3])
    if kind < 0.5:
        return rng.randint(4, 200)
    if kind < 0.9:
        return rng.randint(200, 50_000)
    return rng.randint(50_000, 3_000_000)


def _conversions(rng: random.Random, n: int) -> int:
    if n == 0:
        return 0
    kind = rng.random()
    if kind < 0.1:
        return 0
    if kind < 0.17:
        return n
    return min(n, max(0, round(n * rng.uniform(0.001, 0.3))))


def generated_case(seed: int) -> tuple[list[VariantFigures], float, int]:
    """One experiment: variants with their figures, a confidence threshold, a minimum sample."""
    rng = random.Random(seed)
    count = rng.choice([2, 2, 3, 4])
    raw = [rng.uniform(0.5, 5) for _ in range(count)]
    scale = 100 if rng.random() < 0.3 else 1
    weights = [scale * w / sum(raw) for w in raw]
    control = rng.randrange(count)
    variants = []
    for index in range(count):
        n = _sample_size(rng)
        revenue = rng.random() < 0.8
        variants.append(
            VariantFigures(
                key=f"v{index}",
                participants=n,
                conversions=_conversions(rng, n),
                weight=weights[index],
                is_control=index == control,
                revenue_per_user=rng.uniform(0, 20) if revenue else None,
                revenue_per_user_stddev=(0.0 if rng.random() < 0.05 else rng.uniform(0.1, 60)) if revenue else None,
            )
        )
    confidence = rng.choice([0.8, 0.9, 0.95, 0.95, 0.99, 0.9999, round(rng.uniform(0.5, 0.999), 4)])
    return variants, confidence, rng.choice([0, 1, 100, 1000])


def generated_cases() -> Iterator[tuple[int, list[VariantFigures], float, int]]:
    for seed in range(CASES):
        yield (seed, *generated_case(seed))


def _control(variants: list[VariantFigures]) -> VariantFigures:
    return next(v for v in variants if v.is_control)


# --- figure by figure against the references ---------------------------------------------


def test_conversion_rate_and_wald_interval_match_statsmodels() -> None:
    checked = 0
    for seed, variants, confidence, min_sample in generated_cases():
        result = experiment_statistics(variants, confidence=confidence, min_sample_size=min_sample)
        for given_, row in zip(variants, result.variants, strict=True):
            n, x = given_.participants, given_.conversions
            if n == 0:
                assert (row.conversion_rate, row.conversion_rate_interval) == (None, None), seed
                continue
            assert close(row.conversion_rate, x / n), seed
            with quiet():
                low, high = proportion_confint(x, n, alpha=1 - confidence, method="normal")
            assert row.conversion_rate_interval is not None, seed
            assert close(row.conversion_rate_interval.lower, low), (seed, row, low)
            assert close(row.conversion_rate_interval.upper, high), (seed, row, high)
            checked += 1
    assert checked > 500


def test_z_test_matches_statsmodels_pooled_two_sided() -> None:
    checked = undefined = 0
    for seed, variants, confidence, min_sample in generated_cases():
        result = experiment_statistics(variants, confidence=confidence, min_sample_size=min_sample)
        control = _control(variants)
        for given_, row in zip(variants, result.variants, strict=True):
            if given_.is_control:
                assert (row.z_statistic, row.p_value, row.adjusted_p_value) == (None, None, None)
                continue
            if given_.participants == 0 or control.participants == 0:
                assert (row.z_statistic, row.p_value) == (None, None), seed
                undefined += 1
                continue
            with quiet():
                z, p = proportions_ztest(
                    np.array([given_.conversions, control.conversions]),
                    np.array([given_.participants, control.participants]),
                    alternative="two-sided",
                )
            if not defined(p):
                # Everyone or no one converted on both sides: the pooled standard error is 0.
                assert (row.z_statistic, row.p_value) == (None, None), (seed, row)
                undefined += 1
                continue
            assert close(row.z_statistic, float(z)), (seed, row, z)
            assert close(row.p_value, float(p)), (seed, row, p)
            checked += 1
    assert checked > 300 and undefined > 10, (checked, undefined)


def test_holm_adjustment_matches_statsmodels_multipletests(fast_multipletests: None) -> None:
    families = 0
    for seed, variants, confidence, min_sample in generated_cases():
        result = experiment_statistics(variants, confidence=confidence, min_sample_size=min_sample)
        rows = [row for row in result.variants if row.p_value is not None]
        if not rows:
            assert all(row.adjusted_p_value is None for row in result.variants), seed
            continue
        _, reference, _, _ = multipletests([row.p_value for row in rows], method="holm")
        for row, expected in zip(rows, reference, strict=True):
            assert close(row.adjusted_p_value, float(expected)), (seed, row, expected)
        families += len(rows) > 1
    assert families > 50


def test_holm_directly_on_many_families(fast_multipletests: None) -> None:
    rng = random.Random(7)
    for _ in range(300):
        size = rng.randint(1, 6)
        p_values: list[float | None] = [rng.choice([rng.random(), rng.random() ** 6, 1.0, 0.0]) for _ in range(size)]
        if rng.random() < 0.3:
            p_values[rng.randrange(size)] = None
        adjusted = stats.holm(p_values)
        present = [p for p in p_values if p is not None]
        expected = iter(multipletests(present, method="holm")[1]) if present else iter(())
        for p, a in zip(p_values, adjusted, strict=True):
            assert (a is None) if p is None else close(a, float(next(expected)))


def test_absolute_lift_and_interval_match_the_unpooled_formula() -> None:
    checked = 0
    for seed, variants, confidence, min_sample in generated_cases():
        result = experiment_statistics(variants, confidence=confidence, min_sample_size=min_sample)
        control = _control(variants)
        z = scipy_stats.norm.ppf(1 - (1 - confidence) / 2)
        for given_, row in zip(variants, result.variants, strict=True):
            if given_.is_control or given_.participants == 0 or control.participants == 0:
                assert (row.absolute_lift, row.absolute_lift_interval) == (None, None), seed
                continue
            p_t = given_.conversions / given_.participants
            p_c = control.conversions / control.participants
            se = math.sqrt(p_t * (1 - p_t) / given_.participants + p_c * (1 - p_c) / control.participants)
            assert close(row.absolute_lift, p_t - p_c), seed
            assert row.absolute_lift_interval is not None
            assert close(row.absolute_lift_interval.lower, p_t - p_c - z * se), (seed, row)
            assert close(row.absolute_lift_interval.upper, p_t - p_c + z * se), (seed, row)
            checked += 1
    assert checked > 300


def test_relative_lift_and_delta_method_interval_match_the_formula() -> None:
    checked = 0
    for seed, variants, confidence, min_sample in generated_cases():
        result = experiment_statistics(variants, confidence=confidence, min_sample_size=min_sample)
        control = _control(variants)
        z = scipy_stats.norm.ppf(1 - (1 - confidence) / 2)
        for given_, row in zip(variants, result.variants, strict=True):
            if given_.is_control or given_.participants == 0 or control.participants == 0 or control.conversions == 0:
                assert (row.relative_lift, row.relative_lift_interval) == (None, None), seed
                continue
            n_t, n_c = given_.participants, control.participants
            p_t, p_c = given_.conversions / n_t, control.conversions / n_c
            ratio = p_t / p_c
            # Var(p_t/p_c) by the delta method: gradient (1/p_c, -p_t/p_c²).
            variance = (1 / p_c) ** 2 * p_t * (1 - p_t) / n_t + (p_t / p_c**2) ** 2 * p_c * (1 - p_c) / n_c
            assert close(row.relative_lift, ratio - 1), seed
            assert row.relative_lift_interval is not None
            assert close(row.relative_lift_interval.lower, ratio - 1 - z * math.sqrt(variance)), (seed, row)
            assert close(row.relative_lift_interval.upper, ratio - 1 + z * math.sqrt(variance)), (seed, row)
            checked += 1
    assert checked > 250


def test_welch_p_value_matches_scipy_ttest_ind_from_stats() -> None:
    checked = undefined = 0
    for seed, variants, confidence, min_sample in generated_cases():
        result = experiment_statistics(variants, confidence=confidence, min_sample_size=min_sample)
        control = _control(variants)
        for given_, row in zip(variants, result.variants, strict=True):
            if given_.is_control or given_.revenue_per_user is None or control.revenue_per_user is None:
                assert row.revenue_p_value is None and (given_.is_control or row.revenue_per_user_lift is None)
                continue
            assert close(row.revenue_per_user_lift, given_.revenue_per_user - control.revenue_per_user)
            assert given_.revenue_per_user_stddev is not None and control.revenue_per_user_stddev is not None
            with quiet():
                reference = scipy_stats.ttest_ind_from_stats(
                    given_.revenue_per_user,
                    given_.revenue_per_user_stddev,
                    given_.participants,
                    control.revenue_per_user,
                    control.revenue_per_user_stddev,
                    control.participants,
                    equal_var=False,
                ).pvalue
            if given_.participants < 2 or control.participants < 2 or not defined(reference):
                assert row.revenue_p_value is None, (seed, row, reference)
                undefined += 1
                continue
            assert close(row.revenue_p_value, float(reference)), (seed, row, reference)
            checked += 1
    assert checked > 200 and undefined > 5, (checked, undefined)


def test_sample_ratio_mismatch_matches_scipy_chisquare() -> None:
    checked = flagged = 0
    for seed, variants, confidence, min_sample in generated_cases():
        srm = experiment_statistics(variants, confidence=confidence, min_sample_size=min_sample).sample_ratio_mismatch
        observed = np.array([v.participants for v in variants], dtype=float)
        if observed.sum() == 0:
            assert srm == stats.SampleRatioMismatch(statistic=None, p_value=None, flagged=False)
            continue
        weights = np.array([v.weight for v in variants])
        reference = scipy_stats.chisquare(observed, f_exp=observed.sum() * weights / weights.sum())
        assert close(srm.statistic, float(reference.statistic)), seed
        assert close(srm.p_value, float(reference.pvalue)), seed
        assert srm.flagged == (reference.pvalue < 0.001)
        checked += 1
        flagged += srm.flagged
    assert checked > 350 and flagged > 50, (checked, flagged)


def test_expected_shares_normalise_fractions_and_percentages() -> None:
    for _, variants, confidence, min_sample in generated_cases():
        result = experiment_statistics(variants, confidence=confidence, min_sample_size=min_sample)
        total = sum(v.weight for v in variants)
        for given_, row in zip(variants, result.variants, strict=True):
            assert close(row.expected_share, given_.weight / total)


# --- edge cases --------------------------------------------------------------------------


def _walk(value: Any) -> Iterator[Any]:
    if is_dataclass(value) and not isinstance(value, type):
        for field in fields(value):
            yield from _walk(getattr(value, field.name))
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _walk(item)
    else:
        yield value


def assert_no_nan(result: stats.ExperimentStatistics) -> None:
    for value in _walk(result):
        if isinstance(value, float):
            assert math.isfinite(value), result


def _two(control: tuple[int, int], treatment: tuple[int, int], **extra: Any) -> list[VariantFigures]:
    return [
        VariantFigures("control", control[0], control[1], 0.5, is_control=True, **extra),
        VariantFigures("treatment", treatment[0], treatment[1], 0.5, **extra),
    ]


@pytest.mark.parametrize(
    ("control", "treatment"),
    [
        ((1000, 0), (1000, 0)),  # no conversions anywhere
        ((1000, 1000), (1000, 1000)),  # everyone converted
        ((0, 0), (0, 0)),  # no participants
        ((0, 0), (500, 20)),  # no control participants
        ((1, 1), (1, 0)),  # a single participant each
        ((2, 1), (2, 2)),
        ((1, 0), (1, 0)),
        ((500, 0), (500, 25)),  # control never converts: relative lift undefined
        ((500, 25), (500, 0)),  # treatment never converts: relative lift is -100 %
    ],
)
def test_edge_cases_never_produce_nan_and_undefined_is_none(
    control: tuple[int, int], treatment: tuple[int, int]
) -> None:
    result = experiment_statistics(_two(control, treatment), confidence=0.95, min_sample_size=0)
    assert_no_nan(result)
    row = result.variants[1]
    (n_c, x_c), (n_t, x_t) = control, treatment
    if n_c == 0 or n_t == 0:
        assert (row.absolute_lift, row.p_value, row.absolute_lift_interval) == (None, None, None)
    pooled = (x_c + x_t) / (n_c + n_t) if n_c + n_t else 0
    if pooled in (0, 1):
        assert row.p_value is None and row.adjusted_p_value is None
    if x_c == 0:
        assert row.relative_lift is None and row.relative_lift_interval is None
    if row.p_value is None:
        assert result.winner is None


def test_everyone_converting_has_degenerate_intervals_not_nan() -> None:
    result = experiment_statistics(_two((1000, 1000), (1000, 1000)), confidence=0.95, min_sample_size=0)
    row = result.variants[1]
    assert row.conversion_rate == 1.0 and row.conversion_rate_interval == stats.Interval(1.0, 1.0)
    assert row.absolute_lift_interval == stats.Interval(0.0, 0.0)
    assert row.relative_lift == 0.0 and row.relative_lift_interval == stats.Interval(0.0, 0.0)


def test_treatment_without_conversions_has_relative_lift_minus_one() -> None:
    result = experiment_statistics(_two((500, 25), (500, 0)), confidence=0.95, min_sample_size=0)
    row = result.variants[1]
    # Like every Wald-type interval, the delta method collapses where a rate is 0.
    assert row.relative_lift == -1.0 and row.relative_lift_interval == stats.Interval(-1.0, -1.0)
    assert row.absolute_lift_interval is not None and row.absolute_lift_interval.lower < -0.05


def test_confidence_of_one_gives_no_intervals_and_no_winner() -> None:
    result = experiment_statistics(_two((10_000, 100), (10_000, 900)), confidence=1.0, min_sample_size=0)
    assert_no_nan(result)
    row = result.variants[1]
    assert row.conversion_rate_interval is None and row.absolute_lift_interval is None
    assert row.p_value is not None and row.p_value < 1e-100
    assert result.winner is None and result.alpha == 0


def test_welch_is_undefined_below_two_participants_or_without_spread() -> None:
    assert stats.welch_t_test(5.0, 1.0, 1, 4.0, 1.0, 100) is None
    assert stats.welch_t_test(5.0, 0.0, 50, 4.0, 0.0, 100) is None
    assert stats.welch_t_test(5.0, 0.0, 50, 4.0, 2.0, 100) is not None


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(
    data=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10_000_000),
            st.floats(min_value=0, max_value=1),
            st.floats(min_value=1e-6, max_value=100),
            st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)),
            st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)),
        ),
        min_size=2,
        max_size=5,
    ),
    confidence=st.floats(min_value=0, max_value=1),
    min_sample=st.integers(min_value=0, max_value=1000),
)
def test_any_input_gives_finite_figures_or_none(
    data: list[tuple[int, float, float, float | None, float | None]], confidence: float, min_sample: int
) -> None:
    variants = [
        VariantFigures(f"v{i}", n, math.floor(n * share), weight, i == 0, revenue, spread)
        for i, (n, share, weight, revenue, spread) in enumerate(data)
    ]
    result = experiment_statistics(variants, confidence=confidence, min_sample_size=min_sample)
    assert_no_nan(result)
    for row in result.variants:
        for p in (row.p_value, row.adjusted_p_value, row.revenue_p_value):
            assert p is None or 0 <= p <= 1
        for interval in (row.conversion_rate_interval, row.absolute_lift_interval, row.relative_lift_interval):
            assert interval is None or interval.lower <= interval.upper


# --- the decision ------------------------------------------------------------------------


def test_clearly_better_treatment_wins_with_confidence_one_minus_adjusted_p() -> None:
    result = experiment_statistics(_two((10_000, 300), (10_000, 450)), confidence=0.95, min_sample_size=1000)
    row = result.variants[1]
    assert result.winner == "treatment" and result.reasons == ()
    assert row.adjusted_p_value is not None and row.adjusted_p_value < 1e-6
    assert close(result.confidence_level, 1 - row.adjusted_p_value)


def test_no_winner_below_min_sample_size_even_when_significant() -> None:
    result = experiment_statistics(_two((10_000, 300), (900, 90)), confidence=0.95, min_sample_size=1000)
    assert result.variants[1].p_value is not None and result.variants[1].p_value < 0.001
    assert result.winner is None and result.confidence_level is None
    assert any("treatment (900)" in reason for reason in result.reasons)


def test_no_winner_when_not_significant() -> None:
    result = experiment_statistics(_two((10_000, 300), (10_000, 310)), confidence=0.95, min_sample_size=100)
    assert result.winner is None and any("No treatment beats control" in r for r in result.reasons)


def test_sample_ratio_mismatch_blocks_the_winner() -> None:
    variants = _two((10_000, 300), (12_000, 600))
    result = experiment_statistics(variants, confidence=0.95, min_sample_size=100)
    assert result.sample_ratio_mismatch.flagged
    assert result.winner is None and any("Sample ratio mismatch" in r for r in result.reasons)
    # The same split is what 45/55 weights plan: no mismatch, and the treatment wins.
    planned = [
        VariantFigures("control", 10_000, 300, 45, is_control=True),
        VariantFigures("treatment", 12_000, 600, 55),
    ]
    result = experiment_statistics(planned, confidence=0.95, min_sample_size=100)
    assert not result.sample_ratio_mismatch.flagged and result.winner == "treatment"


def test_control_wins_only_when_it_beats_every_treatment() -> None:
    def three(third: int) -> list[VariantFigures]:
        return [
            VariantFigures("control", 10_000, 500, 1 / 3, is_control=True),
            VariantFigures("a", 10_000, 300, 1 / 3),
            VariantFigures("b", 10_000, third, 1 / 3),
        ]

    result = experiment_statistics(three(320), confidence=0.95, min_sample_size=100)
    worst = max(row.adjusted_p_value or 0 for row in result.variants)
    assert result.winner == "control" and close(result.confidence_level, 1 - worst)
    # One treatment no different from control: control has not beaten them all.
    assert experiment_statistics(three(495), confidence=0.95, min_sample_size=100).winner is None


def test_among_several_winning_treatments_the_best_rate_wins() -> None:
    variants = [
        VariantFigures("control", 20_000, 400, 25, is_control=True),
        VariantFigures("a", 20_000, 600, 25),
        VariantFigures("b", 20_000, 700, 25),
        VariantFigures("c", 20_000, 390, 25),
    ]
    result = experiment_statistics(variants, confidence=0.99, min_sample_size=100)
    assert result.winner == "b"
    assert close(result.confidence_level, 1 - (result.variants[2].adjusted_p_value or 0))


def test_holm_adjustment_can_withhold_a_winner_the_raw_p_value_would_give() -> None:
    # Raw p just under 0.05 for "a", but four treatments: Holm multiplies the smallest by 4.
    variants = [VariantFigures("control", 10_000, 500, 0.2, is_control=True)] + [
        VariantFigures(key, 10_000, conversions, 0.2)
        for key, conversions in [("a", 563), ("b", 505), ("c", 498), ("d", 510)]
    ]
    result = experiment_statistics(variants, confidence=0.95, min_sample_size=100)
    a = result.variants[1]
    assert a.p_value is not None and a.p_value < 0.05 <= (a.adjusted_p_value or 0)
    assert result.winner is None


def test_exactly_one_control_is_required() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        experiment_statistics(
            [VariantFigures("a", 10, 1, 0.5), VariantFigures("b", 10, 1, 0.5)], confidence=0.95, min_sample_size=0
        )


def test_welch_with_vanishingly_small_variances_matches_scipy_instead_of_dividing_by_zero() -> None:
    # share**2 underflows to 0.0 here; the degrees of freedom must not.
    figures = (1.0, 1e-160, 2, 0.0, 1e-160, 2)
    expected = float(scipy_stats.ttest_ind_from_stats(*figures, equal_var=False).pvalue)
    assert stats.welch_t_test(*figures) == expected == 0.0
    # Welch's test is scale-free: the same figures in units 1e150 times smaller give the same
    # p-value (scipy's own degrees of freedom underflow there, so it is not the reference).
    figures = (1.0, 1.0, 3, 0.0, 2.0, 5)
    tiny = (1e-150, 1e-150, 3, 0.0, 2e-150, 5)
    assert stats.welch_t_test(*tiny) == pytest.approx(stats.welch_t_test(*figures), rel=1e-9)


def test_the_pure_statistics_import_no_django() -> None:
    # A fresh interpreter: what importing the statistics (figures' declarations included) loads.
    probe = (
        "import sys, advanced.experiments.stats, advanced.experiments.stats.figures; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'rest_framework', 'drf_spectacular'}))"
    )
    environment = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}
    root = pathlib.Path(__file__).resolve().parents[2]
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=environment, cwd=root
    )
    assert found.stdout.strip() == "[]"
