"""Demo data of the experiment tables (`manage.py seed_demo`, runner in tenancy/demo.py):
experiments with their results, analysed by the real service."""

from __future__ import annotations

import math
from decimal import Decimal

from tenancy.demo import DemoStep, ShopContext, at, money

from .factories import ExperimentFactory, ExperimentResultFactory
from .models import Experiment, ExperimentResult, ExperimentStatus, StatsEngine
from .services import experiment_analyze

EXPERIMENTS = [
    (
        "free-shipping-banner",
        "Free shipping banner",
        "Does a sitewide free-shipping threshold banner lift conversion?",
        [("control", "No banner"), ("banner", "Free shipping over $50")],
    ),
    (
        "checkout-button-colour",
        "Checkout button colour",
        "Which colour of the checkout button gets more orders?",
        [("control", "Black"), ("green", "Green"), ("orange", "Orange")],
    ),
    (
        "product-page-layout",
        "Product page layout",
        "Reviews above the fold against the current layout.",
        [("control", "Current layout"), ("reviews-first", "Reviews first")],
    ),
]


def _covariates(participants: int, conversions: int) -> dict[str, Decimal]:
    """CUPED aggregates of a pre-exposure covariate (orders in the 28 days before exposure):
    buyers averaged 1.2 earlier orders (mean square 2.5), the others 0.3 (mean square 0.5)."""
    others = participants - conversions
    return {
        "covariate_sum": Decimal(f"{1.2 * conversions + 0.3 * others:.4f}"),
        "covariate_sum_squares": Decimal(f"{2.5 * conversions + 0.5 * others:.4f}"),
        "covariate_cross_sum": Decimal(f"{1.2 * conversions:.4f}"),
    }


def _seed_experiments(ctx: ShopContext) -> None:
    if Experiment.objects.filter(shop=ctx.shop).exists():
        return
    rng = ctx.rng("experiments")
    days = ctx.days
    experiments: list[Experiment] = []
    results: list[ExperimentResult] = []
    for number, (key, name, description, variant_specs) in enumerate(EXPERIMENTS[: rng.choice([2, 3])]):
        completed = number == 0
        started_at = at(days[0] if completed else days[rng.randint(0, (len(days) - 1) // 2)], 10)
        ended_at = at(days[(len(days) - 1) * 2 // 3], 18) if completed else None
        snapshot = (ended_at or at(ctx.end, 23)).date()
        weight = round(1 / len(variant_specs), 4)
        # The last variant takes the remainder, so that the weights sum to exactly 1.
        weights = [weight] * (len(variant_specs) - 1)
        weights.append(round(1 - sum(weights), 4))
        variants = [
            {"key": vkey, "name": vname, "weight": share, "is_control": vkey == "control"}
            for (vkey, vname), share in zip(variant_specs, weights, strict=True)
        ]
        running_days = (snapshot - started_at.date()).days + 1
        base_rate, aov = rng.uniform(0.025, 0.045), rng.uniform(40, 90)
        visitors = rng.randint(500, 900) * running_days
        figures: list[tuple[str, int, int]] = []
        for vkey, _ in variant_specs:
            # Traffic splits by weight, give or take the randomness of assignment.
            participants = round(visitors * weight * rng.uniform(0.98, 1.02))
            lift = 0.0 if vkey == "control" else rng.uniform(0.15, 0.35) if completed else rng.uniform(-0.1, 0.25)
            figures.append((vkey, participants, round(participants * base_rate * (1 + lift))))
        # The completed one was planned as a fixed-horizon test that reached its sample; the
        # running ones use the sequential default, with CUPED covariates and a target MDE.
        design = (
            {"stats_engine": StatsEngine.FIXED_HORIZON, "planned_sample_size": min(f[1] for f in figures)}
            if completed
            else {"stats_engine": StatsEngine.SEQUENTIAL, "target_mde": Decimal("0.1")}
        )
        experiment: Experiment = ExperimentFactory.build(
            shop=ctx.shop,
            experiment_key=key,
            experiment_name=name,
            description=description,
            variants=variants,
            status=ExperimentStatus.COMPLETED if completed else ExperimentStatus.RUNNING,
            started_at=started_at,
            ended_at=ended_at,
            min_sample_size=200,
            **design,
        )
        for vkey, participants, conversions in figures:
            rate, order_value = conversions / participants, aov * rng.uniform(0.95, 1.05)
            results.append(
                ExperimentResultFactory.build(
                    experiment=experiment,
                    shop=ctx.shop,
                    variant_key=vkey,
                    snapshot_date=snapshot,
                    participants=participants,
                    conversions=conversions,
                    avg_order_value=money(order_value),
                    revenue_per_user=Decimal(f"{rate * order_value:.4f}"),
                    # Revenue per user is zero for most users and about one order for the rest.
                    revenue_per_user_stddev=Decimal(f"{order_value * math.sqrt(rate * (1 - rate)):.4f}"),
                    **({} if completed else _covariates(participants, conversions)),
                )
            )
        experiments.append(experiment)
    Experiment.objects.bulk_create(experiments)
    # The results were built before their experiments had ids; bulk_create fills the foreign
    # key in from the (now saved) related instance.
    ExperimentResult.objects.bulk_create(results)
    # p-values, lift intervals and winners come from the same analysis the API and the
    # analyze_experiments command run.
    for experiment in experiments:
        experiment_analyze(experiment=experiment)


DEMO_STEPS = [DemoStep("experiments and results", _seed_experiments)]
