"""Everything that talks to the database, through a real transaction pooler.

Debian's PgBouncer in transaction mode (make pgbouncer installs it) is started by the test in
front of the embedded test database with a pool of one or two server connections, so clients of
different shops take turns on the same server session: a tenant setting that outlived its
transaction would show up in the next client's rows. The app runs with
DATABASE_PREPARED_STATEMENTS=0, as behind Supabase's port 6543.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from bench.load import drive, interleave, tenants_of
from bench.servers import REPO, Pooler, gunicorn, pgbouncer, pgbouncer_available, production_env
from growth.models import AdPerformance, SeoRanking
from tenancy.demo import demo_data_seed
from tenancy.scope import atomic_scope, service_scope

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(pgbouncer_available() is not None, reason=str(pgbouncer_available())),
]


@pytest.fixture
def pooler(django_db_setup: None) -> Iterator[Pooler]:
    with pgbouncer(connection.get_connection_params(), pool_size=1) as running:
        yield running


def _client(pooler: Pooler) -> psycopg.Connection[Any]:
    # prepare_threshold=None: no server-side prepared statements, as the app behind a pooler.
    return psycopg.connect(pooler.url(connection.get_connection_params()), prepare_threshold=None, autocommit=True)


def test_two_clients_share_one_server_session_and_a_tenant_scope_ends_with_its_transaction(pooler: Pooler) -> None:
    with _client(pooler) as first, _client(pooler) as second:
        pid = first.execute("SELECT pg_backend_pid()").fetchone()
        assert second.execute("SELECT pg_backend_pid()").fetchone() == pid
        # A scope is SET LOCAL: the next client on the same server session sees nothing of it.
        with first.transaction():
            first.execute(
                "SELECT set_config('role', 'authenticated', true), "
                "set_config('app.current_shop', 'alpha.myshopify.com', true)"
            )
            assert first.execute("SELECT current_user, current_setting('app.current_shop')").fetchone() == (
                "authenticated",
                "alpha.myshopify.com",
            )
        assert second.execute("SELECT current_user, current_setting('app.current_shop', true)").fetchone() == (
            "app_owner",
            "",
        )
        # What the scopes avoid: a session-level SET does leak to the other client. (This is
        # what makes the assertion above meaningful: the session really is shared.)
        first.execute("SET app.current_shop = 'leaked.myshopify.com'")
        assert second.execute("SELECT current_setting('app.current_shop', true)").fetchone() == (
            "leaked.myshopify.com",
        )
        first.execute("RESET app.current_shop")


def _start_import(path: Path, *, shop: str, database_url: str) -> subprocess.Popen[str]:
    env = production_env(
        DATABASE_URL=database_url, DATABASE_PREPARED_STATEMENTS="0", JWT_SECRET="j" * 40, LOG_FORMAT="text"
    )
    return subprocess.Popen(
        [sys.executable, "manage.py", "import_metrics", "ad_performance", str(path), "--shop", shop],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.django_db(transaction=True)
def test_interleaved_shops_read_write_and_import_through_the_pooler_without_a_foreign_row(tmp_path: Path) -> None:
    demo_data_seed(shops=3, days=3)
    tenants = tenants_of(3)
    params = connection.get_connection_params()
    with pgbouncer(params, pool_size=2) as pooler:
        url = pooler.url(params)
        env = production_env(
            DATABASE_URL=url,
            DATABASE_PREPARED_STATEMENTS="0",
            JWT_SECRET=settings.JWT_SECRET,
            DJANGO_SECURE_SSL_REDIRECT="0",
            API_THROTTLE_RATE="100000000/minute",
        )
        # An import of shop 1's file runs while the server answers the three shops.
        campaign = tenants[0].campaign_ids[0]
        today = datetime.datetime.now(datetime.UTC).date()
        csv = tmp_path / "ad_performance.csv"
        csv.write_text(
            "campaign_id,date,impressions,clicks,conversions,cost,revenue\n"
            + "".join(
                f"{campaign},{today - datetime.timedelta(days=30 + day)},100,5,1,2.50,9.00\n" for day in range(40)
            )
        )
        with gunicorn(env, workers=3, log_path=tmp_path / "server.log") as server:
            importer = _start_import(csv, shop=tenants[0].shop, database_url=url)
            work = interleave(tenants, total=360, write_share=0.25, seed=3)
            result = drive(server.base_url, work, concurrency=8, deadline_seconds=240)
            out, err = importer.communicate(timeout=300)
            assert "Traceback" not in server.log()
        stats = {row["database"]: row for row in pooler.stats(params)}
    assert importer.returncode == 0, out + err
    assert "40 were created" in out, out

    summary = result.summary()
    assert summary["requests"] == 360
    assert summary["errors"] == 0, summary["error_examples"]
    assert summary["foreign_rows"] == 0
    assert summary["rows_returned"] > 1000
    # Every request and the import went through the pooler's two server connections.
    assert stats[str(params["dbname"])]["total_xact_count"] > 360

    # Each bulk write landed in its caller's shop, stamped with its caller (no identity crossed
    # over on a shared server session).
    with atomic_scope(service_scope()):
        for tenant in tenants:
            for model in (AdPerformance, SeoRanking):
                written = model.objects.filter(created_by=tenant.user_id)
                assert written.exists(), (model.__name__, tenant.shop)
                assert not written.exclude(shop_id=tenant.shop).exists()
        imported_rows = AdPerformance.objects.filter(
            campaign_id=campaign, date__lte=today - datetime.timedelta(days=30)
        )
        assert imported_rows.count() == 40
        assert set(imported_rows.values_list("shop_id", flat=True)) == {tenants[0].shop}
