"""The probes: `/healthz` (liveness) and `/readyz` (readiness), for load balancers; no auth.

`/healthz` answers 200 when the process and its database answer. `/readyz` answers 200 only
when the database answers and every migration is applied; a load balancer or an orchestrator
should send traffic only once it says 200, which a deployment whose `migrate` has not run yet
(or failed half-way) does not.

Both answer a failure with the API's one JSON error shape (tenancy/api/errors.py `error_body`),
so a client or a proxy reads a probe's 503 like any other: an unreachable database is the API's
own 503 `database_unavailable` with `Retry-After` (the same body a request under /api/ gets), and
migrations not applied yet are a 503 `migrations_pending` whose `errors` name them (first 20),
one `{"field": "migrations", "code": "pending", "message": "<app>.<migration>"}` each. The 200
bodies say what was checked (`{"status": "ok", ...}`, `{"status": "ready", ...}`).

Both run outside ATOMIC_REQUESTS: the request's transaction would connect before the view runs,
so an unreachable database was a 500 (HTML) from the handler instead of the probe's 503.
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

from tenancy.api.errors import error_body, unavailable_response

# How many pending migrations a 503 of /readyz names (a fresh database has all of them pending).
PENDING_LISTED = 20


@functools.cache
def expected_migrations() -> frozenset[tuple[str, str]]:
    """The migrations on disk (read once per process: they do not change while it runs)."""
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)


@extend_schema(exclude=True)
@transaction.non_atomic_requests
def healthz(request: HttpRequest) -> JsonResponse:
    """200 `{"status": "ok", "database": "ok"}` when the database answers, else the 503."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return unavailable_response()
    return JsonResponse({"status": "ok", "database": "ok"})


@extend_schema(exclude=True)
@never_cache
@require_GET
@transaction.non_atomic_requests
def readyz(request: HttpRequest) -> JsonResponse:
    """200 `{"status": "ready", ...}`; 503 when the database is down or behind."""
    try:
        applied = set(MigrationRecorder(connection).applied_migrations())
    except DatabaseError:
        return unavailable_response()
    pending = sorted(f"{app}.{name}" for app, name in expected_migrations() - applied)
    if pending:
        detail = f"{len(pending)} migration(s) not applied yet; run `manage.py migrate`."
        errors = [{"field": "migrations", "code": "pending", "message": name} for name in pending[:PENDING_LISTED]]
        body = error_body(status_code=503, code="migrations_pending", detail=detail, errors=errors)
        return JsonResponse(body, status=503)
    return JsonResponse({"status": "ready", "database": "ok", "migrations": "ok"})
