"""Ingest: the same ad_performance rows loaded four ways, in batches of `--ingest-batch` rows.

- `endpoint`: `POST /api/v1/ad-performance/bulk/` through Django's test client (in process) with
  a real token: JSON parsing, per-row validation, the batch's parent check, and the upsert
  (`INSERT ... ON CONFLICT` in chunks of 1000) as `authenticated` under the policies. The JSON
  body is encoded before the clock starts, as a client would send it.
- `bulk_create`: `AdPerformance.objects.bulk_create()` of model instances built from the rows,
  in a `service_role` scope (policies apply, `USING (true)`); a plain insert, no upsert.
- `copy_staging_upsert`: COPY into an UNLOGGED staging table, then one `INSERT ... SELECT ...
  ON CONFLICT` as `authenticated` in the shop's scope: the SQL path the issue prescribes for
  `manage.py import_metrics`, measured directly (the command does not exist yet).
- `copy_raw`: COPY into an UNLOGGED table without row level security, constraints or indexes:
  the practical limit of the machine.

Every method writes new rows (campaigns created for this benchmark); they are deleted and the
table vacuumed between methods, outside the clock. Each batch is its own transaction.
"""

from __future__ import annotations

import datetime
import json
import math
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.test import Client

from growth.models import AdPerformance
from tenancy.scope import atomic_scope, enter_scope, service_scope, shop_scope

from .data import START_DATE, Dataset
from .harness import BenchError, BenchResult, Options, Stats, execute, log, ratio, vacuum_analyze

DAYS_PER_CAMPAIGN = 500
WARMUP_ROWS = 1_000
CAMPAIGN_KEY_PREFIX = "bench-ingest-"
BULK_PATH = "/api/v1/ad-performance/bulk/"
COPY_TARGET = "bench_copy_target"
STAGING = "bench_ingest_staging"
INPUT_COLUMNS = (
    "campaign_id",
    "shop_domain",
    "date",
    "impressions",
    "clicks",
    "conversions",
    "cost",
    "revenue",
    "created_by",
)
# The command's targets (issue 7), shown against the prototype of its SQL path for reference.
TARGET_ROWS_PER_S = 50_000
TARGET_OVER_BULK_CREATE = 5.0
TARGET_WITHIN_COPY = 3.0

Row = tuple[int, str, datetime.date, int, int, Decimal, Decimal, Decimal, str]


