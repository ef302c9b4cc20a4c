"""`/readyz`: 200 when the database answers and every migration is applied, else 503 in JSON."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client


@pytest.mark.django_db
def test_readyz_answers_200_on_a_migrated_database() -> None:
    response = Client().get("/readyz")
    assert response.status_code == 200
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
    assert response.json() == {
        "status": "unavailable",
        "database": "ok",
        "migrations": "pending",
        "pending": [forgotten],
    }


@pytest.mark.django_db
def test_readyz_accepts_only_get() -> None:
    assert Client().post("/readyz").status_code == 405
