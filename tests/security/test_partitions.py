"""Monthly partitions: the layout, row level security on every partition, routing, the
partition-ahead job and retention by dropping partitions (tenancy/partitions.py)."""

from __future__ import annotations

import datetime
import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.core.management.sql import emit_post_migrate_signal
from django.db import DatabaseError, connection, transaction

from growth.factories import AdCampaignFactory, AdPerformanceFactory, SocialAnalyticsFactory, SocialPostFactory
from growth.models import AdPerformance, SocialAnalytics
from tenancy.errors import Refused
from tenancy.partitions import (
    PartitionedTable,
    default_rows_condition,
    monthly_partitions,
    next_month,
    partitioned_table,
    partitioned_tables,
    partitions_ensure,
)
from tenancy.retention import expired_rows_purge
from tenancy.scope import SCOPE_ROLES, atomic_scope, back_office_scope, enter_scope, service_scope
from tenancy.services import row_create
from tests.fixtures.tenants import Tenant

pytestmark = pytest.mark.django_db

PARTITIONED = partitioned_tables()

AD = partitioned_table("ad_performance")
SOCIAL = partitioned_table("social_analytics")
assert AD is not None and SOCIAL is not None


def fetch(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall())


def partitions_of(spec: PartitionedTable) -> list[str]:
    return [
        str(name)
        for (name,) in fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass ORDER BY 1",
            [spec.table],
        )
    ]


def where(model: Any, pk: int) -> str:
    """The partition a row is stored in, read through the parent as service_role."""
    with atomic_scope(service_scope()):
        return str(model.objects.filter(pk=pk).extra(select={"part": "tableoid::regclass::text"}).get().part)


def today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


# --- Layout ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", PARTITIONED, ids=lambda spec: spec.table)
def test_table_is_range_partitioned_by_its_month_column_with_a_default_partition(spec: PartitionedTable) -> None:
    [(strategy, key)] = fetch(
        "SELECT p.partstrat, a.attname FROM pg_partitioned_table p "
        "JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0] "
        "WHERE p.partrelid = %s::regclass",
        [spec.table],
    )
    assert (strategy, key) == ("r", spec.column)
    assert fetch(
        "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partdefid "
        "WHERE p.partrelid = %s::regclass",
        [spec.table],
    ) == [(spec.default_partition,)]


# The schema's retention (days) of each partitioned table, written out rather than read from the
# declarations the code under test uses.
SCHEMA_RETENTION_DAYS = {"ad_performance": 730, "seo_rankings": 365, "social_analytics": 365}


@pytest.mark.parametrize("table", sorted(SCHEMA_RETENTION_DAYS))
def test_the_partitions_in_the_catalog_run_from_the_oldest_kept_month_to_three_months_ahead(table: str) -> None:
    # Worked out with month numbers, and the partitions' names read from pg_inherits.
    now = datetime.datetime.now(datetime.UTC).date()
    oldest = now - datetime.timedelta(days=SCHEMA_RETENTION_DAYS[table])
    first, last = oldest.year * 12 + oldest.month - 1, now.year * 12 + now.month - 1 + 3
    expected = [f"{table}_p{index // 12:04d}_{index % 12 + 1:02d}" for index in range(first, last + 1)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass AND c.relname <> %s ORDER BY c.relname",
            [table, f"{table}_default"],
        )
        assert [row[0] for row in cursor.fetchall()] == expected


@pytest.mark.parametrize("spec", PARTITIONED, ids=lambda spec: spec.table)
def test_primary_key_includes_the_partition_key(spec: PartitionedTable) -> None:
    assert fetch(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
        [spec.table],
    ) == [(f"PRIMARY KEY (id, {spec.column})",)]


def test_every_partition_has_row_level_security_forced_no_policy_and_no_privileges() -> None:
    partitions = [name for spec in PARTITIONED for name in partitions_of(spec)]
    assert len(partitions) > 3 * 12
    rows = fetch(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, "
        "(SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid), "
        "array(SELECT r FROM unnest(%s::text[]) r WHERE has_table_privilege(r, c.oid, "
        "'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')) "
        "FROM pg_class c WHERE c.relname = ANY(%s) ORDER BY 1",
        [sorted(SCOPE_ROLES), partitions],
    )
    assert [(name, True, True, 0, []) for name in sorted(partitions)] == [
        (name, enabled, forced, policies, list(granted)) for name, enabled, forced, policies, granted in rows
    ]


# --- Isolation across partitions --------------------------------------------------------------


def _spread(tenant: Tenant) -> list[AdPerformance]:
    """Rows of one shop in this month, last month and the DEFAULT partition (year 2001)."""
    campaign = AdCampaignFactory(shop=tenant.shop, platform_campaign_id=f"c-{tenant.shop.domain}")
    days = [today(), today().replace(day=1) - datetime.timedelta(days=1), datetime.date(2001, 1, 15)]
    return [AdPerformanceFactory(campaign=campaign, date=day) for day in days]


