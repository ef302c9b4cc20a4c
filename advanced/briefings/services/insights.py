"""The ranked insights of a briefing: the largest movements and notable events."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .figures import TENTH, BriefingMetrics, _round
from .wording import _confidence_text, _engine_text, _money_text, _winner_text

MAX_INSIGHTS = 10
# A metric movement smaller than this (in percent) is not an insight.
MOVEMENT_THRESHOLD_PCT = Decimal("5")
# Fixed scores of events; a movement scores its absolute percent change (see briefing_insights).
EVENT_SCORES = {
    "experiment_winner": Decimal("60"),
    "keyword_entered_top10": Decimal("40"),
    "keyword_left_top10": Decimal("30"),
    "experiment_no_winner": Decimal("15"),
    "onboarding_progress": Decimal("10"),
}
# Equal scores are ordered by kind, in this order.
KIND_ORDER = {
    "experiment_winner": 0,
    "keyword_entered_top10": 1,
    "keyword_left_top10": 2,
    "ads_movement": 3,
    "seo_score_movement": 4,
    "experiment_no_winner": 5,
    "onboarding_progress": 6,
}


@dataclass(frozen=True)
class Insight:
    kind: str
    title: str
    detail: str
    metric: str
    change: Decimal | int | None
    score: Decimal

    def as_json(self, rank: int) -> dict[str, Any]:
        change = float(self.change) if isinstance(self.change, Decimal) else self.change
        return {
            "rank": rank,
            "kind": self.kind,
            "title": self.title,
            "detail": self.detail,
            "metric": self.metric,
            "change": change,
            "score": float(_round(self.score, TENTH)),
        }


def _direction(value: Decimal | int) -> str:
    return "up" if value > 0 else "down"


def briefing_insights(*, metrics: BriefingMetrics) -> list[Insight]:
    """The largest movements and notable events, best first, at most MAX_INSIGHTS.

    Score: a movement (ad spend, ad revenue, ROAS, an SEO score) scores its absolute percent
    change and counts only from MOVEMENT_THRESHOLD_PCT; events score a fixed amount
    (EVENT_SCORES): an experiment winner 60, a keyword entering the top 10 40, leaving it 30,
    an experiment without a winner 15, onboarding steps completed 10. Ties: KIND_ORDER, then
    metric and title. `change` is the percent change of an ad movement, the points of an SEO
    score, the positions gained (negative: lost; null when unranked in one period) of a
    keyword, the steps completed for onboarding, and null for experiments.
    """
    found: list[Insight] = []
    money = (("Ad spend", "ads.spend", metrics.spend), ("Ad revenue", "ads.revenue", metrics.revenue))
    for label, metric, figure in money:
        if figure.change_pct is not None and abs(figure.change_pct) >= MOVEMENT_THRESHOLD_PCT:
            found.append(
                Insight(
                    kind="ads_movement",
                    title=f"{label} {_direction(figure.change_pct)} {abs(figure.change_pct)}%",
                    detail=(
                        f"{_money_text(figure.current, metrics.currencies)} against "
                        f"{_money_text(figure.previous, metrics.currencies)} in the previous period."
                    ),
                    metric=metric,
                    change=figure.change_pct,
                    score=abs(figure.change_pct),
                )
            )
    roas = metrics.roas
    if roas.change_pct is not None and abs(roas.change_pct) >= MOVEMENT_THRESHOLD_PCT:
        found.append(
            Insight(
                kind="ads_movement",
                title=f"ROAS {_direction(roas.change_pct)} {abs(roas.change_pct)}%",
                detail=f"{roas.current} against {roas.previous} in the previous period.",
                metric="ads.roas",
                change=roas.change_pct,
                score=abs(roas.change_pct),
            )
        )
    for name, score in metrics.seo_scores.items():
        if score.change and score.change_pct is not None and abs(score.change_pct) >= MOVEMENT_THRESHOLD_PCT:
            found.append(
                Insight(
                    kind="seo_score_movement",
                    title=f"{name.capitalize()} SEO score {_direction(score.change)} {abs(score.change)} points",
                    detail=f"{score.current} at the latest audit against {score.previous} in the previous period.",
                    metric=f"seo.scores.{name}",
                    change=score.change,
                    score=abs(score.change_pct),
                )
            )
    for move in metrics.keywords_entered_top10:
        before = (
            f"from #{move.previous_best_position} in the previous period"
            if move.previous_best_position is not None
            else "not ranked in the previous period"
        )
        found.append(
            Insight(
                kind="keyword_entered_top10",
                title=f'"{move.keyword}" entered the top 10',
                detail=f"Best position #{move.best_position} on {_engine_text(move)}, {before}.",
                metric="seo.keywords_entered_top10",
                change=move.positions_gained,
                score=EVENT_SCORES["keyword_entered_top10"],
            )
        )
    for move in metrics.keywords_left_top10:
        now = f"best position #{move.best_position}" if move.best_position is not None else "not ranked"
        found.append(
            Insight(
                kind="keyword_left_top10",
                title=f'"{move.keyword}" left the top 10',
                detail=(
                    f"{now.capitalize()} on {_engine_text(move)}, "
                    f"from #{move.previous_best_position} in the previous period."
                ),
                metric="seo.keywords_left_top10",
                change=move.positions_gained,
                score=EVENT_SCORES["keyword_left_top10"],
            )
        )
    for experiment in metrics.experiments_concluded:
        ended = experiment.ended_at.astimezone(datetime.UTC).date()
        if experiment.winning_variant:
            found.append(
                Insight(
                    kind="experiment_winner",
                    title=f'Experiment "{experiment.experiment_name}": {_winner_text(experiment)} won',
                    detail=f"Completed on {ended} at {_confidence_text(experiment.confidence_level)}.",
                    metric="experiments.concluded",
                    change=None,
                    score=EVENT_SCORES["experiment_winner"],
                )
            )
        else:
            found.append(
                Insight(
                    kind="experiment_no_winner",
                    title=f'Experiment "{experiment.experiment_name}" ended without a winner',
                    detail=f"Completed on {ended}.",
                    metric="experiments.concluded",
                    change=None,
                    score=EVENT_SCORES["experiment_no_winner"],
                )
            )
    onboarding = metrics.onboarding
    if onboarding.completed_in_period:
        plural = "s" if onboarding.completed_in_period != 1 else ""
        found.append(
            Insight(
                kind="onboarding_progress",
                title=f"{onboarding.completed_in_period} onboarding step{plural} completed",
                detail=(
                    f"{onboarding.completion_pct}% of the shop's onboarding steps are complete "
                    f"({onboarding.steps_completed} of {onboarding.steps_total})."
                ),
                metric="onboarding.completed_in_period",
                change=onboarding.completed_in_period,
                score=EVENT_SCORES["onboarding_progress"],
            )
        )
    found.sort(key=lambda i: (-i.score, KIND_ORDER[i.kind], i.metric, i.title))
    return found[:MAX_INSIGHTS]
