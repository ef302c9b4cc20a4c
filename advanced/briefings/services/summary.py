"""The template summary of a briefing: a few plain sentences from the stored figures (and the
text a summary writer falls back to)."""

from __future__ import annotations

from .figures import CENT, BriefingMetrics, _round
from .insights import Insight
from .period import BriefingPeriod
from .wording import _confidence_text, _engine_text, _money_text, _pct_text, _winner_text


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
