"""CEO briefings: the period, the figures, the ranked insights, the summary and the stored row.

A briefing is built in three steps, so that a caller can keep a provider's network call out
of its database transactions (the command does):

1. `briefing_figures()` reads the shop's tables (in the caller's scope) and returns the
   key metrics, the ranked insights and the template summary;
2. `briefing_summary_write()` asks a summary writer for the text (no database), falling back
   to the template when the provider fails;
3. `briefing_save()` writes the row, idempotently per (shop, type, period).

`briefing_generate()` runs the three in one go.

Figures in `key_metrics` (docs/operations.md, "CEO briefings", has the reference):
- money (spend, revenue, and their change): decimal strings with two places, as the API
  serializes decimals, so no amount ever goes through a binary float;
- ROAS: a number with two places; engagement rate and confidence: numbers with four places
  (fractions, 0.0812 = 8.12 %); percentages (`change_pct`, `completion_pct`): numbers with one
  place; scores, positions and counts: integers. Halves round away from zero.
- `change` is the difference of the two figures as shown; `change_pct` is computed from the
  unrounded figures, and is null when the previous figure is zero or missing.
"""

from __future__ import annotations

import calendar
import datetime
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from tenancy.models import Shop

from ..briefing_metrics import (
    AuditScores,
    ConcludedExperiment,
    KeywordKey,
    PostSnapshot,
    Span,
    ad_totals,
    best_keyword_positions,
    concluded_experiments,
    latest_audit_scores,
    onboarding_counts,
    top_post_snapshots,
)
from ..llm import SummaryWriter, SummaryWriterError, TemplateWriter, summary_writer_from_settings
from ..models import BriefingType, CeoBriefing

# Bumped when the shape of key_metrics changes, so readers can tell old rows from new.
METRICS_VERSION = 1
TOP_POSTS = 3
TOP_POSITION = 10
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
SEO_SCORES = ("technical", "content", "performance")

CENT = Decimal("0.01")
TENTH = Decimal("0.1")
RATE = Decimal("0.0001")


class BriefingError(ValueError):
    """A briefing was asked for that cannot exist (bad period, unknown shop)."""


def _round(value: Decimal, step: Decimal) -> Decimal:
    return value.quantize(step, rounding=ROUND_HALF_UP)


def _number(value: Decimal | None) -> float | None:
    # Rounded Decimals of a few places convert to the float with the same shortest repr.
    return None if value is None else float(value)


def _change_pct(current: Decimal | None, previous: Decimal | None) -> Decimal | None:
    if current is None or previous is None or previous == 0:
        return None
    return _round((current - previous) / previous * 100, TENTH)


# --- Period -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BriefingPeriod:
    briefing_type: str
    current: Span
    previous: Span

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.briefing_type,
            "start": self.current.start.isoformat(),
            "end": self.current.end.isoformat(),
            "days": self.current.days,
            "previous_start": self.previous.start.isoformat(),
            "previous_end": self.previous.end.isoformat(),
            "previous_days": self.previous.days,
        }


def _month_end(year: int, month: int) -> datetime.date:
    return datetime.date(year, month, calendar.monthrange(year, month)[1])


