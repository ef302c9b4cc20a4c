"""Ingest: the same ad_performance rows loaded four ways, in batches of `--ingest-batch` rows.

- `endpoint`: `POST /api/v1/ad-performance/bulk/` through Django's test client (in process) with
  a real token: JSON parsing, per-row validation, the batch's parent check, and the upsert
  (`INSERT ... ON CONFLICT` in chunks of 1000) as `authenticated` under the policies. The JSON
  body is encoded before the clock starts, as a client would send it.
- `bulk_create`: `AdPerformance.objects.bulk_create()` of model instances built from the rows,
  in a `service_role` scope (policies apply, `USING (true)`); a plain insert, no upsert.
- `import_metrics`: `growth.ingest.metrics_import`, the service of `manage.py import_metrics`,
  reading a CSV file of the same rows (written before the clock starts) for the shop: COPY of
  each batch into a temporary staging table, then one `INSERT ... SELECT ... ON CONFLICT` as
  `authenticated` in the shop's scope; the whole file is one transaction.
- `copy_indexed`: COPY into a table shaped like ad_performance (its columns, defaults, generated
  ratios and indexes, logged) without row level security or the foreign key: what the table's
  own structure costs, whoever loads it.
- `copy_raw`: COPY into an UNLOGGED table without row level security, constraints or indexes:
  the practical limit of the machine.

Every method writes new rows (campaigns created for this benchmark); they are deleted and the
table vacuumed between methods, outside the clock. Each batch of the other methods is its own
transaction; the import's unit is the file.

Memory: `manage.py import_metrics` itself runs as a child process on two files (the rows above
and four times as many); its peak RSS (`wait4`) shows whether memory grows with the file.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.test import Client

from growth.ingest import DEFAULT_BATCH_SIZE, metrics_import
from growth.models import AdPerformance
from tenancy.scope import atomic_scope, service_scope

from .data import START_DATE, Dataset
from .harness import BenchError, BenchResult, Options, Stats, execute, log, ratio, vacuum_analyze

DAYS_PER_CAMPAIGN = 500
WARMUP_ROWS = 1_000
CAMPAIGN_KEY_PREFIX = "bench-ingest-"
BULK_PATH = "/api/v1/ad-performance/bulk/"
COPY_TARGET = "bench_copy_target"
COPY_INDEXED = "bench_copy_indexed"
# The second file of the memory check holds this many times the rows of the first.
LARGE_FILE_FACTOR = 4
MANAGE_PY = Path(__file__).resolve().parent.parent / "manage.py"
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
# The columns of the file the command reads (the shop comes from --shop).
FILE_COLUMNS = ("campaign_id", "date", "impressions", "clicks", "conversions", "cost", "revenue")
# What import_metrics was built to reach: rows a second, at least 5x bulk_create's speed, and
# within 3x of a raw COPY of the same file.
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


def _rows(options: Options, shop: str, actor: str, campaigns: list[int], total: int, offset: int = 0) -> list[Row]:
    """`total` rows from row number `offset` on: campaign (offset + i) // DAYS_PER_CAMPAIGN, a day each."""
    rng = np.random.default_rng([options.seed, 99, total, offset])
    impressions = rng.integers(100, 5000, size=total)
    clicks = (impressions * 0.08 * rng.random(total)).astype(int)
    conversions = np.round(clicks * 0.12 * rng.random(total), 2)
    cost = np.round(clicks * (0.2 + 1.8 * rng.random(total)), 2)
    revenue = np.round(conversions * (20 + 100 * rng.random(total)), 2)
    first_day = START_DATE - datetime.timedelta(days=DAYS_PER_CAMPAIGN + 100)
    return [
        (
            campaigns[(offset + i) // DAYS_PER_CAMPAIGN],
            shop,
            first_day + datetime.timedelta(days=(offset + i) % DAYS_PER_CAMPAIGN),
            int(impressions[i]),
            int(clicks[i]),
            Decimal(f"{conversions[i]:.2f}"),
            Decimal(f"{cost[i]:.2f}"),
            Decimal(f"{revenue[i]:.2f}"),
            actor,
        )
        for i in range(total)
    ]


def _write_csv(path: Path, rows: Iterable[Row]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(FILE_COLUMNS)
        writer.writerows((r[0], r[2].isoformat(), r[3], r[4], r[5], r[6], r[7]) for r in rows)
    return path


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


def _import(path: Path, shop: str) -> int:
    with path.open(newline="", encoding="utf-8") as stream:
        result = metrics_import(table="ad_performance", stream=stream, file_format="csv", shop=shop)
    return result.rows


def _command(path: Path, shop: str) -> dict[str, Any]:
    """Run `manage.py import_metrics` as a child process: its own rows/s and its peak RSS."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, str(MANAGE_PY), "import_metrics", "ad_performance", str(path), "--shop", shop],
            cwd=MANAGE_PY.parent,
            stdout=out,
            stderr=err,
        )
        # VmHWM of the child's own address space, polled until it exits: the rusage of a child
        # would include the RSS of this (large) process at fork, which Linux carries over exec.
        peak_kib = 0
        while process.poll() is None:
            peak_kib = max(peak_kib, _hwm_kib(process.pid))
            time.sleep(0.05)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise BenchError(f"manage.py import_metrics failed ({process.returncode}): {stderr[-2000:]}")
    match = re.search(r"rows from .* in ([0-9.]+) s \(([0-9,]+) rows/s\)", stdout)
    return {
        "summary": stdout.strip(),
        "rows_per_s": int(match.group(2).replace(",", "")) if match else None,
        "seconds_in_command": float(match.group(1)) if match else None,
        "wall_seconds_with_startup": round(wall, 2),
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "file_mb": round(path.stat().st_size / 2**20, 1),
    }


def _hwm_kib(pid: int) -> int:
    """Peak resident set size of a running process (VmHWM), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(options: Options, dataset: Dataset) -> BenchResult:
    result = BenchResult("ingest")
    shop = dataset.api_shop
    batch = options.ingest_batch
    total = math.ceil(options.ingest_rows / batch) * batch
    large = total * LARGE_FILE_FACTOR
    campaigns = _campaigns(shop, math.ceil(max(total + WARMUP_ROWS, large) / DAYS_PER_CAMPAIGN))
    rows = _rows(options, shop, dataset.user_id, campaigns, total + WARMUP_ROWS)
    warm, timed_rows = rows[-WARMUP_ROWS:], rows[:total]
    batches = [timed_rows[i : i + batch] for i in range(0, total, batch)]
    log(f"ingest: {total:,} rows a method in {len(batches)} batches of {batch:,} (+ {WARMUP_ROWS:,} warm-up rows)")
    client = Client()
    headers = {"Authorization": f"Bearer {dataset.token}", "X-Shop-Domain": shop}
    folder = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    files = {"warm": _write_csv(folder / "warm.csv", warm), "timed": _write_csv(folder / "timed.csv", timed_rows)}

    def large_rows() -> Iterator[Row]:
        # Written in pieces, so the benchmark itself never holds the large file's rows.
        for offset in range(0, large, total):
            yield from _rows(options, shop, dataset.user_id, campaigns, min(total, large - offset), offset)

    files["large"] = _write_csv(folder / "large.csv", large_rows())
    with connection.cursor() as cursor:
        columns = (
            "campaign_id bigint, shop_domain varchar(253), date date, impressions integer, clicks integer, "
            "conversions numeric(12,2), cost numeric(12,2), revenue numeric(12,2), created_by text"
        )
        # Left behind by a run that failed half-way.
        cursor.execute(f"DROP TABLE IF EXISTS {COPY_TARGET}, {COPY_INDEXED}")
        cursor.execute(f"CREATE UNLOGGED TABLE {COPY_TARGET} ({columns})")
        cursor.execute(
            f"CREATE TABLE {COPY_INDEXED} (LIKE ad_performance INCLUDING DEFAULTS INCLUDING IDENTITY "
            "INCLUDING GENERATED INCLUDING INDEXES INCLUDING CONSTRAINTS)"
        )

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

    def copy_into(table: str) -> Callable[[list[Row], bytes], None]:
        def copy(part: list[Row], body: bytes) -> None:
            with transaction.atomic():
                _copy(table, part)

        return copy

    methods: dict[str, Callable[[list[Row], bytes], None]] = {
        "endpoint": endpoint,
        "bulk_create": bulk_create,
        "copy_indexed": copy_into(COPY_INDEXED),
        "copy_raw": copy_into(COPY_TARGET),
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
        written = _count(COPY_TARGET if name == "copy_raw" else COPY_INDEXED) if name.startswith("copy") else None
        if written is None:
            written = _written(campaigns)
        if written != total:
            raise BenchError(f"ingest {name}: {written} rows found after loading {total}")
        _clean(campaigns)
        stats = Stats.of(samples)
        measured[name] = {
            "batch_latency": vars(stats),
            "rows_per_s_median_batch": round(batch / (stats.median_ms / 1000)),
            "rows_per_s_overall": round(total / (sum(samples) / 1e9)),
        }

    log(f"ingest: import_metrics (the command's service, {total:,} rows, batches of {DEFAULT_BATCH_SIZE:,})")
    _import(files["warm"], shop)
    _clean(campaigns)
    started = time.perf_counter_ns()
    imported = _import(files["timed"], shop)
    elapsed = time.perf_counter_ns() - started
    if imported != total or _written(campaigns) != total:
        raise BenchError(f"import_metrics wrote {imported} rows of {total}")
    log("ingest: import_metrics again on the same file (every row an update)")
    started = time.perf_counter_ns()
    _import(files["timed"], shop)
    rerun = time.perf_counter_ns() - started
    if _written(campaigns) != total:
        raise BenchError("re-running import_metrics changed the number of rows")
    _clean(campaigns)
    measured["import_metrics"] = {"seconds": elapsed / 1e9, "rows_per_s_overall": round(total / (elapsed / 1e9))}
    measured["import_metrics_rerun"] = {"seconds": rerun / 1e9, "rows_per_s_overall": round(total / (rerun / 1e9))}
    children: dict[str, dict[str, Any]] = {}
    for size, path in (("timed", files["timed"]), ("large", files["large"])):
        log(f"ingest: manage.py import_metrics in a child process, {path.name}")
        children[size] = _command(path, shop)
        _clean(campaigns)
    measured["import_metrics"]["command_in_child_process"] = children

    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {COPY_TARGET}, {COPY_INDEXED}")
    for path in files.values():
        path.unlink()
    folder.rmdir()
    with atomic_scope(service_scope()):
        execute("DELETE FROM ad_campaigns WHERE platform_campaign_id LIKE %s", [CAMPAIGN_KEY_PREFIX + "%"])
    vacuum_analyze("ad_performance", "ad_campaigns")

    speed = {name: float(m["rows_per_s_overall"]) for name, m in measured.items()}
    notes = {
        "endpoint": "POST /bulk/, JSON, validation, upsert as authenticated",
        "bulk_create": "Django bulk_create, service_role, plain INSERT",
        "import_metrics": f"growth.ingest.metrics_import: CSV file, staging COPY + upsert as authenticated, "
        f"one transaction, batches of {DEFAULT_BATCH_SIZE:,}",
        "import_metrics_rerun": "the same file imported again: every row updates the row the first run wrote",
        "copy_indexed": "COPY into a copy of ad_performance (indexes, generated ratios, logged), no RLS, no FK",
        "copy_raw": "COPY into an UNLOGGED table, no RLS/constraints/indexes",
    }
    for name, m in measured.items():
        if name.startswith("import_metrics"):
            note = f"{notes[name]}; {total:,} rows in {m['seconds']:.2f} s"
        else:
            note = (
                f"{notes[name]}; batch of {batch:,}: median {m['batch_latency']['median_ms']:.0f} ms, "
                f"p95 {m['batch_latency']['p95_ms']:.0f} ms"
            )
        target = f">= {TARGET_ROWS_PER_S:,}" if name == "import_metrics" else ""
        met = speed[name] >= TARGET_ROWS_PER_S if name == "import_metrics" else None
        result.add(f"{name}: rows/s", speed[name], "rows/s", target=target, met=met, note=note)
    for size, child in children.items():
        rows_in_file = total if size == "timed" else large
        result.add(
            f"manage.py import_metrics, {rows_in_file:,} rows: peak RSS",
            child["peak_rss_mb"],
            "MB",
            note=f"child process, {child['file_mb']} MB file, {child['rows_per_s'] or 0:,} rows/s in the command",
        )
    small, big = children["timed"]["peak_rss_mb"], children["large"]["peak_rss_mb"]
    result.add(
        f"peak RSS {large:,} rows / {total:,} rows",
        ratio(big, small),
        "x",
        target="~1 (memory flat in the file size)",
        met=bool(small and big and big / small < 1.2),
        decimals=2,
    )
    result.add("endpoint / bulk_create", ratio(speed["endpoint"], speed["bulk_create"]), "x")
    result.add("copy_raw / endpoint", ratio(speed["copy_raw"], speed["endpoint"]), "x")
    over_bulk = ratio(speed["import_metrics"], speed["bulk_create"])
    result.add(
        "import_metrics / bulk_create",
        over_bulk,
        "x",
        target=f">= {TARGET_OVER_BULK_CREATE}",
        met=over_bulk is not None and over_bulk >= TARGET_OVER_BULK_CREATE,
    )
    within = ratio(speed["copy_raw"], speed["import_metrics"])
    result.add(
        "copy_raw / import_metrics",
        within,
        "x",
        target=f"<= {TARGET_WITHIN_COPY}",
        met=within is not None and within <= TARGET_WITHIN_COPY,
    )
    result.add(
        "copy_indexed / import_metrics",
        ratio(speed["copy_indexed"], speed["import_metrics"]),
        "x",
        note="what RLS, the foreign key, staging and the upsert add to the table's own cost",
    )
    result.details = {
        "shop": shop,
        "rows_per_method": total,
        "batch_rows": batch,
        "import_batch_rows": DEFAULT_BATCH_SIZE,
        "batches": len(batches),
        "warmup_rows": WARMUP_ROWS,
        "campaigns": len(campaigns),
        "days_per_campaign": DAYS_PER_CAMPAIGN,
        "methods": measured,
        "what_is_measured": notes
        | {
            "clock": "wall time of each batch (one transaction), client and server in one process; the endpoint's "
            "JSON body and the import's CSV file are written before the clock starts; the import is timed whole",
            "memory": f"manage.py import_metrics run as a child process on {total:,} and {large:,} rows; peak RSS "
            "= the child's VmHWM polled every 50 ms (includes Django's start-up, about 145 MB)",
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
    execute(f"TRUNCATE {COPY_TARGET}, {COPY_INDEXED}")
    vacuum_analyze("ad_performance")
