"""Every figure of a briefing (`key_metrics`), read through the growth, onboarding and
experiment selectors and rounded as stored."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from growth.selectors import (
    AuditScores,
    KeywordKey,
    PostSnapshot,
    ad_totals,
    best_keyword_positions,
    latest_audit_scores,
    top_post_snapshots,
)
from onboarding.selectors import onboarding_counts

from ...experiments.selectors import ConcludedExperiment, concluded_experiments
from .period import BriefingPeriod

# Bumped when the shape of key_metrics changes, so readers can tell old rows from new.
METRICS_VERSION = 1
TOP_POSTS = 3
TOP_POSITION = 10
SEO_SCORES = ("technical", "content", "performance")

CENT = Decimal("0.01")
TENTH = Decimal("0.1")
RATE = Decimal("0.0001")


def _round(value: Decimal, step: Decimal) -> Decimal:
    return value.quantize(step, rounding=ROUND_HALF_UP)


def _number(value: Decimal | None) -> float | None:
    # Rounded Decimals of a few places convert to the float with the same shortest repr.
    return None if value is None else float(value)


def _change_pct(current: Decimal | None, previous: Decimal | None) -> Decimal | None:
    if current is None or previous is None or previous == 0:
        return None
    return _round((current - previous) / previous * 100, TENTH)


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
