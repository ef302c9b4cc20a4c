"""Experiment decisions under daily looks: simulations through the project's analysis.

Each simulated experiment has two variants at 5% conversion (A/A) or 5% against 5.5% (+10%
relative), 500 participants a day each, analysed every day for 28 days with 95% confidence:
the design comes from `advanced.experiments.services.analysis.experiment_design` of an
Experiment row (unsaved) and the decision from `advanced.experiments.stats.experiment_statistics`, the
function `experiment_analyze` calls (the database round trip stores figures; it does not
change a decision, and tests/advanced cover it).

- A/A false-winner rate: the share of experiments in which a winner (any variant) is declared
  at some look. Per engine: fixed horizon read daily (what main did: 26.5%), fixed horizon at
  its planned sample (one look, day 28), sequential (GrowthBook's tuning N* = 5,000, and N*
  set to the planned 28,000 participants), Bayesian with its decision (chance to win >= 95%
  and expected loss <= 0.25%), and Bayesian by chance to win alone.
- Power at a true +10% relative lift: the share declaring the treatment the winner, sequential
  at any look against the fixed-horizon test at the same final sample.
- CUPED at covariate correlation 0.5: per participant a conversion y and a pre-exposure
  covariate x with corr(x, y) = 0.5; the variance reduction the analysis reports against the
  reduction of the lift estimator's variance across the simulated experiments.

Rates carry a 95% Wilson interval: "within simulation error" means alpha is inside or above it.
"""

from __future__ import annotations

import datetime
import math
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from advanced.experiments import stats
from advanced.experiments.services.analysis import experiment_design
from advanced.models import Experiment

from .data import Dataset
from .harness import BenchResult, Options, log

LOOKS = 28
PER_DAY = 500
BASELINE = 0.05
LIFT = 0.10
CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
CUPED_CORRELATION = 0.5
CUPED_PARTICIPANTS = 10_000
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
# Pure computation: needs no generated data (python -m bench --only experiments skips it).
NEEDS_DATA = False


@dataclass(frozen=True)
class Setup:
    """One way of analysing: the Experiment fields that choose it, and whether it looks daily."""

    label: str
    fields: dict[str, Any]
    daily: bool = True


SETUPS = (
    Setup(
        "fixed horizon, read daily", {"stats_engine": "fixed_horizon", "planned_end_date": datetime.date(2026, 1, 1)}
    ),
    Setup(
        "fixed horizon at its planned sample",
        {"stats_engine": "fixed_horizon", "planned_sample_size": LOOKS * PER_DAY},
        daily=False,
    ),
    Setup("sequential (N* 5,000)", {"stats_engine": "sequential"}),
    Setup("sequential (N* 28,000)", {"stats_engine": "sequential", "sequential_tuning": 2 * LOOKS * PER_DAY}),
    Setup("bayesian (chance to win and expected loss)", {"stats_engine": "bayesian"}),
    Setup("bayesian (chance to win alone)", {"stats_engine": "bayesian", "risk_threshold": Decimal(1)}),
)


def wilson(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    if trials == 0:
        return 0.0, 1.0
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    margin = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - margin), min(1.0, centre + margin)


def design_of(setup: Setup, day: int) -> stats.Design:
    experiment = Experiment(
        experiment_key="bench",
        experiment_name="bench",
        variants=[],
        started_at=START,
        confidence_threshold=Decimal(str(CONFIDENCE)),
        guardrail_metrics=[],
        **setup.fields,
    )
    return experiment_design(experiment, on=START.date() + datetime.timedelta(days=day))


def simulate(setup: Setup, paths: np.ndarray) -> dict[str, Any]:
    """Runs every experiment's looks; returns the winners' counts and the looks they came at."""
    designs = [design_of(setup, day) for day in range(LOOKS)]
    looks = range(LOOKS) if setup.daily else [LOOKS - 1]
    declared = {"control": 0, "treatment": 0}
    first_look: list[int] = []
    for path in paths:
        for day in looks:
            n = PER_DAY * (day + 1)
            computed = stats.experiment_statistics(
                [
                    stats.VariantFigures("control", n, int(path[day, 0]), 0.5, is_control=True),
                    stats.VariantFigures("treatment", n, int(path[day, 1]), 0.5),
                ],
                confidence=CONFIDENCE,
                min_sample_size=100,
                design=designs[day],
            )
            if computed.winner is not None:
                declared[computed.winner] += 1
                first_look.append(day + 1)
                break
    return {"declared": declared, "first_look": first_look}