def briefing_period(
    *, briefing_type: str, period_end: datetime.date, today: datetime.date | None = None
) -> BriefingPeriod:
    """The days a briefing covers and the period it is compared with.

    daily: the day; weekly: the 7 days ending on `period_end`; each compared with the same
    number of days just before. monthly and quarterly cover a calendar month or quarter, so
    `period_end` must be its last day, and compare with the calendar month or quarter before
    (what a month-over-month report means, though months differ by up to three days).
    """
    today = today or timezone.now().date()
    if briefing_type not in BriefingType.values:
        expected = ", ".join(BriefingType.values)
        raise BriefingError(f"unknown briefing type {briefing_type!r}; expected one of {expected}")
    if period_end > today:
        raise BriefingError(f"period end {period_end} is in the future (today is {today} UTC)")
    if briefing_type in (BriefingType.DAILY, BriefingType.WEEKLY):
        days = 1 if briefing_type == BriefingType.DAILY else 7
        start = period_end - datetime.timedelta(days=days - 1)
        previous_end = start - datetime.timedelta(days=1)
        return BriefingPeriod(
            briefing_type=briefing_type,
            current=Span(start=start, end=period_end),
            previous=Span(start=previous_end - datetime.timedelta(days=days - 1), end=previous_end),
        )
    months = 1 if briefing_type == BriefingType.MONTHLY else 3
    last_day = _month_end(period_end.year, period_end.month)
    if period_end != last_day or period_end.month % months != 0:
        example = _month_end(period_end.year, period_end.month + (-period_end.month % months))
        unit = "month" if months == 1 else "quarter (Mar 31, Jun 30, Sep 30 or Dec 31)"
        raise BriefingError(
            f"a {briefing_type} briefing covers a calendar {unit}: the period end must be its last day, "
            f"e.g. {example}; got {period_end}"
        )

    def first_day(end: datetime.date) -> datetime.date:
        month = end.month - months + 1
        return datetime.date(end.year, month, 1)

    start = first_day(period_end)
    previous_end = start - datetime.timedelta(days=1)
    return BriefingPeriod(
        briefing_type=briefing_type,
        current=Span(start=start, end=period_end),
        previous=Span(start=first_day(previous_end), end=previous_end),
    )


# --- Figures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MoneyFigure:
    current: Decimal
    previous: Decimal
    change: Decimal
    change_pct: Decimal | None

    @classmethod
    def of(cls, current: Decimal, previous: Decimal) -> MoneyFigure:
        current, previous = _round(current, CENT), _round(previous, CENT)
        return cls(current, previous, current - previous, _change_pct(current, previous))

    def as_json(self) -> dict[str, Any]:
        return {
            "current": str(self.current),
            "previous": str(self.previous),
            "change": str(self.change),
            "change_pct": _number(self.change_pct),
        }


@dataclass(frozen=True)
class RoasFigure:
    current: Decimal | None
    previous: Decimal | None
    change: Decimal | None
    change_pct: Decimal | None

    @classmethod
    def of(cls, spend: MoneyFigure, revenue: MoneyFigure) -> RoasFigure:
        current = revenue.current / spend.current if spend.current else None
        previous = revenue.previous / spend.previous if spend.previous else None
        shown_now = None if current is None else _round(current, CENT)
        shown_before = None if previous is None else _round(previous, CENT)
        change = shown_now - shown_before if shown_now is not None and shown_before is not None else None
        return cls(shown_now, shown_before, change, _change_pct(current, previous))

    def as_json(self) -> dict[str, Any]:
        return {
            "current": _number(self.current),
            "previous": _number(self.previous),
            "change": _number(self.change),
            "change_pct": _number(self.change_pct),
        }


@dataclass(frozen=True)
class ScoreFigure:
    current: int | None
    previous: int | None
    change: int | None
    change_pct: Decimal | None
    trend: str | None

    @classmethod
    def of(cls, current: int | None, previous: int | None) -> ScoreFigure:
        if current is None or previous is None:
            return cls(current, previous, None, None, None)
        change = current - previous
        trend = "up" if change > 0 else "down" if change < 0 else "flat"
        return cls(current, previous, change, _change_pct(Decimal(current), Decimal(previous)), trend)

    def as_json(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "previous": self.previous,
            "change": self.change,
            "change_pct": _number(self.change_pct),
            "trend": self.trend,
        }


@dataclass(frozen=True)
class KeywordMove:
    keyword: str
    search_engine: str
    location: str
    best_position: int | None
    previous_best_position: int | None

    @property
    def positions_gained(self) -> int | None:
        if self.best_position is None or self.previous_best_position is None:
            return None
        return self.previous_best_position - self.best_position

    def as_json(self) -> dict[str, Any]:
        return {
            "keyword": self.keyword,
            "search_engine": self.search_engine,
            "location": self.location,
            "best_position": self.best_position,
            "previous_best_position": self.previous_best_position,
        }


