"""Building, writing and saving a briefing: the three steps and `briefing_generate`."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from tenancy.models import Shop

from ..llm import SummaryWriter, SummaryWriterError, TemplateWriter, summary_writer_from_settings
from ..models import CeoBriefing
from .figures import BriefingMetrics, briefing_metrics_build
from .insights import Insight, briefing_insights
from .period import BriefingError, BriefingPeriod, briefing_period
from .summary import briefing_summary_template


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
