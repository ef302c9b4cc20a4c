"""The probes (config/health.py): `/healthz` and `/readyz` answer 200 in JSON when they may, and
any 503 in the API's one JSON error shape (tenancy/api/errors.py `error_body`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

# The API's own answer to a lost or refused database (tenancy.api.errors.unavailable_body).
DATABASE_UNAVAILABLE = {
    "status": 503,
    "code": "database_unavailable",
    "detail": "The database is unavailable (connection lost or refused). Retry the request.",
    "errors": [],
}


@pytest.mark.django_db
def test_healthz_answers_200_when_the_database_answers() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.mark.django_db
def test_readyz_answers_200_on_a_migrated_database() -> None:
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"status": "ready", "database": "ok", "migrations": "ok"}
    assert "no-cache" in response.headers["Cache-Control"]


@pytest.mark.django_db
def test_readyz_answers_503_naming_a_migration_that_is_not_applied() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM django_migrations WHERE id = (SELECT max(id) FROM django_migrations WHERE app = 'jobs') "
            "RETURNING app || '.' || name"
        )
        (forgotten,) = cursor.fetchone()
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "status": 503,
        "code": "migrations_pending",
        "detail": "1 migration(s) not applied yet; run `manage.py migrate`.",
        "errors": [{"field": "migrations", "code": "pending", "message": forgotten}],
    }


@pytest.mark.django_db
def test_readyz_accepts_only_get() -> None:
    assert Client().post("/readyz").status_code == 405


def test_without_a_database_both_probes_answer_the_apis_503() -> None:
    # A real process with DEBUG off whose database is a closed port: ATOMIC_REQUESTS used to
    # connect before the probe's try/except ran (a 500 HTML page).
    script = (
        "import json, django; django.setup()\n"
        "from django.test import Client\n"
        "client = Client(raise_request_exception=False)\n"
        "replies = [client.get(path) for path in ('/healthz', '/readyz')]\n"
        "print(json.dumps([[r.status_code, r['Content-Type'], r.get('Retry-After'), r.content.decode()] "
        "for r in replies]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "API_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL="postgresql://app_owner:x@127.0.0.1:1/unreachable",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="test-secret-key-0123456789",
        JWT_SECRET="test-jwt-secret-0123456789-0123456789",
        JWT_AUDIENCE="authenticated",
        DJANGO_ALLOWED_HOSTS="testserver",
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    health, ready = json.loads(out.stdout.strip().splitlines()[-1])
    for status, content_type, retry_after, body in (health, ready):
        assert (status, content_type, retry_after) == (503, "application/json", "5")
        assert json.loads(body) == DATABASE_UNAVAILABLE