@dataclass(frozen=True)
class OnboardingFigure:
    steps_total: int
    steps_completed: int
    completion_pct: Decimal | None
    completed_in_period: int

    def as_json(self) -> dict[str, Any]:
        return {
            "steps_total": self.steps_total,
            "steps_completed": self.steps_completed,
            "completion_pct": _number(self.completion_pct),
            "completed_in_period": self.completed_in_period,
        }


def _post_json(post: PostSnapshot) -> dict[str, Any]:
    return {
        "social_post_id": post.social_post_id,
        "platform": post.platform,
        "platform_post_id": post.platform_post_id,
        "post_url": post.post_url,
        "measured_at": post.measured_at.isoformat(),
        "engagement_rate": _number(None if post.engagement_rate is None else _round(post.engagement_rate, RATE)),
        "reach": post.reach,
        "likes": post.likes,
        "comments": post.comments,
        "shares": post.shares,
    }


def _experiment_json(experiment: ConcludedExperiment) -> dict[str, Any]:
    confidence = experiment.confidence_level
    return {
        "experiment_id": experiment.experiment_id,
        "experiment_key": experiment.experiment_key,
        "experiment_name": experiment.experiment_name,
        "ended_at": experiment.ended_at.isoformat(),
        "winning_variant": experiment.winning_variant,
        "winning_variant_name": experiment.winning_variant_name,
        "confidence_level": _number(None if confidence is None else _round(confidence, RATE)),
    }


@dataclass(frozen=True)
class BriefingMetrics:
    """Every figure of a shop's briefing, rounded as stored."""

    shop_id: str
    period: BriefingPeriod
    currencies: tuple[str, ...]
    spend: MoneyFigure
    revenue: MoneyFigure
    roas: RoasFigure
    seo_scores: dict[str, ScoreFigure]
    latest_audit_at: datetime.datetime | None
    previous_audit_at: datetime.datetime | None
    keywords_entered_top10: tuple[KeywordMove, ...]
    keywords_left_top10: tuple[KeywordMove, ...]
    top_posts: tuple[PostSnapshot, ...]
    experiments_concluded: tuple[ConcludedExperiment, ...]
    onboarding: OnboardingFigure

    def as_json(self) -> dict[str, Any]:
        """The `key_metrics` object."""
        return {
            "version": METRICS_VERSION,
            "period": self.period.as_json(),
            "ads": {
                "currencies": list(self.currencies),
                "spend": self.spend.as_json(),
                "revenue": self.revenue.as_json(),
                "roas": self.roas.as_json(),
            },
            "seo": {
                "latest_audit_at": None if self.latest_audit_at is None else self.latest_audit_at.isoformat(),
                "previous_audit_at": None if self.previous_audit_at is None else self.previous_audit_at.isoformat(),
                "scores": {name: figure.as_json() for name, figure in self.seo_scores.items()},
                "keywords_entered_top10": [move.as_json() for move in self.keywords_entered_top10],
                "keywords_left_top10": [move.as_json() for move in self.keywords_left_top10],
            },
            "social": {"top_posts": [_post_json(post) for post in self.top_posts]},
            "experiments": {"concluded": [_experiment_json(e) for e in self.experiments_concluded]},
            "onboarding": self.onboarding.as_json(),
        }


def _score(audit: AuditScores | None, name: str) -> int | None:
    return None if audit is None else getattr(audit, name)


def _top10_moves(
    current: dict[KeywordKey, int], previous: dict[KeywordKey, int]
) -> tuple[tuple[KeywordMove, ...], tuple[KeywordMove, ...]]:
    """Keywords whose best position crossed into the top 10, and out of it. Not being ranked
    in a period counts as outside the top 10: trackers record nothing past their depth."""

    def move(key: KeywordKey) -> KeywordMove:
        return KeywordMove(*key, best_position=current.get(key), previous_best_position=previous.get(key))

    def inside(positions: dict[KeywordKey, int], key: KeywordKey) -> bool:
        return key in positions and positions[key] <= TOP_POSITION

    entered = [move(k) for k in current if inside(current, k) and not inside(previous, k)]
    left = [move(k) for k in previous if inside(previous, k) and not inside(current, k)]
    entered.sort(key=lambda m: (m.best_position or 0, m.keyword, m.search_engine, m.location))
    left.sort(key=lambda m: (m.previous_best_position or 0, m.keyword, m.search_engine, m.location))
    return tuple(entered), tuple(left)


