"""Ranges of UTC days, as reports and jobs read them (the project's TIME_ZONE is UTC, and
`seo_rankings.tracked_on` is the UTC day): a span covers `start 00:00 UTC` up to, not
including, `end + 1 day 00:00 UTC`."""

from __future__ import annotations

import datetime
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """An inclusive range of UTC days."""

    start: datetime.date
    end: datetime.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def starts_at(self) -> datetime.datetime:
        return datetime.datetime.combine(self.start, datetime.time.min, tzinfo=datetime.UTC)

    @property
    def ends_before(self) -> datetime.datetime:
        return datetime.datetime.combine(self.end + datetime.timedelta(days=1), datetime.time.min, tzinfo=datetime.UTC)
