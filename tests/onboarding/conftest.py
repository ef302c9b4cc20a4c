"""Reading rows as the database holds them (the actors come from tests/fixtures/tenants.py)."""

from __future__ import annotations

from typing import Any

from django.db import models

from tenancy.scope import atomic_scope, service_scope


def stored(model: type[models.Model], pk: int) -> Any:
    """A row as the database holds it (read as service_role: rows are invisible outside a scope)."""
    with atomic_scope(service_scope()):
        return model.objects.get(pk=pk)


def count(model: type[models.Model], **filters: Any) -> int:
    with atomic_scope(service_scope()):
        return model.objects.filter(**filters).count()


def snapshot(model: type[models.Model], pk: int) -> dict[str, Any]:
    """Every column of a row, to prove an action changed nothing."""
    with atomic_scope(service_scope()):
        return model.objects.filter(pk=pk).values().get()
