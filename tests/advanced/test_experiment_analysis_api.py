"""The analysis design and CUPED aggregates over the API: validation (a 400 naming the field,
nothing written), the engines' answers of POST /experiments/{id}/analyze/ and what they store,
the bulk path of experiment results, the OpenAPI description, and the migration's defaults."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import typing
from decimal import Decimal
from typing import Annotated, Any

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection

from advanced.experiments import stats
from advanced.experiments.api.serializers import figure_fields
from advanced.experiments.factories import ExperimentFactory, ExperimentResultFactory, two_variants
from advanced.experiments.stats.figures import Doc
from advanced.models import Experiment, ExperimentResult
from tenancy.factories import ShopFactory
from tenancy.models import Shop
from tenancy.scope import atomic_scope, service_scope
from tests.fixtures.api import assert_error
from tests.fixtures.tenants import Actor

pytestmark = pytest.mark.django_db

EXPERIMENTS = "/api/v1/experiments/"
RESULTS = "/api/v1/experiment-results/"
DAY = datetime.date(2026, 3, 1)
NEW: dict[str, Any] = {
    "experiment_key": "free-shipping",
    "experiment_name": "Free shipping",
    "variants": two_variants(),
}


def experiments_of(actor: Actor) -> list[dict[str, Any]]:
    with atomic_scope(service_scope()):
        return list(Experiment.objects.filter(shop=actor.shop).values())


def results_count() -> int:
    with atomic_scope(service_scope()):
        return ExperimentResult.objects.count()


def snapshots(
    experiment: Experiment, figures: dict[str, tuple[int, int]], day: datetime.date = DAY, **extra: Any
) -> None:
    for key, (participants, conversions) in figures.items():
        ExperimentResultFactory(
            experiment=experiment,
            variant_key=key,
            snapshot_date=day,
            participants=participants,
            conversions=conversions,
            **extra.get(key, {}),
        )


def finite_or_null(value: Any) -> bool:
    if isinstance(value, dict):
        return all(finite_or_null(v) for v in value.values())
    if isinstance(value, list):
        return all(finite_or_null(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


# --- the design: defaults and refusals ---------------------------------------------------


def test_a_new_experiment_is_sequential_with_holm_and_a_revenue_guardrail(owner_a: Actor) -> None:
    response = owner_a.client.post(EXPERIMENTS, NEW, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["stats_engine"], body["multiple_testing_correction"], body["sequential_tuning"]) == (
        "sequential",
        "holm",
        5000,
    )
    assert body["guardrail_metrics"] == ["revenue_per_user"] and body["risk_threshold"] == "0.002500"
    assert experiments_of(owner_a)[0]["stats_engine"] == "sequential"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"stats_engine": "bandit"}, "stats_engine"),
        ({"stats_engine": "fixed_horizon"}, "stats_engine"),  # no plan
        ({"stats_engine": "bayesian", "prior_mean": "0.1"}, "prior_variance"),  # prior without a variance
        ({"stats_engine": "bayesian", "prior_variance": "0.1"}, "prior_mean"),
        ({"prior_mean": "0", "prior_variance": "0"}, "prior_variance"),
        ({"prior_mean": "NaN", "prior_variance": "1"}, "prior_mean"),
        ({"multiple_testing_correction": "bonferroni"}, "multiple_testing_correction"),
        ({"guardrail_metrics": ["bounce_rate"]}, "guardrail_metrics"),
        ({"guardrail_metrics": "revenue_per_user"}, "guardrail_metrics"),
        ({"guardrail_metrics": [1]}, "guardrail_metrics"),
        ({"guardrail_metrics": ["revenue_per_user", "revenue_per_user"]}, "guardrail_metrics"),
        ({"risk_threshold": "-0.1"}, "risk_threshold"),
        ({"sequential_tuning": 0}, "sequential_tuning"),
        ({"planned_sample_size": 0}, "planned_sample_size"),
        ({"target_mde": "0"}, "target_mde"),
        ({"target_mde": "Infinity"}, "target_mde"),
    ],
)
def test_a_bad_design_is_400_naming_the_field_and_writes_nothing(owner_a: Actor, extra: dict, field: str) -> None:
    assert_error(owner_a.client.post(EXPERIMENTS, {**NEW, **extra}, format="json"), 400, field=field)
    assert experiments_of(owner_a) == []


def test_fixed_horizon_with_a_plan_is_accepted(owner_a: Actor) -> None:
    for plan in ({"planned_sample_size": 20_000}, {"planned_end_date": "2026-04-01"}):
        payload = {
            **NEW,
            "experiment_key": f"k{len(plan)}{next(iter(plan))[8]}",
            "stats_engine": "fixed_horizon",
            **plan,
        }
        assert owner_a.client.post(EXPERIMENTS, payload, format="json").status_code == 201


def test_the_design_is_frozen_once_the_experiment_runs(owner_a: Actor) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop, status="running")
    before = experiments_of(owner_a)
    for change in ({"stats_engine": "bayesian"}, {"multiple_testing_correction": "benjamini_hochberg"}):
        response = owner_a.client.patch(f"{EXPERIMENTS}{experiment.pk}/", change, format="json")
        body = assert_error(response, 400, field=next(iter(change)))
        assert "only change while the experiment is a draft" in body["errors"][0]["message"]
    assert experiments_of(owner_a) == before
    # target_mde only informs the power figures: it may change.
    response = owner_a.client.patch(f"{EXPERIMENTS}{experiment.pk}/", {"target_mde": "0.05"}, format="json")
    assert response.status_code == 200, response.content


def test_a_draft_may_change_its_design(owner_a: Actor) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop, status="draft", started_at=None)
    change = {"stats_engine": "bayesian", "prior_mean": "0", "prior_variance": "0.09"}
    response = owner_a.client.patch(f"{EXPERIMENTS}{experiment.pk}/", change, format="json")
    assert response.status_code == 200, response.content
    assert experiments_of(owner_a)[0]["prior_variance"] == Decimal("0.09")


# --- CUPED aggregates on results ---------------------------------------------------------


def result_payload(experiment: Experiment, **extra: Any) -> dict[str, Any]:
    return {
        "experiment": experiment.pk,
        "variant_key": "control",
        "snapshot_date": "2026-03-01",
        "participants": 100,
        "conversions": 10,
        **extra,
    }


COVARIATES = {"covariate_sum": "120", "covariate_sum_squares": "400", "covariate_cross_sum": "30"}


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({**COVARIATES, "covariate_sum": "-1"}, "covariate_sum"),
        ({**COVARIATES, "covariate_cross_sum": "-0.5"}, "covariate_cross_sum"),
        ({"covariate_sum": "120"}, "covariate_sum_squares"),  # only part of the aggregates
        ({**COVARIATES, "covariate_sum_squares": "100"}, "covariate_sum_squares"),  # (Σx)² > n·Σx²
        ({**COVARIATES, "covariate_cross_sum": "121"}, "covariate_cross_sum"),  # Σxy > Σx
        ({**COVARIATES, "participants": 0, "conversions": 0}, "covariate_sum"),
        ({"conversions": 101}, "conversions"),
    ],
)
def test_bad_covariate_aggregates_are_400_naming_the_field(owner_a: Actor, extra: dict, field: str) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop)
    assert_error(owner_a.client.post(RESULTS, result_payload(experiment, **extra), format="json"), 400, field=field)
    assert results_count() == 0


def test_consistent_covariate_aggregates_are_stored(owner_a: Actor) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop)
    response = owner_a.client.post(RESULTS, result_payload(experiment, **COVARIATES), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["covariate_sum"] == "120.0000" and response.json()["chance_to_win"] is None
    with atomic_scope(service_scope()):
        row = ExperimentResult.objects.get()
    assert (row.covariate_sum, row.covariate_sum_squares, row.covariate_cross_sum) == (120, 400, 30)


def test_the_bulk_path_takes_covariates_and_refuses_a_bad_batch_whole(owner_a: Actor, owner_b: Actor) -> None:
    mine = ExperimentFactory(shop=owner_a.shop)
    theirs = ExperimentFactory(shop=owner_b.shop)
    good = {k: v for k, v in result_payload(mine, **COVARIATES).items() if k != "experiment"} | {
        "experiment_id": mine.pk
    }
    rows = [
        good,
        good | {"variant_key": "treatment"},
        good | {"variant_key": "nope", "snapshot_date": "2026-03-02"},
        good | {"experiment_id": theirs.pk},
        good | {"snapshot_date": "2026-03-03", "covariate_cross_sum": "500"},
        good | {"snapshot_date": "2026-03-04", "covariate_sum_squares": None},
    ]
    body = assert_error(owner_a.client.post(f"{RESULTS}bulk/", rows, format="json"), 400)
    assert {(e["index"], e["field"]) for e in body["errors"]} == {
        (2, "variant_key"),
        (3, "experiment_id"),
        (4, "covariate_cross_sum"),
        (5, "covariate_sum_squares"),
    }
    assert results_count() == 0
    response = owner_a.client.post(f"{RESULTS}bulk/", rows[:2], format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"created": 2, "updated": 0, "rows": 2}
    with atomic_scope(service_scope()):
        assert sorted(ExperimentResult.objects.values_list("variant_key", "covariate_cross_sum")) == [
            ("control", Decimal("30")),
            ("treatment", Decimal("30")),
        ]


# --- the analysis under each engine ------------------------------------------------------


def analyze(actor: Actor, experiment: Experiment, **body: Any) -> dict[str, Any]:
    response = actor.client.post(f"{EXPERIMENTS}{experiment.pk}/analyze/", body, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert finite_or_null(data)
    # Strict JSON: no NaN or Infinity literal anywhere.
    json.loads(response.content, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    return data


def test_bayesian_analysis_returns_and_stores_chance_to_win_and_expected_loss(owner_a: Actor) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop, stats_engine="bayesian")
    snapshots(experiment, {"control": (20_000, 1000), "treatment": (20_000, 1100)})
    body = analyze(owner_a, experiment)
    control, treatment = body["variants"]
    assert body["stats_engine"] == "bayesian" and body["winner"] == "treatment" and body["state"] == "decided"
    assert 0.98 < treatment["chance_to_win"] < 1 and 0 <= treatment["expected_loss"] < 0.0025
    assert treatment["p_value"] is None and control["chance_to_win"] is None
    assert body["confidence_level"] == treatment["chance_to_win"]
    with atomic_scope(service_scope()):
        stored = {r.variant_key: r for r in ExperimentResult.objects.filter(experiment=experiment)}
        assert Experiment.objects.get(pk=experiment.pk).winning_variant == "treatment"
    assert stored["treatment"].chance_to_win == Decimal(treatment["chance_to_win"]).quantize(Decimal("1e-10"))
    assert stored["treatment"].expected_loss == Decimal(treatment["expected_loss"]).quantize(Decimal("1e-10"))
    assert stored["treatment"].p_value is None and stored["control"].chance_to_win is None
    lower, upper = stored["treatment"].confidence_interval_lower, stored["treatment"].confidence_interval_upper
    assert lower is not None and upper is not None
    assert 0 < lower < Decimal("0.005") < upper  # the credible interval of the absolute lift


def test_sequential_analysis_is_always_valid_and_reports_its_band_over_time(owner_a: Actor) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop, target_mde=Decimal("0.1"))
    for day in range(5):
        n = 4000 * (day + 1)
        snapshots(
            experiment, {"control": (n, n // 20), "treatment": (n, n * 6 // 100)}, day=DAY + datetime.timedelta(day)
        )
    body = analyze(owner_a, experiment)
    treatment = body["variants"][1]
    z_test_p = 2 * (1 - 0.5 * (1 + math.erf(abs(treatment["z_statistic"]) / math.sqrt(2))))
    # Always valid costs evidence: the same data give a larger p than the z-test's.
    assert treatment["p_value"] > z_test_p
    assert treatment["lift_interval"]["lower"] < treatment["lift"] < treatment["lift_interval"]["upper"]
    history = body["lift_history"]
    assert [p["snapshot_date"] for p in history] == [str(DAY + datetime.timedelta(d)) for d in range(5)]
    widths = [p["upper"] - p["lower"] for p in history]
    assert widths == sorted(widths, reverse=True)  # the band narrows as participants accrue
    assert history[-1]["lower"] == pytest.approx(treatment["lift_interval"]["lower"])
    power = body["power"]
    assert power["participants_per_variant"] == 20_000 and power["target_mde"] == 0.1
    assert power["sample_size_per_variant"] > 20_000 and 0 < power["progress"] < 1


def test_fixed_horizon_before_its_plan_is_interim_and_declares_nothing(owner_a: Actor) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop, stats_engine="fixed_horizon", planned_sample_size=30_000)
    snapshots(experiment, {"control": (10_000, 300), "treatment": (10_000, 450)})
    body = analyze(owner_a, experiment)
    assert (body["state"], body["winner"], body["significant"]) == ("interim", None, False)
    assert body["power"]["progress"] == pytest.approx(1 / 3) and not body["power"]["plan_reached"]
    assert "Interim look" in body["reasons"][0]
    with atomic_scope(service_scope()):
        assert Experiment.objects.get(pk=experiment.pk).winning_variant is None


def test_a_revenue_guardrail_blocks_the_winner_over_the_api(owner_a: Actor) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop)
    revenue = {
        "control": {"revenue_per_user": Decimal("5"), "revenue_per_user_stddev": Decimal("20")},
        "treatment": {"revenue_per_user": Decimal("3"), "revenue_per_user_stddev": Decimal("20")},
    }
    snapshots(experiment, {"control": (50_000, 2500), "treatment": (50_000, 3000)}, **revenue)
    body = analyze(owner_a, experiment)
    guardrail = body["variants"][1]["guardrails"][0]
    assert guardrail["metric"] == "revenue_per_user" and guardrail["worse"] is True
    assert guardrail["interval"]["upper"] < 0
    assert body["winner"] is None and any("guardrail" in reason for reason in body["reasons"])


def test_cuped_reports_the_variance_reduction_it_achieved(owner_a: Actor) -> None:
    rng = np.random.default_rng(9)
    experiment = ExperimentFactory(shop=owner_a.shop)
    extra: dict[str, dict[str, Any]] = {}
    figures: dict[str, tuple[int, int]] = {}
    data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key in ("control", "treatment"):
        latent = rng.normal(size=10_000)
        y = (latent > 1.3).astype(float)
        x = np.maximum(0, 2 + 2 * latent + rng.normal(scale=2, size=10_000))
        data[key] = (x, y)
        figures[key] = (10_000, int(y.sum()))
        extra[key] = {
            "covariate_sum": Decimal(f"{x.sum():.4f}"),
            "covariate_sum_squares": Decimal(f"{(x * x).sum():.4f}"),
            "covariate_cross_sum": Decimal(f"{(x * y).sum():.4f}"),
        }
    snapshots(experiment, figures, **extra)
    body = analyze(owner_a, experiment)
    treatment = body["variants"][1]
    assert treatment["cuped"] is True and body["cuped_theta"] > 0
    # Worked out from the raw participants with numpy, the paper's way: θ from the covariances
    # pooled within the variants, each variant's adjusted variance Var(Y) + θ²Var(X) - 2θCov, and
    # the relative lift's delta-method variance with and without the adjustment.
    (xc, yc), (xt, yt) = data["control"], data["treatment"]
    cov = sum(np.cov(x, y, ddof=0)[0, 1] for x, y in data.values())
    theta = cov / sum(x.var() for x, _ in data.values())
    assert body["cuped_theta"] == pytest.approx(theta, rel=1e-6)
    x_all = np.concatenate([xc, xt]).mean()

    def relative_variance(adjusted: bool) -> float:
        arms = []
        for x, y in ((xt, yt), (xc, yc)):
            unit = y.var() + (theta**2 * x.var() - 2 * theta * np.cov(x, y, ddof=0)[0, 1] if adjusted else 0)
            mean = y.mean() - (theta * (x.mean() - x_all) if adjusted else 0)
            arms.append((mean, unit / len(y)))
        (mt, vt), (mc, vc) = arms
        return float(vt / mc**2 + mt**2 * vc / mc**4)

    expected = 1 - relative_variance(True) / relative_variance(False)
    assert treatment["variance_reduction"] == pytest.approx(expected, rel=1e-6)
    assert 0.2 < expected < 0.3  # 0.239: the covariate explains about a quarter of the variance


def test_every_engine_answers_finite_or_null_figures_on_degenerate_data(owner_a: Actor) -> None:
    for engine, plan in (("sequential", None), ("fixed_horizon", 1), ("bayesian", None)):
        for figures in ({"control": (0, 0), "treatment": (0, 0)}, {"control": (5, 0), "treatment": (5, 5)}):
            experiment = ExperimentFactory(shop=owner_a.shop, stats_engine=engine, planned_sample_size=plan)
            snapshots(experiment, figures)
            body = analyze(owner_a, experiment)
            assert body["winner"] is None or body["state"] == "decided"


def test_the_openapi_schema_describes_every_analysis_field(owner_a: Actor) -> None:
    schema = owner_a.client.get("/api/schema/?format=json")
    assert schema.status_code == 200, schema.content
    components = schema.json()["components"]["schemas"]
    analysis = components["ExperimentAnalysis"]["properties"]
    for name in ("stats_engine", "state", "power", "lift_history", "cuped_theta", "multiple_testing_correction"):
        assert name in analysis
    for component in ("ExperimentAnalysis", "VariantAnalysis", "Power", "LiftPoint", "Guardrail", "Interval"):
        for name, spec in components[component]["properties"].items():
            assert spec.get("description"), f"{component}.{name} is undocumented"
    assert "covariate_cross_sum" in components["ExperimentResult"]["properties"]


# --- every figure reaches the answer ---------------------------------------------------------

# Where the answer names a figure of ExperimentStatistics differently (the experiment's own names).
ANSWER_NAMES = {
    "confidence": "confidence_threshold",
    "engine": "stats_engine",
    "correction": "multiple_testing_correction",
}


def missing_figures(figures: type, answer: dict[str, Any], path: str, walked: dict[str, bool]) -> list[str]:
    """Each field of the dataclass `figures` (and of the dataclasses it holds) absent from `answer`.
    `walked`: each field holding dataclasses, and whether some answer had one (not null) to walk."""
    missing: list[str] = []
    hints = typing.get_type_hints(figures)
    for field in dataclasses.fields(figures):
        name = ANSWER_NAMES.get(field.name, field.name) if figures is stats.ExperimentStatistics else field.name
        if name not in answer:
            missing.append(f"{path}.{field.name}")
            continue
        inner = [t for t in typing.get_args(hints[field.name]) if t is not type(None) and t is not Ellipsis]
        for kind in [hints[field.name], *inner]:
            if dataclasses.is_dataclass(kind):
                here = f"{path}.{field.name}"
                values = [v for v in (answer[name] if isinstance(answer[name], list) else [answer[name]]) if v]
                walked[here] = walked.get(here, False) or bool(values)
                for value in values:
                    missing += missing_figures(typing.cast(type, kind), value, here, walked)
    return missing


def test_every_figure_of_the_pure_statistics_reaches_the_api_answer(owner_a: Actor) -> None:
    # Every nested figure defined: a guardrail (revenue per user), power (a target MDE), intervals.
    experiment = ExperimentFactory(shop=owner_a.shop, stats_engine="bayesian", target_mde=Decimal("0.1"))
    revenue = {"revenue_per_user": Decimal("3.1"), "revenue_per_user_stddev": Decimal("9.5")}
    snapshots(
        experiment,
        {"control": (20_000, 1000), "treatment": (20_000, 1100)},
        control=revenue,
        treatment={**revenue, "revenue_per_user": Decimal("3.3")},
    )
    body = analyze(owner_a, experiment)
    assert body["variants"][1]["guardrails"] and body["variants"][1]["lift_interval"] is not None
    walked: dict[str, bool] = {}
    assert missing_figures(stats.ExperimentStatistics, body, "answer", walked) == []
    assert walked and all(walked.values()), walked


def test_a_figure_without_its_description_is_refused_before_it_reaches_the_api() -> None:
    @dataclasses.dataclass(frozen=True)
    class Undescribed:
        key: Annotated[str, Doc("The variant's key.")]
        uplift: float | None

    with pytest.raises(TypeError, match="uplift has no Doc"):
        figure_fields(Undescribed)


# --- migration ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_existing_experiments_become_sequential_and_keep_analysing() -> None:
    try:
        call_command("migrate", "advanced", "0009_knowledge_searchable_idx", verbosity=0, interactive=False)
        ShopFactory(domain="old.myshopify.com")
        with atomic_scope(service_scope()), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO experiments (shop_domain, experiment_key, experiment_name, description, variants, status,"
                " primary_metric, confidence_threshold, min_sample_size, created_at, updated_at)"
                " VALUES ('old.myshopify.com', 'legacy', 'Legacy', '', %s, 'running', 'conversion_rate', 0.95, 100,"
                " now(), now())",
                [json.dumps(two_variants())],
            )
        call_command("migrate", "advanced", verbosity=0, interactive=False)
        with atomic_scope(service_scope()):
            legacy = Experiment.objects.get(experiment_key="legacy")
            assert (legacy.stats_engine, legacy.multiple_testing_correction, legacy.guardrail_metrics) == (
                "sequential",
                "holm",
                ["revenue_per_user"],
            )
            from advanced.experiments.services import experiment_analyze

            assert experiment_analyze(experiment=legacy).stats_engine == "sequential"
    finally:
        call_command("migrate", verbosity=0, interactive=False)
        with atomic_scope(service_scope()):
            Experiment.objects.filter(experiment_key="legacy").delete()
        with atomic_scope(service_scope()):
            Shop.objects.filter(domain="old.myshopify.com").delete()


def test_fixed_horizon_decides_on_the_day_its_plan_was_reached_not_on_later_looks(owner_a: Actor) -> None:
    experiment = ExperimentFactory(shop=owner_a.shop, stats_engine="fixed_horizon", planned_sample_size=10_000)
    snapshots(experiment, {"control": (5_000, 250), "treatment": (5_000, 250)}, day=DAY)
    snapshots(experiment, {"control": (10_000, 500), "treatment": (10_000, 520)}, day=DAY + datetime.timedelta(1))
    # A later day that, read on its own, would be significant: it must not decide.
    snapshots(experiment, {"control": (15_000, 700), "treatment": (15_000, 900)}, day=DAY + datetime.timedelta(2))
    body = analyze(owner_a, experiment)
    assert body["snapshot_date"] == "2026-03-02" and body["winner"] is None and body["state"] == "inconclusive"
    assert [v["participants"] for v in body["variants"]] == [10_000, 10_000]
    assert any("analysed as of 2026-03-02, the day the plan was reached" in w for w in body["warnings"])
    assert [p["snapshot_date"] for p in body["lift_history"]] == ["2026-03-01", "2026-03-02"]


def test_the_command_reports_each_experiments_engine_and_bayesian_figures(owner_a: Actor) -> None:
    from io import StringIO

    bayesian = ExperimentFactory(shop=owner_a.shop, experiment_key="bayes", stats_engine="bayesian")
    snapshots(bayesian, {"control": (20_000, 1000), "treatment": (20_000, 1100)})
    interim = ExperimentFactory(
        shop=owner_a.shop, experiment_key="planned", stats_engine="fixed_horizon", planned_sample_size=50_000
    )
    snapshots(interim, {"control": (20_000, 1000), "treatment": (20_000, 1100)})
    out = StringIO()
    call_command("analyze_experiments", "--shop", owner_a.shop.domain, stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[1/2] alpha.myshopify.com bayes: bayesian: winner treatment (confidence 0.9")
    assert "treatment chance to win=0.9" in lines[0] and "expected loss=" in lines[0]
    assert lines[1].startswith("[2/2] alpha.myshopify.com planned: fixed_horizon: no winner: Interim look")