def briefing_metrics_build(*, shop_id: str, period: BriefingPeriod) -> BriefingMetrics:
    """Read every figure of the shop's briefing (run in a scope that sees the shop's rows)."""
    current, previous = period.current, period.previous
    ads_now, ads_before = ad_totals(shop_id=shop_id, span=current), ad_totals(shop_id=shop_id, span=previous)
    spend = MoneyFigure.of(ads_now.spend, ads_before.spend)
    revenue = MoneyFigure.of(ads_now.revenue, ads_before.revenue)
    audit_now = latest_audit_scores(shop_id=shop_id, span=current)
    audit_before = latest_audit_scores(shop_id=shop_id, span=previous)
    entered, left = _top10_moves(
        best_keyword_positions(shop_id=shop_id, span=current),
        best_keyword_positions(shop_id=shop_id, span=previous),
    )
    onboarding = onboarding_counts(shop_id=shop_id, span=current)
    completion = (
        _round(Decimal(onboarding.steps_completed) / onboarding.steps_total * 100, TENTH)
        if onboarding.steps_total
        else None
    )
    return BriefingMetrics(
        shop_id=shop_id,
        period=period,
        currencies=tuple(sorted(set(ads_now.currencies) | set(ads_before.currencies))),
        spend=spend,
        revenue=revenue,
        roas=RoasFigure.of(spend, revenue),
        seo_scores={name: ScoreFigure.of(_score(audit_now, name), _score(audit_before, name)) for name in SEO_SCORES},
        latest_audit_at=None if audit_now is None else audit_now.crawled_at,
        previous_audit_at=None if audit_before is None else audit_before.crawled_at,
        keywords_entered_top10=entered,
        keywords_left_top10=left,
        top_posts=tuple(top_post_snapshots(shop_id=shop_id, span=current, limit=TOP_POSTS)),
        experiments_concluded=tuple(concluded_experiments(shop_id=shop_id, span=current)),
        onboarding=OnboardingFigure(
            steps_total=onboarding.steps_total,
            steps_completed=onboarding.steps_completed,
            completion_pct=completion,
            completed_in_period=onboarding.completed_in_span,
        ),
    )


# --- Wording ----------------------------------------------------------------------------


def _money_text(value: Decimal, currencies: tuple[str, ...]) -> str:
    # Amounts in several currencies are summed as they are stored; the text then names no
    # currency rather than a wrong one (key_metrics.ads.currencies lists them).
    amount = f"{value:,.2f}"
    return f"{currencies[0]} {amount}" if len(currencies) == 1 else amount


def _pct_text(pct: Decimal | None) -> str:
    return "no previous figure" if pct is None else f"{pct:+.1f}%"


def _engine_text(move: KeywordMove) -> str:
    return f"{move.search_engine} {move.location}".strip()


def _confidence_text(confidence: Decimal | None) -> str:
    return "unrecorded confidence" if confidence is None else f"{_round(confidence * 100, TENTH)}% confidence"


def _winner_text(experiment: ConcludedExperiment) -> str:
    name = f" ({experiment.winning_variant_name})" if experiment.winning_variant_name else ""
    return f'"{experiment.winning_variant}"{name}'


# --- Insights ---------------------------------------------------------------------------


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


# --- Summary ----------------------------------------------------------------------------


def _period_text(period: BriefingPeriod) -> str:
    span = period.current
    if span.days == 1:
        return f"on {span.start}"
    return f"from {span.start} to {span.end}"