def _campaigns(shop: str, count: int) -> list[int]:
    with atomic_scope(service_scope()), connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO ad_campaigns (shop_domain, platform, platform_campaign_id, campaign_name, currency,
                                      bid_strategy, campaign_status)
            SELECT %s, 'google_ads', '{CAMPAIGN_KEY_PREFIX}' || i, 'Ingest campaign ' || i, 'USD', 'manual_cpc',
                   'active'
              FROM generate_series(0, %s - 1) i
            RETURNING id
            """,
            [shop, count],
        )
        return sorted(int(row[0]) for row in cursor.fetchall())


def _rows(options: Options, shop: str, actor: str, campaigns: list[int], total: int) -> list[Row]:
    rng = np.random.default_rng([options.seed, 99, total])
    impressions = rng.integers(100, 5000, size=total)
    clicks = (impressions * 0.08 * rng.random(total)).astype(int)
    conversions = np.round(clicks * 0.12 * rng.random(total), 2)
    cost = np.round(clicks * (0.2 + 1.8 * rng.random(total)), 2)
    revenue = np.round(conversions * (20 + 100 * rng.random(total)), 2)
    first_day = START_DATE - datetime.timedelta(days=DAYS_PER_CAMPAIGN + 100)
    return [
        (
            campaigns[i // DAYS_PER_CAMPAIGN],
            shop,
            first_day + datetime.timedelta(days=i % DAYS_PER_CAMPAIGN),
            int(impressions[i]),
            int(clicks[i]),
            Decimal(f"{conversions[i]:.2f}"),
            Decimal(f"{cost[i]:.2f}"),
            Decimal(f"{revenue[i]:.2f}"),
            actor,
        )
        for i in range(total)
    ]


def _payload(rows: list[Row]) -> bytes:
    return json.dumps(
        [
            {
                "campaign_id": r[0],
                "date": r[2].isoformat(),
                "impressions": r[3],
                "clicks": r[4],
                "conversions": str(r[5]),
                "cost": str(r[6]),
                "revenue": str(r[7]),
            }
            for r in rows
        ]
    ).encode()


def _copy(table: str, rows: list[Row]) -> None:
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(INPUT_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def run(options: Options, dataset: Dataset) -> BenchResult:
    result = BenchResult("ingest")
    shop = dataset.api_shop
    batch = options.ingest_batch
    total = math.ceil(options.ingest_rows / batch) * batch
    campaigns = _campaigns(shop, math.ceil((total + WARMUP_ROWS) / DAYS_PER_CAMPAIGN))
    rows = _rows(options, shop, dataset.user_id, campaigns, total + WARMUP_ROWS)
    warm, timed_rows = rows[-WARMUP_ROWS:], rows[:total]
    batches = [timed_rows[i : i + batch] for i in range(0, total, batch)]
    log(f"ingest: {total:,} rows a method in {len(batches)} batches of {batch:,} (+ {WARMUP_ROWS:,} warm-up rows)")
    client = Client()
    headers = {"Authorization": f"Bearer {dataset.token}", "X-Shop-Domain": shop}
    tenant = shop_scope(shop=shop, subject=dataset.user_id, member_role="owner")
    with connection.cursor() as cursor:
        columns = (
            "campaign_id bigint, shop_domain varchar(253), date date, impressions integer, clicks integer, "
            "conversions numeric(12,2), cost numeric(12,2), revenue numeric(12,2), created_by text"
        )
        cursor.execute(f"CREATE UNLOGGED TABLE {COPY_TARGET} ({columns})")
        cursor.execute(f"CREATE UNLOGGED TABLE {STAGING} ({columns})")
        cursor.execute(f"GRANT SELECT ON {STAGING} TO authenticated")

    def endpoint(part: list[Row], body: bytes) -> None:
        response = client.post(BULK_PATH, data=body, content_type="application/json", headers=headers)
        if response.status_code != 200:
            raise BenchError(f"POST {BULK_PATH} answered {response.status_code}: {response.content[:500]!r}")
        if response.json()["created"] != len(part):
            raise BenchError(f"POST {BULK_PATH} created {response.json()['created']} of {len(part)} rows")

    def bulk_create(part: list[Row], body: bytes) -> None:
        with atomic_scope(service_scope()):
            AdPerformance.objects.bulk_create(
                [
                    AdPerformance(
                        campaign_id=r[0],
                        shop_id=r[1],
                        date=r[2],
                        impressions=r[3],
                        clicks=r[4],
                        conversions=r[5],
                        cost=r[6],
                        revenue=r[7],
                        created_by=r[8],
                    )
                    for r in part
                ]
            )

    upsert = f"""
        INSERT INTO ad_performance (campaign_id, shop_domain, date, impressions, clicks, conversions, cost, revenue,
                                    created_by)
        SELECT campaign_id, current_setting('app.current_shop', true), date, impressions, clicks, conversions, cost,
               revenue, created_by
          FROM {STAGING}
        ON CONFLICT (campaign_id, date) DO UPDATE
           SET impressions = EXCLUDED.impressions, clicks = EXCLUDED.clicks, conversions = EXCLUDED.conversions,
               cost = EXCLUDED.cost, revenue = EXCLUDED.revenue, updated_at = now()
    """

    def copy_staging_upsert(part: list[Row], body: bytes) -> None:
        with transaction.atomic():
            execute(f"TRUNCATE {STAGING}")
            _copy(STAGING, part)
            with enter_scope(tenant):
                written = execute(upsert)
        if written != len(part):
            raise BenchError(f"the staging upsert wrote {written} of {len(part)} rows")

    def copy_raw(part: list[Row], body: bytes) -> None:
        with transaction.atomic():
            _copy(COPY_TARGET, part)

    methods: dict[str, Callable[[list[Row], bytes], None]] = {
        "endpoint": endpoint,
        "bulk_create": bulk_create,
        "copy_staging_upsert": copy_staging_upsert,
        "copy_raw": copy_raw,
    }
    bodies = [_payload(part) for part in batches]
    warm_body = _payload(warm)
    measured: dict[str, dict[str, Any]] = {}
    for name, method in methods.items():
        log(f"ingest: {name}")
        method(warm, warm_body)
        _clean(campaigns)
        samples = []
        for part, body in zip(batches, bodies, strict=True):
            started = time.perf_counter_ns()
            method(part, body)
            samples.append(time.perf_counter_ns() - started)
        written = _written(campaigns) if name != "copy_raw" else _count(COPY_TARGET)
        if written != total:
            raise BenchError(f"ingest {name}: {written} rows found after loading {total}")
        _clean(campaigns)
        stats = Stats.of(samples)
        measured[name] = {
            "batch_latency": vars(stats),
            "rows_per_s_median_batch": round(batch / (stats.median_ms / 1000)),
            "rows_per_s_overall": round(total / (sum(samples) / 1e9)),
        }
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {COPY_TARGET}, {STAGING}")
    with atomic_scope(service_scope()):
        execute("DELETE FROM ad_campaigns WHERE platform_campaign_id LIKE %s", [CAMPAIGN_KEY_PREFIX + "%"])
    vacuum_analyze("ad_performance", "ad_campaigns")

    speed = {name: float(m["rows_per_s_overall"]) for name, m in measured.items()}
    notes = {
        "endpoint": "POST /bulk/, JSON, validation, upsert as authenticated",
        "bulk_create": "Django bulk_create, service_role, plain INSERT",
        "copy_staging_upsert": "prototype of import_metrics' SQL path (not the command)",
        "copy_raw": "COPY into an UNLOGGED table, no RLS/constraints/indexes",
    }
    for name, m in measured.items():
        result.add(
            f"{name}: rows/s",
            speed[name],
            "rows/s",
            note=f"{notes[name]}; batch of {batch:,}: median {m['batch_latency']['median_ms']:.0f} ms, "
            f"p95 {m['batch_latency']['p95_ms']:.0f} ms",
        )
    result.add("endpoint / bulk_create", ratio(speed["endpoint"], speed["bulk_create"]), "x")
    result.add("copy_raw / endpoint", ratio(speed["copy_raw"], speed["endpoint"]), "x")
    result.add(
        "copy_staging_upsert / bulk_create",
        ratio(speed["copy_staging_upsert"], speed["bulk_create"]),
        "x",
        note=f"the command's target: >= {TARGET_OVER_BULK_CREATE}x (prototype, for reference)",
    )
    result.add(
        "copy_raw / copy_staging_upsert",
        ratio(speed["copy_raw"], speed["copy_staging_upsert"]),
        "x",
        note=f"the command's target: within {TARGET_WITHIN_COPY}x (prototype, for reference)",
    )
    result.add(
        "manage.py import_metrics: rows/s",
        None,
        "rows/s",
        target=(
            f">= {TARGET_ROWS_PER_S:,}, >= {TARGET_OVER_BULK_CREATE}x bulk_create, within {TARGET_WITHIN_COPY}x COPY"
        ),
        note="not measured: the command is not implemented yet",
    )
    result.details = {
        "shop": shop,
        "rows_per_method": total,
        "batch_rows": batch,
        "batches": len(batches),
        "warmup_rows": WARMUP_ROWS,
        "campaigns": len(campaigns),
        "days_per_campaign": DAYS_PER_CAMPAIGN,
        "methods": measured,
        "what_is_measured": notes
        | {
            "clock": "wall time of each batch (one transaction), client and server in one process; the endpoint's "
            "JSON body is encoded before the clock starts",
            "upsert_sql": " ".join(upsert.split()),
        },
        "targets_of_the_command": {
            "rows_per_s_min": TARGET_ROWS_PER_S,
            "over_bulk_create_min": TARGET_OVER_BULK_CREATE,
            "within_copy_max": TARGET_WITHIN_COPY,
        },
    }
    return result


def _written(campaigns: list[int]) -> int:
    with atomic_scope(service_scope()), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ad_performance WHERE campaign_id = ANY(%s)", [campaigns])
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        row = cursor.fetchone()
        cursor.execute(f"TRUNCATE {table}")
    return int(row[0]) if row else 0


def _clean(campaigns: list[int]) -> None:
    """Delete the method's rows and vacuum, so the next method starts from the same table."""
    with atomic_scope(service_scope()):
        execute("DELETE FROM ad_performance WHERE campaign_id = ANY(%s)", [campaigns])
    execute(f"TRUNCATE {COPY_TARGET}")
    vacuum_analyze("ad_performance")
