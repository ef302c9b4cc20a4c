"""Option parsing shared by the management commands."""

from __future__ import annotations

import datetime

from django.core.management.base import CommandError


def day_option(option: str, value: str) -> datetime.date:
    """A YYYY-MM-DD option's date, or a CommandError naming the option and the value."""
    try:
        return datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{option} must be a date as YYYY-MM-DD, not {value!r}") from exc


def today_utc() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()
