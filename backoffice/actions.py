"""Admin actions that apply a service to each selected row."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.contrib import admin, messages
from django.http import HttpRequest

from tenancy.errors import DomainError

_R = TypeVar("_R")


def apply_each(
    modeladmin: admin.ModelAdmin[Any],
    request: HttpRequest,
    rows: Iterable[_R],
    move: Callable[[_R], object],
    verb: str,
    *,
    noun: str = "row(s)",
    refused_level: int = messages.WARNING,
) -> None:
    """Run a service `move` on each selected row, each in its own transaction (the service's):
    the rows it refuses are reported one message each with the service's reasons and keep
    their state, the rest are applied and counted ("Started 2 experiment(s).")."""
    done, refused = 0, []
    for row in rows:
        try:
            move(row)
        except DomainError as exc:
            refused.append(f"{row}: {exc}")
        else:
            done += 1
    if done:
        modeladmin.message_user(request, f"{verb} {done} {noun}.", messages.SUCCESS)
    for reason in refused:
        modeladmin.message_user(request, f"Not {verb.lower()}: {reason}", refused_level)
