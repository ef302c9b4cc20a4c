"""A real production server (gunicorn, debug off) on the test database, shared by this folder."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from bench.servers import REPO, Server, database_url, gunicorn, production_env


def database_url_for_tests() -> str:
    return database_url(connection.get_connection_params())


def collect_static(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=REPO,
        env=env,
        check=True,
        timeout=300,
        capture_output=True,
    )


@pytest.fixture(scope="package")
def production(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """gunicorn with DJANGO_DEBUG=0 behind a (pretend) TLS proxy: what `make serve` runs.

    Static files are collected into a temporary STATIC_ROOT first, as `make serve` does.
    """
    folder = tmp_path_factory.mktemp("production")
    env = production_env(
        DATABASE_URL=database_url_for_tests(),
        JWT_SECRET=settings.JWT_SECRET,
        DJANGO_STATIC_ROOT=str(folder / "static"),
        DJANGO_SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
        DJANGO_SECURE_HSTS_SECONDS="3600",
        LOG_LEVEL="INFO",
    )
    collect_static(env)
    with gunicorn(env, workers=2, log_path=folder / "server.log") as server:
        yield server


PROXY_HEADERS = {"Host": "127.0.0.1", "X-Forwarded-Proto": "https"}
