"""A lost or refused database connection: 503 with Retry-After at the API, one line from a command.

The backends are really terminated (`pg_terminate_backend` in its wait form, which returns once
the backend has exited): the errors under test are the ones psycopg raises then, not made-up
ones. tests/deploy/test_database_unavailable.py does the same against a refused port, over HTTP.
"""

from __future__ import annotations

import datetime
import io
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool
import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, close_old_connections, connection
from django.db.transaction import TransactionManagementError
from django.db.utils import IntegrityError, OperationalError, ProgrammingError
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from rest_framework.test import APIClient

from bench.servers import REPO, production_env
from config.postgresql.errors import database_unavailable
from growth.factories import AdCampaignFactory
from growth.management.commands.import_metrics import EXIT_DATABASE_UNAVAILABLE
from growth.models import AdPerformance, SeoRanking
from tenancy.api.authentication import token_mint
from tenancy.api.errors import RETRY_AFTER_SECONDS
from tenancy.api.middleware import DatabaseUnavailableMiddleware
from tenancy.api.views import server_error
from tenancy.factories import ShopFactory, ShopMembershipFactory, UserFactory
from tenancy.scope import atomic_scope, service_scope

SHOP = "lost.myshopify.com"
RANKINGS = "/api/v1/seo-rankings/"


def _django_error(driver: BaseException, kind: type[DatabaseError] = OperationalError) -> DatabaseError:
    """`driver` as Django raises it: its own class, `from` psycopg's."""
    try:
        try:
            raise driver
        except BaseException as exc:
            raise kind(str(exc)) from exc
    except DatabaseError as wrapped:
        return wrapped


@pytest.mark.parametrize(
    ("driver", "reason"),
    [
        (psycopg.errors.AdminShutdown("terminating connection"), "AdminShutdown, SQLSTATE 57P01"),
        (psycopg.errors.CrashShutdown(), "CrashShutdown, SQLSTATE 57P02"),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), "CannotConnectNow, SQLSTATE 57P03"),
        (psycopg.errors.ConnectionFailure(), "ConnectionFailure, SQLSTATE 08006"),
        (psycopg.errors.ConnectionException(), "ConnectionException, SQLSTATE 08000"),
        (psycopg.errors.TooManyConnections(), "TooManyConnections, SQLSTATE 53300"),
        # No SQLSTATE: the client's side failed (refused, socket closed, no pooled connection).
        (psycopg.OperationalError("connection failed"), "OperationalError"),
        (psycopg_pool.PoolTimeout("couldn't get a connection after 5.00 sec"), "PoolTimeout"),
    ],
)
def test_a_lost_or_refused_connection_is_unavailability(driver: psycopg.Error, reason: str) -> None:
    assert database_unavailable(_django_error(driver)) == reason
    assert database_unavailable(driver) == reason


@pytest.mark.parametrize(
    "error",
    [
        _django_error(psycopg.errors.QueryCanceled()),  # 57014: a statement timeout
        _django_error(psycopg.errors.LockNotAvailable()),  # 55P03
        _django_error(psycopg.errors.SerializationFailure()),  # 40001
        _django_error(psycopg.errors.UniqueViolation(), IntegrityError),
        _django_error(psycopg.errors.UndefinedTable(), ProgrammingError),
        # psycopg's InterfaceError is a caller's bug (a closed cursor), not an outage.
        _django_error(psycopg.InterfaceError("the cursor is closed")),
        OperationalError("no driver error behind it"),
        ValueError("connection failed"),  # the words do not count, the class does
    ],
    ids=lambda error: type(error.__cause__ or error).__name__,
)
def test_other_errors_are_not(error: BaseException) -> None:
    assert database_unavailable(error) is None


def test_an_error_raised_while_handling_a_lost_connection_is_unavailability() -> None:
    lost = _django_error(psycopg.errors.AdminShutdown())
    try:
        try:
            raise lost
        except DatabaseError:
            # What Django raises for the next query in a broken atomic block.
            raise TransactionManagementError("An error occurred in the current transaction.") from None
    except TransactionManagementError as suppressed:
        assert database_unavailable(suppressed) is None
    try:
        try:
            raise lost
        except DatabaseError:
            raise TransactionManagementError("An error occurred in the current transaction.")  # noqa: B904
    except TransactionManagementError as chained:
        assert database_unavailable(chained) == "AdminShutdown, SQLSTATE 57P01"


# --- the API, with its backend really terminated ------------------------------------------------


def _terminate(pid: int) -> None:
    """pg_terminate_backend's wait form: true once the backend has exited (5 s at most)."""
    params = connection.get_connection_params()
    keys = ("host", "port", "user", "password", "dbname")
    with psycopg.connect(**{key: params[key] for key in keys if key in params}, autocommit=True) as killer:
        row = killer.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone()
    assert row == (True,)


def _backend_pid() -> int:
    assert connection.connection is not None, "the request's connection is closed"
    return int(connection.connection.info.backend_pid)


@pytest.fixture
def database(transactional_db: None) -> Iterator[None]:
    """Rows committed (each request runs in its own transaction, on the test's connection); that
    connection is replaced afterwards if a test broke it, before the tables are flushed."""
    yield
    connection.close()


@pytest.fixture
def owner(database: None) -> APIClient:
    """The owner of SHOP."""
    shop = ShopFactory(domain=SHOP)
    user = UserFactory(username="lost-owner")
    ShopMembershipFactory(user=user, shop=shop, role="owner")
    client = APIClient()
    token = token_mint(user=user, ttl=datetime.timedelta(minutes=10))
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_X_SHOP_DOMAIN=SHOP)
    return client