def cuped_sample(rng: np.random.Generator, n: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """y ~ Bernoulli(rate); x = 10 + a·(y - rate) + N(0, 1) with a making corr(x, y) = 0.5."""
    y = (rng.random(n) < rate).astype(float)
    spread = math.sqrt(rate * (1 - rate))
    slope = CUPED_CORRELATION / math.sqrt(1 - CUPED_CORRELATION**2) / spread
    x = np.maximum(0.0, 10 + slope * (y - rate) + rng.normal(size=n))
    return x, y


def cuped_run(rng: np.random.Generator, experiments: int) -> dict[str, Any]:
    design = stats.Design(engine=stats.SEQUENTIAL)
    reported, plain, adjusted, correlations = [], [], [], []
    for _ in range(experiments):
        variants = []
        for key, rate in (("control", BASELINE), ("treatment", BASELINE)):
            x, y = cuped_sample(rng, CUPED_PARTICIPANTS, rate)
            correlations.append(float(np.corrcoef(x, y)[0, 1]))
            covariate = stats.Covariate(float(x.sum()), float((x * x).sum()), float((x * y).sum()))
            variants.append((key, int(y.sum()), covariate))
        with_cuped = stats.experiment_statistics(
            [
                stats.VariantFigures(key, CUPED_PARTICIPANTS, conversions, 0.5, key == "control", covariate=covariate)
                for key, conversions, covariate in variants
            ],
            confidence=CONFIDENCE,
            min_sample_size=0,
            design=design,
        ).variants[1]
        without = stats.experiment_statistics(
            [
                stats.VariantFigures(key, CUPED_PARTICIPANTS, conversions, 0.5, key == "control")
                for key, conversions, _ in variants
            ],
            confidence=CONFIDENCE,
            min_sample_size=0,
            design=design,
        ).variants[1]
        if with_cuped.variance_reduction is not None and with_cuped.lift is not None and without.lift is not None:
            reported.append(with_cuped.variance_reduction)
            adjusted.append(with_cuped.lift)
            plain.append(without.lift)
    empirical = 1 - float(np.var(adjusted)) / float(np.var(plain))
    return {
        "experiments": len(reported),
        "participants_per_variant": CUPED_PARTICIPANTS,
        "measured_correlation": float(np.mean(correlations)),
        "reported_variance_reduction_mean": float(np.mean(reported)),
        "empirical_variance_reduction": empirical,
        "theory": CUPED_CORRELATION**2,
    }


def run(options: Options, dataset: Dataset | None) -> BenchResult:
    result = BenchResult("experiments")
    sims = options.experiment_sims
    rng = np.random.default_rng(options.seed)
    aa = rng.binomial(PER_DAY, BASELINE, size=(sims, LOOKS, 2)).cumsum(axis=1)
    ab = np.stack(
        [
            rng.binomial(PER_DAY, BASELINE, size=(sims, LOOKS)),
            rng.binomial(PER_DAY, BASELINE * (1 + LIFT), size=(sims, LOOKS)),
        ],
        axis=2,
    ).cumsum(axis=1)
    details: dict[str, Any] = {
        "experiments_per_setting": sims,
        "looks": LOOKS,
        "participants_per_day_per_variant": PER_DAY,
        "baseline": BASELINE,
        "confidence": CONFIDENCE,
        "a_a": {},
        "power": {},
    }
    for setup in SETUPS:
        began = time.monotonic()
        outcome = simulate(setup, aa)
        winners = sum(outcome["declared"].values())
        low, high = wilson(winners, sims)
        rate = winners / sims
        details["a_a"][setup.label] = {
            "false_winners": winners,
            "rate": rate,
            "wilson_95": [low, high],
            "by_winner": outcome["declared"],
            "seconds": round(time.monotonic() - began, 1),
        }
        log(f"A/A {setup.label}: {winners}/{sims} = {rate:.1%} (95% {low:.1%} to {high:.1%})")
        sequential = setup.fields["stats_engine"] == "sequential"
        result.add(
            f"A/A false-winner rate, {setup.label}",
            round(100 * rate, 2),
            "%",
            target=f"<= {ALPHA:.0%}" if sequential else "",
            met=(low <= ALPHA) if sequential else None,
            note=f"95% CI {low:.1%}-{high:.1%}, {sims} experiments x {LOOKS if setup.daily else 1} look(s)",
            decimals=1,
        )
    for setup in SETUPS:
        if setup.label.startswith("bayesian (chance to win alone)"):
            continue
        outcome = simulate(setup, ab)
        hits = outcome["declared"]["treatment"]
        days = outcome["first_look"]
        details["power"][setup.label] = {
            "treatment_declared": hits,
            "power": hits / sims,
            "wilson_95": list(wilson(hits, sims)),
            "median_day_declared": float(np.median(days)) if days else None,
        }
        log(f"+10% {setup.label}: power {hits / sims:.1%}")
        result.add(
            f"power at +10% lift, {setup.label}",
            round(100 * hits / sims, 2),
            "%",
            note=f"{LOOKS * PER_DAY:,} per variant by day {LOOKS}"
            + (f"; median day declared {np.median(days):.0f}" if days else ""),
            decimals=1,
        )
    cuped = cuped_run(rng, max(50, sims // 5))
    details["cuped"] = cuped
    result.add(
        "CUPED variance reduction at correlation 0.5",
        round(100 * cuped["reported_variance_reduction_mean"], 2),
        "%",
        target="~25% (rho squared)",
        met=abs(cuped["reported_variance_reduction_mean"] - cuped["theory"]) < 0.03,
        note=f"empirical across experiments {cuped['empirical_variance_reduction']:.1%}",
        decimals=1,
    )
    result.details.update(details)
    return result
