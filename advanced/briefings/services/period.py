"""The days a briefing covers, and the period it is compared with."""

from __future__ import annotations

import calendar
import datetime
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from tenancy.spans import Span

from ..models import BriefingType


class BriefingError(ValueError):
    """A briefing was asked for that cannot exist (bad period, unknown shop)."""


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