def _assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    body = json.loads(response.content)
    assert body["status"] == 503 and body["code"] == "database_unavailable" and body["errors"] == []
    assert "Retry" in body["detail"]


def _rankings() -> int:
    with atomic_scope(service_scope()):
        return SeoRanking.objects.filter(shop_id=SHOP).count()


def _rows(count: int) -> list[dict[str, Any]]:
    return [
        {"keyword": f"lost keyword {n}", "position": n + 1, "tracked_at": "2026-03-01T12:00:00Z"} for n in range(count)
    ]


def test_a_request_on_a_terminated_backend_is_a_503_with_retry_after_and_the_next_one_recovers(
    owner: APIClient,
) -> None:
    assert owner.get(RANKINGS).status_code == 200
    # Within the idle threshold the next request skips the health check (config/postgresql/base.py),
    # so it meets the dead connection: what a restart or failover does to requests in flight.
    _terminate(_backend_pid())
    _assert_unavailable(owner.get(RANKINGS))
    # At the end of a request Django closes a connection that saw an error and no longer answers
    # (the test client leaves that out); the next request opens a new one.
    close_old_connections()
    assert owner.get(RANKINGS).status_code == 200


def test_a_write_whose_backend_is_terminated_mid_request_is_a_503_and_writes_nothing(owner: APIClient) -> None:
    fired: list[int] = []

    def terminate_after_the_upsert(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        result = execute(sql, *args)
        if not fired and sql.lstrip().upper().startswith(("INSERT", "WITH")) and "seo_rankings" in sql:
            fired.append(_backend_pid())
            _terminate(fired[0])
        return result

    assert owner.get(RANKINGS).status_code == 200
    with connection.execute_wrapper(terminate_after_the_upsert):
        response = owner.post(f"{RANKINGS}bulk/", _rows(5), format="json")
    assert fired, "the upsert never ran"
    _assert_unavailable(response)
    # The upsert had run in the request's transaction; the server rolled it back with the backend.
    close_old_connections()
    assert _rankings() == 0
    assert owner.post(f"{RANKINGS}bulk/", _rows(5), format="json").json() == {"created": 5, "updated": 0, "rows": 5}
    assert _rankings() == 5


def test_a_lost_connection_outside_drf_is_a_503_too() -> None:
    """What fails around the view (the request's transaction) or in a middleware."""
    lost = _django_error(psycopg.errors.AdminShutdown())
    factory = RequestFactory()
    middleware = DatabaseUnavailableMiddleware(lambda request: HttpResponse())
    api = middleware.process_exception(factory.get(RANKINGS), lost)
    assert api is not None
    _assert_unavailable(api)
    admin = middleware.process_exception(factory.get("/admin/"), lost)
    assert admin is not None and admin.status_code == 503
    assert admin["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert admin["Content-Type"].startswith("text/plain")
    # Any other error is left to Django (a 500).
    assert middleware.process_exception(factory.get(RANKINGS), ValueError("boom")) is None

    def answer(request: HttpRequest, error: BaseException) -> Any:
        try:
            raise error
        except BaseException:
            return server_error(request)

    _assert_unavailable(answer(factory.get(RANKINGS), lost))
    assert answer(factory.get(RANKINGS), ValueError("boom")).status_code == 500


# --- import_metrics -------------------------------------------------------------------------------


@pytest.fixture
def campaign_id(database: None) -> int:
    return int(AdCampaignFactory(shop=ShopFactory(domain=SHOP)).pk)


def _csv(path: Path, campaign: int, days: int) -> Path:
    start = datetime.date(2025, 1, 1)
    lines = [f"{campaign},{start + datetime.timedelta(days=day)},100,5,1,2.50,9.00\n" for day in range(days)]
    path.write_text("campaign_id,date,impressions,clicks,conversions,cost,revenue\n" + "".join(lines))
    return path


def _performance_rows() -> int:
    with atomic_scope(service_scope()):
        return AdPerformance.objects.filter(shop_id=SHOP).count()


def test_import_metrics_whose_backend_is_terminated_says_so_in_one_line_and_imports_nothing(
    campaign_id: int, tmp_path: Path
) -> None:
    path = _csv(tmp_path / "ads.csv", campaign_id, days=30)
    upserts: list[int] = []

    def terminate_after_the_first_batch(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        result = execute(sql, *args)
        if "ad_performance" in sql and sql.lstrip().upper().startswith(("INSERT", "WITH")):
            upserts.append(1)
            if len(upserts) == 1:
                _terminate(_backend_pid())
        return result

    connection.close()
    with connection.execute_wrapper(terminate_after_the_first_batch), pytest.raises(CommandError) as raised:
        call_command("import_metrics", "ad_performance", str(path), shop=SHOP, batch_size=10, stdout=io.StringIO())
    assert upserts, "no batch was upserted"
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: the database connection was lost or refused (")
    assert "nothing was imported" in message
    assert raised.value.returncode == EXIT_DATABASE_UNAVAILABLE
    # The first batch (10 rows) had been upserted in the import's transaction: gone with it.
    connection.close()
    assert _performance_rows() == 0


def test_import_metrics_with_the_database_refused_exits_75_with_one_line(tmp_path: Path) -> None:
    path = _csv(tmp_path / "ads.csv", 1, days=3)
    env = production_env(
        DATABASE_URL="postgresql://app_owner:x@127.0.0.1:1/nothing",
        JWT_SECRET="j" * 40,
        LOG_FORMAT="text",
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "manage.py", "import_metrics", "ad_performance", str(path), "--shop", SHOP],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == EXIT_DATABASE_UNAVAILABLE, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"CommandError: {path}: the database connection was lost or refused (")
    assert "nothing was imported" in lines[0]
    assert result.stdout == ""
    assert time.monotonic() - started < 60
