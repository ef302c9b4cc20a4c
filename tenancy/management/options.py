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


def shop_option(value: str | None) -> str | None:
    """A --shop option's domain (lowercased), None when not given, or a CommandError when no
    such shop exists (looked up as service_role: the command has no shop scope yet)."""
    from tenancy.models import Shop
    from tenancy.scope import atomic_scope, service_scope

    shop = (value or "").strip().lower() or None
    if shop is not None:
        with atomic_scope(service_scope()):
            if not Shop.objects.filter(domain=shop).exists():
                raise CommandError(f"No shop {shop!r}.")
    return shop


def bounded_option(option: str, value: int, maximum: int) -> int:
    """An integer option in 1..maximum, or a CommandError naming the option and the value."""
    if not 1 <= value <= maximum:
        raise CommandError(f"{option} must be between 1 and {maximum}; got {value}.")
    return value


def today_utc() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()
