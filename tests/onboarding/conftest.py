"""The API actors of tests/api (owners, member, viewer of shops A and B), and DB helpers."""

from __future__ import annotations

from typing import Any

from django.db import models

from tenancy.scope import atomic_scope, service_scope
from tests.api.conftest import member_a, outsider, owner_a, owner_b, viewer_a

# Imported so that pytest registers them as fixtures for this folder too.
__all__ = ["member_a", "outsider", "owner_a", "owner_b", "viewer_a"]


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
