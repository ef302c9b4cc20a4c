"""`make run`'s development server under the concurrency a person makes with a browser and a script.

`manage.py runserver` answers every request on a new thread. With persistent connections each
thread's connections (the request's and the rate limit's) outlived it until the garbage collector
found them: 16 clients, each request on a new HTTP connection as `curl` or a plain `requests.get`
make, filled PostgreSQL's 100 slots and got 213 errors in 500 requests ("remaining connection
slots are reserved"). Under runserver each alias now borrows from a pool of at most
`DEVELOPMENT_POOL_MAX_SIZE` connections (config/settings.py).
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from bench.load import Tenant, foreign_rows, interleave
from bench.servers import REPO, database_url
from tenancy.api.authentication import token_mint
from tenancy.factories import ShopFactory, ShopMembershipFactory, UserFactory

from .client import fetch, free_port

pytestmark = pytest.mark.slow

CLIENTS = 16
REQUESTS = 500
# The server's connections are told apart from this process's by their application name.
APPLICATION_NAME = "growth-runserver-test"
# Two pools (the aliases default and ratelimit) of DEVELOPMENT_POOL_MAX_SIZE = 8 each, whatever
# the number of clients.
CONNECTION_BOUND = 16


@dataclass
class DevServer:
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def runserver(django_db_setup: None, tmp_path: Path) -> Iterator[DevServer]:
    """`manage.py runserver` as `make run` starts it (debug on, autoreloader, threads), on the
    test database."""
    params = connection.get_connection_params()
    url = database_url(params)
    url += ("&" if "?" in url else "?") + f"application_name={APPLICATION_NAME}"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "DJANGO_"))}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", DATABASE_URL=url, LOG_LEVEL="WARNING")
    port = free_port()
    log_path = tmp_path / "runserver.log"
    with log_path.open("wb") as log:
        # A session of its own: the autoreloader's child is stopped with its parent.
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = DevServer(base_url=f"http://127.0.0.1:{port}", log_path=log_path)
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"runserver exited with {process.returncode}:\n{server.log()[-4000:]}")
            try:
                if fetch(server.base_url, "/healthz").status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"runserver did not answer within 90 s:\n{server.log()[-4000:]}")
            time.sleep(0.2)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@dataclass
class ConnectionSampler:
    """The server's connections in pg_stat_activity, counted every 50 ms while the load runs."""

    counts: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        params = connection.get_connection_params()
        keys = ("host", "port", "user", "password", "dbname")
        with psycopg.connect(**{key: params[key] for key in keys if key in params}, autocommit=True) as watcher:
            while not self._stop.is_set():
                row = watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APPLICATION_NAME]
                ).fetchone()
                self.counts.append(int(row[0]) if row else 0)
                self._stop.wait(0.05)

    def __enter__(self) -> ConnectionSampler:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _tenants(count: int) -> list[Tenant]:
    tenants = []
    for index in range(count):
        shop = ShopFactory(domain=f"devserver-{index}.myshopify.com")
        user = UserFactory(username=f"devserver-{index}-owner")
        ShopMembershipFactory(user=user, shop=shop, role="owner")
        token = token_mint(user=user, ttl=datetime.timedelta(minutes=30))
        tenants.append(Tenant(shop=shop.domain, user_id=str(user.pk), token=token, campaign_ids=()))
    return tenants


@pytest.mark.django_db(transaction=True)
def test_sixteen_clients_get_no_error_and_the_server_holds_a_bounded_number_of_connections(
    runserver: DevServer,
) -> None:
    # Reads of every list resource and one bulk write in ten (seo-rankings), three shops in turn.
    work = interleave(_tenants(3), total=REQUESTS, write_share=0.1, seed=11)
    statuses: Counter[int | str] = Counter()
    rows = Counter[str]()
    failures: list[str] = []
    lock = threading.Lock()
    position = 0

    def client() -> None:
        nonlocal position
        while True:
            with lock:
                if position >= len(work):
                    return
                tenant, call = work[position]
                position += 1
            headers = {
                "Authorization": f"Bearer {tenant.token}",
                "X-Shop-Domain": tenant.shop,
                "Accept": "application/json",
            }
            if call.body is not None:
                headers["Content-Type"] = "application/json"
            # A new HTTP connection a request (so a new server thread), as curl in a loop makes.
            try:
                reply = fetch(runserver.base_url, call.path, method=call.method, headers=headers, body=call.body)
                outcome: int | str = reply.status
                problem = "" if reply.status < 400 else f"{call.method} {call.path} {reply.status} {reply.text[:200]}"
                returned, foreign = foreign_rows(reply.json(), tenant) if reply.body else (0, 0)
            except OSError as exc:
                outcome, problem = type(exc).__name__, f"{call.method} {call.path} {exc}"
                returned = foreign = 0
            with lock:
                statuses[outcome] += 1
                rows.update(returned=returned, foreign=foreign)
                if problem:
                    failures.append(problem)

    with ConnectionSampler() as sampler:
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        time.sleep(0.5)

    assert sum(statuses.values()) == REQUESTS
    assert failures == [], (statuses, failures[:5])
    # The pooled connections pass from one shop's request to another's: the tenant settings are
    # transaction-scoped, so no row of another shop ever shows.
    assert rows["returned"] > 0
    assert rows["foreign"] == 0
    # Every thread took its connections from the two pools: never more than 2 x 8 at once,
    # however many clients (on main: 96, every slot PostgreSQL had).
    assert sampler.counts, "the sampler saw nothing"
    assert max(sampler.counts) <= CONNECTION_BOUND, max(sampler.counts)
    assert "Traceback" not in runserver.log(), runserver.log()[-4000:]
