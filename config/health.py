"""Readiness: `/readyz` answers 200 only when the database answers and every migration is applied.

`/healthz` (tenancy.api.views) says whether the process and its database are alive; a load
balancer or an orchestrator should send traffic only once `/readyz` says 200, which a
deployment whose `migrate` has not run yet (or failed half-way) does not.
"""

from __future__ import annotations

import functools

from django.db import DatabaseError, connection, transaction
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema


@functools.cache
def expected_migrations() -> frozenset[tuple[str, str]]:
    """The migrations on disk (read once per process: they do not change while it runs)."""
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)


@extend_schema(exclude=True)
@never_cache
@require_GET
@transaction.non_atomic_requests
def readyz(request: HttpRequest) -> JsonResponse:
    """200 `{"status": "ready"}`; 503 with the reason when the database is down or behind."""
    try:
        applied = set(MigrationRecorder(connection).applied_migrations())
    except DatabaseError:
        return JsonResponse({"status": "unavailable", "database": "unreachable", "migrations": None}, status=503)
    pending = sorted(f"{app}.{name}" for app, name in expected_migrations() - applied)
    if pending:
        return JsonResponse(
            {"status": "unavailable", "database": "ok", "migrations": "pending", "pending": pending[:20]},
            status=503,
        )
    return JsonResponse({"status": "ready", "database": "ok", "migrations": "ok"})