def test_a_tenant_sees_only_its_rows_in_every_partition(tenant_a: Tenant, tenant_b: Tenant) -> None:
    rows_a, rows_b = _spread(tenant_a), _spread(tenant_b)
    assert len({where(AdPerformance, row.pk) for row in rows_a}) == 3
    assert where(AdPerformance, rows_a[2].pk) == "ad_performance_default"
    for tenant, mine in ((tenant_a, rows_a), (tenant_b, rows_b)):
        with atomic_scope(tenant.scope()):
            assert sorted(AdPerformance.objects.values_list("pk", flat=True)) == sorted(row.pk for row in mine)
            # Deleting everything reaches this shop's rows only, in every partition.
            assert AdPerformance.objects.all().delete()[0] == 3
            transaction.set_rollback(True)
    with atomic_scope(service_scope()):
        assert AdPerformance.objects.count() == 6


@pytest.mark.parametrize("role", sorted(SCOPE_ROLES - {"anon"}))
def test_no_scope_role_can_address_a_partition_directly(tenant_a: Tenant, role: str) -> None:
    row = _spread(tenant_a)[0]
    partition = where(AdPerformance, row.pk)
    scope = {
        "authenticated": tenant_a.scope(),
        "back_office": back_office_scope(subject=None, shops=None),
        "service_role": service_scope(),
    }[role]
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic(), enter_scope(scope):
        fetch(f"SELECT count(*) FROM {partition}")


def test_the_table_owner_reads_nothing_from_a_partition(tenant_a: Tenant) -> None:
    row = _spread(tenant_a)[0]
    # Forced row level security without a policy: even the owner (the app's login role) sees no row.
    assert fetch(f"SELECT count(*) FROM {where(AdPerformance, row.pk)}") == [(0,)]


def test_a_tenant_cannot_write_a_row_of_another_shop_into_any_partition(tenant_a: Tenant, tenant_b: Tenant) -> None:
    campaign_b = AdCampaignFactory(shop=tenant_b.shop)
    for day in (today(), datetime.date(2001, 1, 15)):
        with pytest.raises(DatabaseError, match="row-level security"), atomic_scope(tenant_a.scope()):
            AdPerformance.objects.create(
                campaign=campaign_b, shop_id=tenant_b.shop.domain, date=day, impressions=1, clicks=0
            )


# --- Routing --------------------------------------------------------------------------------


def test_timestamps_are_cut_into_months_at_utc_midnight(tenant_a: Tenant) -> None:
    spec = SOCIAL
    assert spec is not None
    post = SocialPostFactory(shop=tenant_a.shop)
    this_month = today().replace(day=1)
    boundary = datetime.datetime.combine(this_month, datetime.time.min, tzinfo=datetime.UTC)
    # 23:30 the day before in UTC, 01:30 in Paris: still last month's partition.
    paris = datetime.timezone(datetime.timedelta(hours=2))
    before = SocialAnalyticsFactory(
        social_post=post, measured_at=(boundary - datetime.timedelta(minutes=30)).astimezone(paris)
    )
    at = SocialAnalyticsFactory(social_post=post, measured_at=boundary)
    last_month = (this_month - datetime.timedelta(days=1)).replace(day=1)
    assert where(SocialAnalytics, before.pk) == spec.partition(last_month)
    assert where(SocialAnalytics, at.pk) == spec.partition(this_month)


def test_ensure_moves_default_rows_into_new_partitions_keeping_ids_and_values(tenant_a: Tenant) -> None:
    assert AD is not None
    old = _spread(tenant_a)[2]
    with atomic_scope(service_scope()):
        before = AdPerformance.objects.filter(pk=old.pk).values().get()
    reports = partitions_ensure(today=today(), since=datetime.date(2001, 1, 1))
    [report] = [r for r in reports if r.table == "ad_performance"]
    assert report.moved_rows == 1
    assert "ad_performance_p2001_01" in report.created
    assert where(AdPerformance, old.pk) == "ad_performance_p2001_01"
    with atomic_scope(service_scope()):
        assert AdPerformance.objects.filter(pk=old.pk).values().get() == before
    with atomic_scope(tenant_a.scope()):
        assert AdPerformance.objects.filter(pk=old.pk).exists()
    # Row level security is back on everything the move touched.
    assert fetch(
        "SELECT bool_and(relforcerowsecurity) FROM pg_class WHERE relname IN "
        "('ad_performance', 'ad_performance_default', 'ad_performance_p2001_01')"
    ) == [(True,)]
    # A second run has nothing to do.
    again = partitions_ensure(today=today(), since=datetime.date(2001, 1, 1))
    assert all(not r.created and not r.moved_rows for r in again)


def test_ensure_leaves_rows_outside_its_range_in_the_default_partition(tenant_a: Tenant) -> None:
    old = _spread(tenant_a)[2]
    [report] = [r for r in partitions_ensure(today=today()) if r.table == "ad_performance"]
    assert report.moved_rows == 0
    assert report.left_in_default == [datetime.date(2001, 1, 1)]
    assert where(AdPerformance, old.pk) == "ad_performance_default"


