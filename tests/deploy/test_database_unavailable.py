"""The production server while its database refuses connections: 503 with Retry-After, never a 500.

gunicorn as `make serve` runs it (debug off) with DATABASE_URL on a port where nothing listens.
The probes say 503 (tests/deploy/test_production_server.py); so does every other request, in the
API's JSON error shape under /api/, so that clients and proxies retry. tests/db/
test_database_unavailable.py terminates real backends under requests and an import.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings

from bench.servers import Server, gunicorn, production_env
from tenancy.api.authentication import token_mint
from tenancy.models import User

from .client import Reply, fetch

pytestmark = pytest.mark.slow

HOST = {"Host": "127.0.0.1"}


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = production_env(
        DATABASE_URL="postgresql://app_owner:x@127.0.0.1:1/nothing",
        JWT_SECRET=settings.JWT_SECRET,
        DJANGO_SECURE_SSL_REDIRECT="0",
        DATABASE_CONN_MAX_AGE="0",
    )
    with gunicorn(env, workers=1, log_path=tmp_path_factory.mktemp("refused") / "server.log") as server:
        yield server


def _token() -> str:
    # A valid token (the server's secret) for a user the server cannot look up: no database.
    user = User(id=uuid.uuid4(), username="nobody", email="nobody@example.com")
    return token_mint(user=user, ttl=datetime.timedelta(minutes=5))


def _assert_json_503(reply: Reply) -> None:
    assert reply.status == 503, reply.text
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.headers["Retry-After"].isdigit()
    body = reply.json()
    assert body["status"] == 503
    assert body["code"] == "database_unavailable"
    assert body["errors"] == []


def test_an_api_read_and_write_answer_503_json_with_retry_after(refused: Server) -> None:
    headers = {**HOST, "Authorization": f"Bearer {_token()}", "X-Shop-Domain": "alpha.myshopify.com"}
    _assert_json_503(fetch(refused.base_url, "/api/v1/ad-campaigns/", headers=headers))
    write = fetch(
        refused.base_url,
        "/api/v1/seo-rankings/bulk/",
        method="POST",
        headers={**headers, "Content-Type": "application/json"},
        body=b'[{"keyword": "k", "position": 1, "tracked_at": "2026-03-01T12:00:00Z"}]',
    )
    _assert_json_503(write)
    assert "Traceback" not in refused.log()
    assert "database unavailable (OperationalError)" in refused.log()


def test_a_page_outside_the_api_answers_503_with_retry_after(refused: Server) -> None:
    # The admin's login page: its request transaction (ATOMIC_REQUESTS) cannot connect.
    login = fetch(refused.base_url, "/admin/login/", headers=HOST)
    assert login.status == 503, login.text
    assert login.headers["Retry-After"].isdigit()
    # A signed-in staff member's session is read by a middleware, before any view.
    session = {**HOST, "Cookie": "sessionid=abcdefghijklmnopqrstuvwxyz012345"}
    signed_in = fetch(refused.base_url, "/admin/", headers=session)
    assert signed_in.status == 503, signed_in.text
    assert signed_in.headers["Retry-After"].isdigit()


def test_the_probes_answer_the_apis_503(refused: Server) -> None:
    # The same 503 as under /api/, so a load balancer and a client read it alike.
    _assert_json_503(fetch(refused.base_url, "/healthz", headers=HOST))
    _assert_json_503(fetch(refused.base_url, "/readyz", headers=HOST))