def briefing_summary_template(*, metrics: BriefingMetrics, insights: list[Insight]) -> str:
    """A few plain sentences, every number taken from the metrics as stored."""
    period = metrics.period
    sentences = [f"{period.briefing_type.capitalize()} briefing for {metrics.shop_id} {_period_text(period)}."]

    spend, revenue, roas, cur = metrics.spend, metrics.revenue, metrics.roas, metrics.currencies
    if spend.current or revenue.current or spend.previous or revenue.previous:
        if roas.current is None:
            roas_text = "no ROAS (no spend)"
        elif roas.previous is None:
            roas_text = f"a ROAS of {roas.current} (no previous figure)"
        else:
            roas_text = f"a ROAS of {roas.current} (previous {roas.previous})"
        sentences.append(
            f"Ad spend was {_money_text(spend.current, cur)} ({_pct_text(spend.change_pct)} on the previous period) "
            f"and ad revenue {_money_text(revenue.current, cur)} ({_pct_text(revenue.change_pct)}), {roas_text}."
        )
    else:
        sentences.append("No ad spend or revenue was recorded in this period or the one before.")

    scores = []
    for name, score in metrics.seo_scores.items():
        if score.current is None:
            continue
        if score.previous is None:
            scores.append(f"{name} {score.current} (no earlier score)")
        elif score.trend == "flat":
            scores.append(f"{name} {score.current} (unchanged)")
        else:
            scores.append(f"{name} {score.current} ({score.trend} from {score.previous})")
    if scores:
        sentences.append("Latest SEO scores: " + ", ".join(scores) + ".")

    entered, left = metrics.keywords_entered_top10, metrics.keywords_left_top10
    if entered or left:
        parts = []
        if entered:
            names = ", ".join(f'"{m.keyword}" (#{m.best_position}, {_engine_text(m)})' for m in entered)
            parts.append(f"{len(entered)} keyword{'s' if len(entered) != 1 else ''} entered the top 10: {names}")
        if left:
            names = ", ".join(f'"{m.keyword}" ({_engine_text(m)})' for m in left)
            noun = "keyword" if len(left) == 1 else "keywords"
            parts.append(f"{len(left)} left it: {names}" if entered else f"{len(left)} {noun} left the top 10: {names}")
        sentences.append("; ".join(parts) + ".")

    if metrics.top_posts:
        post = metrics.top_posts[0]
        rate = (
            "no engagement rate (no reach)"
            if post.engagement_rate is None
            else f"{_round(post.engagement_rate * 100, CENT)}% engagement"
        )
        sentences.append(
            f"The best social post was {post.platform} post {post.platform_post_id} with {rate} "
            f"on a reach of {post.reach:,}."
        )

    for experiment in metrics.experiments_concluded:
        if experiment.winning_variant:
            sentences.append(
                f'Experiment "{experiment.experiment_name}" concluded: {_winner_text(experiment)} won at '
                f"{_confidence_text(experiment.confidence_level)}."
            )
        else:
            sentences.append(f'Experiment "{experiment.experiment_name}" concluded without a winner.')

    onboarding = metrics.onboarding
    if onboarding.steps_total:
        sentences.append(
            f"Onboarding is {onboarding.completion_pct}% complete ({onboarding.steps_completed} of "
            f"{onboarding.steps_total} steps), {onboarding.completed_in_period} completed in this period."
        )

    if insights:
        sentences.append(f"Largest movement: {insights[0].title}.")
    return " ".join(sentences)


# --- The briefing -----------------------------------------------------------------------


@dataclass(frozen=True)
class BriefingFigures:
    """What a briefing says before its summary is written."""

    metrics: BriefingMetrics
    insights: tuple[Insight, ...]
    key_metrics: dict[str, Any]
    insights_json: list[dict[str, Any]]
    template_summary: str

    def writer_input(self) -> dict[str, Any]:
        """What a summary writer is given: the stored figures and nothing else."""
        return {
            "shop": self.metrics.shop_id,
            "briefing_type": self.metrics.period.briefing_type,
            "key_metrics": self.key_metrics,
            "insights": self.insights_json,
        }


@dataclass(frozen=True)
class BriefingSummary:
    text: str
    model: str
    tokens: int | None
    writer: str
    # Why the provider's summary was not used (the template's was), if it failed.
    fallback_reason: str | None = None


