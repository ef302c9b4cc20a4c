"""Retention: purging the oldest month of ad_performance, three ways.

- `partition drop`: `tenancy.retention.expired_rows_purge` (what `manage.py purge_expired`
  runs) with a `today` that makes exactly the oldest month expired. The month is a whole
  partition (`ad_performance_p2024_01`), so the purge drops it: `DROP TABLE` of the partition
  as the owner, one short transaction. The other tables with a retention period hold no rows
  by now (the storage benchmark removes its samples), so the call's time is ad_performance's.
- `batched DELETE`: what the purge did before partitioning and still does for a month that is
  only partly expired: `DELETE ... WHERE (id, date) IN (SELECT id, date ... LIMIT 5000)` as
  `service_role`, one transaction per batch, until a batch comes back short.
- `plain DELETE`: one `DELETE FROM ad_performance WHERE date < first_kept` as `service_role`
  in one transaction.
- The VACUUM (ANALYZE) of the month's partition that makes deleted rows' space reusable is
  timed after each DELETE (what autovacuum would then process): a DELETE leaves it to do,
  dropping a partition does not.

Each round purges the month the three ways, writing it again (the same rows, into a
re-created partition) and vacuuming before each purge, outside the clock. The first round is
a warm-up.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from growth.models import AdPerformance
from tenancy.partitions import next_month, partition_drop, partitioned_table
from tenancy.retention import DEFAULT_BATCH_SIZE, delete_statements, expired_rows_purge, retention_rules
from tenancy.scope import atomic_scope, service_scope

from .data import Dataset, insert_ad_performance
from .harness import BenchError, BenchResult, Options, explain, log, scalar, vacuum_analyze

ROUNDS = 3
PLAIN_SQL = "DELETE FROM ad_performance WHERE date < %s"


def _count_before(first_kept: datetime.date) -> int:
    with atomic_scope(service_scope()):
        return int(scalar("SELECT count(*) FROM ad_performance WHERE date < %s", [first_kept]))


def _median(values: list[float]) -> float:
    return round(float(np.median(values)), 4)


def run(options: Options, dataset: Dataset) -> BenchResult:
    result = BenchResult("retention")
    rule = next(r for r in retention_rules() if r.model is AdPerformance)
    assert rule.days is not None
    first_kept = next_month(dataset.start_date)
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

    spec = partitioned_table(rule.table)
    if spec is None:
        raise BenchError(f"{rule.table} is not partitioned")
    partition = spec.partition(dataset.start_date)
    _, delete_sql = delete_statements(rule)
    timings: dict[str, list[float]] = {
        "purge": [],
        "drop": [],
        "batched": [],
        "batched_vacuum": [],
        "plain": [],
        "plain_vacuum": [],
    }
    statements: list[str] = []
    batches = 0
    removed: dict[str, int] = {}
    batch_plan: dict[str, Any] = {}

    def clocked(name: str, work: Any) -> Any:
        started = time.monotonic()
        value = work()
        timings[name].append(time.monotonic() - started)
        return value

    def batched_delete() -> int:
        nonlocal batches
        done, batches = 0, 0
        while True:
            with atomic_scope(service_scope()), connection.cursor() as cursor:
                cursor.execute(delete_sql, {"cutoff": first_kept, "batch": DEFAULT_BATCH_SIZE})
                deleted = cursor.rowcount
            done, batches = done + deleted, batches + 1
            if deleted < DEFAULT_BATCH_SIZE:
                return done

    def plain_delete() -> int:
        with atomic_scope(service_scope()), connection.cursor() as cursor:
            cursor.execute(PLAIN_SQL, [first_kept])
            return int(cursor.rowcount)

    for _round in range(rounds):
        with CaptureQueriesContext(connection) as captured:
            removed = clocked("purge", lambda: expired_rows_purge(today=today, dry_run=False))
        if removed.get(rule.table) != expected or any(n for t, n in removed.items() if t != rule.table):
            raise BenchError(f"purge_expired removed {removed}; expected {expected} ad_performance rows only")
        statements = [q["sql"] for q in captured.captured_queries]
        if not any(
            sql.startswith(f"DROP TABLE IF EXISTS {connection.ops.quote_name(partition)}") for sql in statements
        ):
            raise BenchError(f"purge_expired did not drop {partition}")
        refill()
        if not batch_plan:
            # Before the VACUUM, which then sets the hint bits the rolled-back batch leaves to set.
            batch_plan = _explain_rolled_back(delete_sql, {"cutoff": first_kept, "batch": DEFAULT_BATCH_SIZE})
        vacuum_analyze("ad_performance")
        # The DROP on its own, as the DELETEs below are timed on their own.
        clocked("drop", lambda: partition_drop(spec, dataset.start_date))
        refill()
        vacuum_analyze("ad_performance")

        for name, delete in (("batched", batched_delete), ("plain", plain_delete)):
            deleted = clocked(name, delete)
            if deleted != expected:
                raise BenchError(f"the {name} DELETE removed {deleted} rows, expected {expected}")
            # The month's partition only: what autovacuum would process after the DELETE.
            clocked(f"{name}_vacuum", lambda: vacuum_analyze(partition))
            if name == "batched" or _round < rounds - 1:
                refill()
                vacuum_analyze("ad_performance")
    if options.warmup:
        timings = {name: values[1:] for name, values in timings.items()}
    medians = {name: _median(values) for name, values in timings.items()}

    result.add("rows in the month purged", expected, "rows", note=f"{month_days} days of {dataset.ad_rows:,} rows")
    result.add(
        "drop the month's partition, median",
        medians["drop"],
        "s",
        note=f"DROP TABLE {partition} in its own transaction; nothing left to VACUUM",
    )
    result.add(
        "purge_expired (finds and drops the partition), median",
        medians["purge"],
        "s",
        note="the whole command: counts, partition listing and the drop, for every table with a retention period",
    )
    result.add(
        "batched DELETE (5,000 a transaction), median",
        medians["batched"],
        "s",
        note=f"{batches} batches; {expected / medians['batched']:,.0f} rows/s; VACUUM {medians['batched_vacuum']} s",
    )
    result.add(
        "plain DELETE ... WHERE date < cut-off, median",
        medians["plain"],
        "s",
        note=f"one transaction; {expected / medians['plain']:,.0f} rows/s",
    )
    result.add(
        "VACUUM (ANALYZE) after the plain DELETE, median", medians["plain_vacuum"], "s", note="reclaims the space"
    )
    result.add(
        "batched DELETE + VACUUM / partition drop",
        round((medians["batched"] + medians["batched_vacuum"]) / medians["drop"], 1),
        "x",
        note="how much more work the row-by-row purge is",
    )
    result.details = {
        "table": rule.table,
        "retention_days": rule.days,
        "today": today,
        "first_kept": first_kept,
        "partition": partition,
        "rows_purged": expected,
        "table_rows": dataset.ad_rows,
        "rounds": len(timings["purge"]),
        "warmup_rounds": 1 if options.warmup else 0,
        "seconds": {name: [round(v, 4) for v in values] for name, values in timings.items()},
        "median_seconds": medians,
        "partition_drop": {"removed": removed, "statements": statements},
        "batched": {
            "sql": delete_sql,
            "batch_size": DEFAULT_BATCH_SIZE,
            "batches": batches,
            "plan_of_one_batch": batch_plan,
        },
        "plain": {"sql": PLAIN_SQL},
    }
    return result


def _explain_rolled_back(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """EXPLAIN ANALYZE of one batch of the DELETE (it deletes), in a transaction that is
    rolled back."""
    with transaction.atomic(), atomic_scope(service_scope()):
        plan = explain(sql, params)
        transaction.set_rollback(True)
    return plan