def test_ensure_dry_run_creates_nothing() -> None:
    far = today().replace(day=1)
    for _ in range(10):
        far = next_month(far)
    before = {spec.table: partitions_of(spec) for spec in PARTITIONED}
    reports = partitions_ensure(today=today(), months_ahead=10, dry_run=True)
    assert all(spec.partition(far) in report.created for spec, report in zip(PARTITIONED, reports, strict=True))
    assert {spec.table: partitions_of(spec) for spec in PARTITIONED} == before


def test_a_duplicate_in_a_partition_is_reported_under_the_declared_constraint(tenant_a: Tenant) -> None:
    row = _spread(tenant_a)[0]
    with atomic_scope(tenant_a.scope()), pytest.raises(Refused) as excinfo:
        row_create(
            model=AdPerformance,
            data={"campaign_id": row.campaign_id, "date": row.date, "impressions": 1, "clicks": 0},
            actor=None,
            shop_id=tenant_a.shop.domain,
        )
    assert excinfo.value.detail == {
        "campaign": ["A row with the same key already exists (ad_performance_campaign_date_idx)."]
    }


def test_migrate_creates_missing_partitions_and_a_flush_does_not_walk_them() -> None:
    assert AD is not None
    furthest = max(partitions_of(AD))
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{furthest}"')
    # What `flush` sends (every transactional test's teardown): post_migrate without a plan.
    emit_post_migrate_signal(verbosity=0, interactive=False, db=connection.alias)
    assert furthest not in partitions_of(AD)
    # What `migrate` sends: with its plan (empty when every migration is applied).
    emit_post_migrate_signal(verbosity=0, interactive=False, db=connection.alias, plan=[])
    assert furthest in partitions_of(AD)


# --- The command ----------------------------------------------------------------------------


def test_ensure_partitions_command_reports_each_table() -> None:
    out = StringIO()
    call_command("ensure_partitions", "--months-ahead", "5", stdout=out, stderr=StringIO())
    text = out.getvalue()
    for spec in PARTITIONED:
        assert f"{spec.table}: " in text
    assert "created 2 partitions" in text
    assert "Partitions ready." in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--months-ahead", "-1"], "--months-ahead must be between 0 and 120"),
        (["--since", "2026-13-01"], "--since must be a date as YYYY-MM-DD"),
        (["--today", "2026-01-01", "--since", "2026-02-01"], "must not be after today"),
    ],
)
def test_ensure_partitions_command_refuses_bad_options(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("ensure_partitions", *args, stdout=StringIO(), stderr=StringIO())


# --- Retention by dropping partitions -------------------------------------------------------


def test_purge_drops_wholly_expired_partitions_and_deletes_the_partial_month(tenant_a: Tenant) -> None:
    assert AD is not None
    campaign = AdCampaignFactory(shop=tenant_a.shop)
    purge_day = datetime.date(2026, 7, 15)  # ad_performance keeps 730 days: first day kept 2024-07-15
    partitions_ensure(today=purge_day, since=datetime.date(2024, 5, 1))
    for day in ("2024-05-10", "2024-06-01", "2024-06-30", "2024-07-14", "2024-07-15", "2024-08-02"):
        AdPerformanceFactory(campaign=campaign, date=datetime.date.fromisoformat(day))
    dropped: list[tuple[str, int]] = []
    assert (
        expired_rows_purge(today=purge_day, dry_run=True, dropped=lambda *d: dropped.append(d))["ad_performance"] == 4
    )
    assert [d for d in dropped if d[0].startswith("ad_")] == [
        ("ad_performance_p2024_05", 1),
        ("ad_performance_p2024_06", 2),
    ]
    assert "ad_performance_p2024_05" in partitions_of(AD)
    dropped.clear()
    removed = expired_rows_purge(today=purge_day, dry_run=False, dropped=lambda *d: dropped.append(d))
    # Two partitions dropped (3 rows), the expired day of July deleted row by row.
    assert removed["ad_performance"] == 4
    assert [d for d in dropped if d[0].startswith("ad_")] == [
        ("ad_performance_p2024_05", 1),
        ("ad_performance_p2024_06", 2),
    ]
    remaining = partitions_of(AD)
    assert "ad_performance_p2024_05" not in remaining and "ad_performance_p2024_06" not in remaining
    assert "ad_performance_p2024_07" in remaining
    with atomic_scope(service_scope()):
        dates = AdPerformance.objects.filter(campaign=campaign).values_list("date", flat=True)
        assert sorted(str(day) for day in dates) == ["2024-07-15", "2024-08-02"]


@pytest.mark.parametrize("spec", PARTITIONED, ids=lambda spec: spec.table)
def test_reading_the_default_partitions_months_scans_that_partition_only(spec: PartitionedTable) -> None:
    condition, params = default_rows_condition(spec, sorted(monthly_partitions(spec)))
    with atomic_scope(service_scope()):
        plan = "\n".join(row[0] for row in fetch(f"EXPLAIN SELECT * FROM {spec.table} WHERE {condition}", params))
    scanned = set(re.findall(rf"\bon ({spec.table}_\w+)", plan))
    assert scanned == {spec.default_partition}, plan