@dataclass(frozen=True)
class BriefingSaved:
    briefing: CeoBriefing
    created: bool


def briefing_shop_domains(*, only: str | None = None) -> list[str]:
    """The shops a briefing run covers: `only` (any shop, active or not), or every active shop."""
    if only is not None:
        domain = only.strip().lower()
        if not Shop.objects.filter(domain=domain).exists():
            raise BriefingError(f"no shop {only!r}")
        return [domain]
    return list(Shop.objects.filter(is_active=True).order_by("domain").values_list("domain", flat=True))


def briefing_exists(*, shop_id: str, period: BriefingPeriod) -> bool:
    return (
        CeoBriefing.objects.for_shop(shop_id)
        .filter(
            briefing_type=period.briefing_type,
            period_start=period.current.start,
            period_end=period.current.end,
        )
        .exists()
    )


def briefing_figures(*, shop_id: str, period: BriefingPeriod) -> BriefingFigures:
    """Metrics, insights and the template summary of a shop's period (reads only)."""
    if not Shop.objects.filter(domain=shop_id).exists():
        raise BriefingError(f"no shop {shop_id!r}")
    metrics = briefing_metrics_build(shop_id=shop_id, period=period)
    insights = briefing_insights(metrics=metrics)
    return BriefingFigures(
        metrics=metrics,
        insights=tuple(insights),
        key_metrics=metrics.as_json(),
        insights_json=[insight.as_json(rank) for rank, insight in enumerate(insights, start=1)],
        template_summary=briefing_summary_template(metrics=metrics, insights=insights),
    )


def briefing_summary_write(*, figures: BriefingFigures, writer: SummaryWriter) -> BriefingSummary:
    """The writer's summary, or the template's when the writer's provider fails."""
    try:
        written = writer.write(briefing=figures.writer_input(), template_text=figures.template_summary)
    except SummaryWriterError as exc:
        fallback = TemplateWriter().write(briefing=figures.writer_input(), template_text=figures.template_summary)
        return BriefingSummary(
            text=fallback.text,
            model=fallback.model,
            tokens=fallback.tokens,
            writer=writer.name,
            fallback_reason=str(exc),
        )
    return BriefingSummary(text=written.text, model=written.model, tokens=written.tokens, writer=writer.name)


@transaction.atomic
def briefing_save(*, figures: BriefingFigures, summary: BriefingSummary) -> BriefingSaved:
    """Create the briefing of (shop, type, period), or regenerate the one there is.

    Only the generated columns are written: a staff rating, feedback and review survive a
    re-run. A concurrent run for the same key waits on the row lock, or, when both create,
    the loser's insert hits the unique key and it updates the winner's row instead.
    """
    period = figures.metrics.period
    briefing, created = CeoBriefing.objects.update_or_create(
        shop_id=figures.metrics.shop_id,
        briefing_type=period.briefing_type,
        period_start=period.current.start,
        period_end=period.current.end,
        defaults={
            "executive_summary": summary.text,
            "key_metrics": figures.key_metrics,
            "insights": figures.insights_json,
            "generation_model": summary.model,
            "generation_tokens": summary.tokens,
        },
    )
    return BriefingSaved(briefing=briefing, created=created)


def briefing_generate(
    *,
    shop_id: str,
    briefing_type: str,
    period_end: datetime.date,
    writer: SummaryWriter | None = None,
) -> CeoBriefing:
    """Build and store a shop's briefing for the period ending on `period_end`.

    Runs in the caller's scope (a service scope for a job); the writer defaults to the one
    LLM_PROVIDER configures. A provider's call then runs inside the caller's transaction, if
    it has one; `generate_briefings` calls the three steps itself to keep it outside.
    """
    period = briefing_period(briefing_type=briefing_type, period_end=period_end)
    figures = briefing_figures(shop_id=shop_id, period=period)
    summary = briefing_summary_write(figures=figures, writer=writer or summary_writer_from_settings())
    return briefing_save(figures=figures, summary=summary).briefing
