"""The health check before a request's first query runs only on connections that sat idle."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.db import connection, connections
from django.db.utils import OperationalError
from django.test import Client

from config.postgresql.base import DatabaseWrapper


@pytest.fixture
def fresh() -> Iterator[DatabaseWrapper]:
    """A connection of its own (outside the test's transaction), as a web worker holds one."""
    wrapper = connections.create_connection("default")
    assert isinstance(wrapper, DatabaseWrapper)
    yield wrapper
    wrapper.close()


def _backend_pid(wrapper: DatabaseWrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _terminate(pid: int) -> None:
    """What a server restart or an idle timeout does to a pooled connection."""
    killer = connections.create_connection("default")
    try:
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            assert cursor.fetchone()[0] is True
    finally:
        killer.close()
    time.sleep(0.2)


def _next_request(wrapper: DatabaseWrapper) -> None:
    """What Django does between two requests (close_old_connections)."""
    wrapper.close_if_unusable_or_obsolete()


@pytest.mark.django_db(transaction=True)
def test_a_connection_idle_longer_than_the_threshold_is_checked_and_replaced(fresh: DatabaseWrapper) -> None:
    old = _backend_pid(fresh)
    fresh._usable_at = time.monotonic() - DatabaseWrapper.HEALTH_CHECK_AFTER_IDLE_SECONDS - 1
    _terminate(old)
    _next_request(fresh)
    # The check finds the dead connection and the request gets a new one: no error.
    assert _backend_pid(fresh) != old


@pytest.mark.django_db(transaction=True)
def test_a_connection_never_marked_usable_is_checked(fresh: DatabaseWrapper) -> None:
    old = _backend_pid(fresh)
    _terminate(old)
    _next_request(fresh)
    assert _backend_pid(fresh) != old


@pytest.mark.django_db(transaction=True)
def test_a_connection_that_just_finished_a_request_skips_the_check(fresh: DatabaseWrapper) -> None:
    # The trade-off, pinned: a connection lost within the threshold fails its next request
    # once (Django then closes it), as any request in flight when a server dies would.
    old = _backend_pid(fresh)
    fresh._usable_at = time.monotonic()
    _terminate(old)
    _next_request(fresh)
    with pytest.raises(OperationalError):
        _backend_pid(fresh)


@pytest.mark.django_db
def test_the_end_of_a_request_marks_its_connections_usable(client: Client) -> None:
    connection._usable_at = None
    before = time.monotonic()
    assert client.get("/healthz").status_code == 200
    assert connection._usable_at is not None and connection._usable_at >= before
