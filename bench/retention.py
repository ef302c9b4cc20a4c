"""Retention: purging the oldest month of ad_performance.

- `batched`: `tenancy.retention.expired_rows_purge` (what `manage.py purge_expired` runs) with a
  `today` that makes exactly the oldest month expired: `DELETE ... WHERE id IN (SELECT id ...
  LIMIT 5000)` as `service_role`, one transaction per batch. The other tables with a
  retention period hold no rows by now (the storage benchmark removes its samples), so the
  call's time is ad_performance's.
- `plain`: one `DELETE FROM ad_performance WHERE date < first_kept` as `service_role` in one
  transaction.
- The VACUUM that makes the deleted rows' space reusable is timed after each plain DELETE: a
  DELETE leaves it to do, dropping a partition does not.
- Dropping a month's partition: not measured, partitioning is not implemented yet.

Each round purges the month both ways, writing it again (the same rows) and vacuuming before
each purge, outside the clock. The first round is a warm-up.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from growth.models import AdPerformance
from tenancy.retention import DEFAULT_BATCH_SIZE, RETENTION, expired_rows_purge
from tenancy.scope import atomic_scope, service_scope

from .data import Dataset, insert_ad_performance
from .harness import BenchError, BenchResult, Options, explain, log, scalar, vacuum_analyze

ROUNDS = 3
PLAIN_SQL = "DELETE FROM ad_performance WHERE date < %s"


def _month_after(day: datetime.date) -> datetime.date:
    return (day.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)


def _count_before(first_kept: datetime.date) -> int:
    with atomic_scope(service_scope()):
        return int(scalar("SELECT count(*) FROM ad_performance WHERE date < %s", [first_kept]))


def _median(values: list[float]) -> float:
    return round(float(np.median(values)), 4)


def run(options: Options, dataset: Dataset) -> BenchResult:
    result = BenchResult("retention")
    rule = next(r for r in RETENTION if r.model is AdPerformance)
    assert rule.days is not None
    first_kept = _month_after(dataset.start_date)
    if first_kept > dataset.end_date:
        raise BenchError("the data set spans less than a month; retention needs more --rows per campaign")
    today = first_kept + datetime.timedelta(days=rule.days)
    if rule.cutoff(today) != first_kept:
        raise BenchError(f"retention cut-off {rule.cutoff(today)} is not the expected {first_kept}")
    month_days = (first_kept - dataset.start_date).days
    expected = _count_before(first_kept)
    rounds = ROUNDS + (1 if options.warmup else 0)
    log(f"retention: {rounds} rounds purging {expected:,} rows ({month_days} days) of {dataset.ad_rows:,}")

    def refill() -> None:
        insert_ad_performance(options, 0, month_days * dataset.campaigns)
        if _count_before(first_kept) != expected:
            raise BenchError("the month written again does not have the rows purged")

    batched: list[float] = []
    plain: list[float] = []
    vacuums: list[float] = []
    statements: list[str] = []
    removed: dict[str, int] = {}
    batch_plan: dict[str, Any] = {}
    for round_ in range(rounds):
        with CaptureQueriesContext(connection) as captured:
            started = time.monotonic()
            removed = expired_rows_purge(today=today, dry_run=False, batch_size=DEFAULT_BATCH_SIZE)
            batched.append(time.monotonic() - started)
        if removed.get(rule.table) != expected or any(n for t, n in removed.items() if t != rule.table):
            raise BenchError(f"purge_expired removed {removed}; expected {expected} ad_performance rows only")
        statements = [q["sql"] for q in captured.captured_queries]
        refill()
        if not batch_plan:
            deletes = [sql for sql in statements if sql.startswith(f'DELETE FROM "{rule.table}"')]
            if not deletes:
                raise BenchError(f"purge_expired ran no DELETE on {rule.table}")
            # Before the VACUUM, which then sets the hint bits the rolled-back batch leaves to set.
            batch_plan = _explain_rolled_back(deletes[0])
        vacuum_analyze("ad_performance")

        with atomic_scope(service_scope()):
            started = time.monotonic()
            with connection.cursor() as cursor:
                cursor.execute(PLAIN_SQL, [first_kept])
                deleted = cursor.rowcount
            plain.append(time.monotonic() - started)
        if deleted != expected:
            raise BenchError(f"the plain DELETE removed {deleted} rows, expected {expected}")
        started = time.monotonic()
        vacuum_analyze("ad_performance")
        vacuums.append(time.monotonic() - started)
        if round_ < rounds - 1:
            refill()
            vacuum_analyze("ad_performance")
    if options.warmup:
        batched, plain, vacuums = batched[1:], plain[1:], vacuums[1:]
    batches = sum(1 for sql in statements if sql.startswith(f'DELETE FROM "{rule.table}"'))
    batched_s, plain_s, vacuum_s = _median(batched), _median(plain), _median(vacuums)

    result.add("rows in the month purged", expected, "rows", note=f"{month_days} days of {dataset.ad_rows:,} rows")
    result.add(
        "batched DELETE (purge_expired), median",
        batched_s,
        "s",
        note=f"{batches} batches of {DEFAULT_BATCH_SIZE:,}; {expected / batched_s:,.0f} rows/s; {len(batched)} rounds",
    )
    result.add(
        "plain DELETE ... WHERE date < cut-off, median",
        plain_s,
        "s",
        note=f"one transaction; {expected / plain_s:,.0f} rows/s",
    )
    result.add("VACUUM (ANALYZE) after the plain DELETE, median", vacuum_s, "s", note="reclaims the rows' space")
    result.add("drop the month's partition", None, "s", note="not measured: partitioning not implemented yet")
    result.details = {
        "table": rule.table,
        "retention_days": rule.days,
        "today": today,
        "first_kept": first_kept,
        "rows_purged": expected,
        "table_rows": dataset.ad_rows,
        "rounds": len(batched),
        "warmup_rounds": 1 if options.warmup else 0,
        "batched": {
            "seconds": [round(s, 4) for s in batched],
            "median_seconds": batched_s,
            "batch_size": DEFAULT_BATCH_SIZE,
            "batches": batches,
            "removed": removed,
            "statements": statements,
            "plan_of_one_batch": batch_plan,
        },
        "plain": {"seconds": [round(s, 4) for s in plain], "median_seconds": plain_s, "sql": PLAIN_SQL},
        "vacuum_after_plain_delete": {"seconds": [round(s, 4) for s in vacuums], "median_seconds": vacuum_s},
        "partition_drop": "not measured: partitioning not implemented yet",
    }
    return result


def _explain_rolled_back(sql: str) -> dict[str, Any]:
    """EXPLAIN ANALYZE of one batch of the service's DELETE (it deletes), in a transaction that
    is rolled back."""
    with transaction.atomic(), atomic_scope(service_scope()):
        plan = explain(sql)
        transaction.set_rollback(True)
    return plan
