"""`python -m bench`: generate data at a scale, run the benchmarks, print a table, write a report.

    python -m bench [--scale default|full] [--shops N] [--rows N] [--documents N]
                    [--only rls,vectors,storage,ingest,retention,experiments] [--repeats N] [--warmup N] ...

See docs/performance.md. The database is the benchmark's own: `bench` on the embedded server,
or DATABASE_URL when it is set (a scratch database: every run empties it first, and the run
refuses a database holding shops or users it did not create).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import sys
import time
import traceback
from typing import Any

from .harness import BENCHMARKS, BenchError, Options

# The figures; `default` is small enough for a few minutes on two cores.
SCALES: dict[str, dict[str, int]] = {
    "default": {"shops": 100, "rows": 100_000, "documents": 20_000, "ingest_rows": 50_000, "storage_rows": 20_000},
    "full": {
        "shops": 1000,
        "rows": 1_000_000,
        "documents": 200_000,
        "ingest_rows": 200_000,
        "storage_rows": 100_000,
    },
}


def _positive(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _benchmarks(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose among {', '.join(BENCHMARKS)}; got {text!r}")
    return names


def parse_options(argv: list[str]) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmarks at a chosen scale (see docs/performance.md). Progress goes to stderr, "
        "the table to stdout, every figure to bench/results/<timestamp>.json.",
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default="default", help="preset sizes (full: the issue's)")
    parser.add_argument("--shops", type=_positive, help="shops (default 100; full 1000)")
    parser.add_argument("--rows", type=_positive, help="ad_performance rows (default 100,000; full 1,000,000)")
    parser.add_argument("--documents", type=_positive, help="knowledge_base vectors (default 20,000; full 200,000)")
    parser.add_argument("--campaigns-per-shop", type=_positive, default=3, help="ad campaigns per shop (3)")
    parser.add_argument("--ingest-rows", type=_positive, help="rows each ingest method loads (default 50,000)")
    parser.add_argument("--ingest-batch", type=_positive, default=10_000, help="rows per ingest batch (10,000)")
    parser.add_argument("--storage-rows", type=_positive, help="sample rows of each other table (default 20,000)")
    parser.add_argument("--queries", type=_positive, default=50, help="vector queries per shop size (50)")
    parser.add_argument("--k", type=_positive, default=10, help="neighbours per vector query (10)")
    parser.add_argument("--repeats", type=_positive, default=100, help="timed repetitions of each query (100)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed repetitions first (10)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic data (7)")
    parser.add_argument(
        "--maintenance-work-mem",
        default="",
        help="passed to rebuild_knowledge_index as an override (e.g. 1GB); empty (the default): "
        "the command sizes it for the lists it builds",
    )
    parser.add_argument(
        "--experiment-sims", type=_positive, default=1000, help="simulated experiments per setting (1,000)"
    )
    parser.add_argument(
        "--only", type=_benchmarks, default=BENCHMARKS, help=f"comma-separated subset of {','.join(BENCHMARKS)}"
    )
    parser.add_argument(
        "--embedded-database",
        default="bench",
        help="database on the embedded server when DATABASE_URL is unset (bench)",
    )
    args = parser.parse_args(argv)
    preset = SCALES[args.scale]
    options = Options(
        scale=args.scale,
        shops=args.shops or preset["shops"],
        rows=args.rows or preset["rows"],
        documents=args.documents or preset["documents"],
        campaigns_per_shop=args.campaigns_per_shop,
        ingest_rows=args.ingest_rows or preset["ingest_rows"],
        ingest_batch=args.ingest_batch,
        storage_rows=args.storage_rows or preset["storage_rows"],
        queries=args.queries,
        k=args.k,
        repeats=args.repeats,
        warmup=max(0, args.warmup),
        seed=args.seed,
        maintenance_work_mem=args.maintenance_work_mem,
        experiment_sims=args.experiment_sims,
        only=tuple(name for name in BENCHMARKS if name in args.only),
    )
    if options.shops > 99_999:
        parser.error("--shops is at most 99,999 (shop domains carry a 5-digit number)")
    if options.rows < options.shops * options.campaigns_per_shop:
        parser.error("--rows must give every campaign at least one day: at least shops x campaigns-per-shop")
    if options.ingest_batch > 10_000:
        parser.error("--ingest-batch is at most 10,000 (API_BULK_MAX_ROWS of the bulk endpoint)")
    return options, args


def configure(args: argparse.Namespace) -> bool:
    """Choose the database and settings before Django reads them; True: the embedded server."""
    embedded = not os.environ.get("DATABASE_URL")
    if embedded:
        os.environ["EMBEDDED_DATABASE_NAME"] = args.embedded_database
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # The API benchmarks send thousands of requests a minute as one user; the throttle still
    # runs (its cache lookups are part of a request), it just never refuses.
    os.environ["API_THROTTLE_RATE"] = "100000000/minute"
    import django

    from config.embedded import prepare

    prepare()
    django.setup()
    return embedded


def main(argv: list[str]) -> int:
    options, args = parse_options(argv)
    embedded = configure(args)

    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import override_settings

    from . import data, harness

    started = datetime.datetime.now(datetime.UTC)
    clock = time.monotonic()
    harness.log(
        f"database {connection.settings_dict['NAME']!r}; scale {options.scale}: {options.shops} shops, "
        f"{options.rows:,} ad_performance rows, {options.documents:,} vectors; benchmarks {', '.join(options.only)}"
    )
    report: dict[str, Any] = {
        "started_at": started,
        "machine": harness.machine_info(),
        "git": harness.git_revision(),
        "options": vars(options) | {"only": list(options.only)},
    }
    data.refuse_foreign_data()
    call_command("migrate", interactive=False, verbosity=0)
    report["versions"] = harness.software_versions()
    report["server_settings"] = harness.server_settings()
    report["database"] = {"name": connection.settings_dict["NAME"], "embedded_server": embedded}
    results: list[harness.BenchResult] = []
    failed: list[str] = []
    # DEBUG would make Django keep every query of the run in memory and wrap every cursor.
    with override_settings(DEBUG=False):
        dataset = None
        # The experiments benchmark is pure computation: alone, it needs no generated data.
        if options.only != ("experiments",):
            data.reset_database()
            dataset = data.generate_base(options)
            if options.runs("vectors") or options.runs("storage"):
                data.generate_vectors(options, dataset)
            harness.vacuum_analyze("shops", "shop_memberships", "ad_campaigns", "ad_performance", "knowledge_base")
            report["scale"] = dataset.describe()
        for name in options.only:
            module = importlib.import_module(f"bench.{name}")
            harness.log(f"running {name}")
            began = time.monotonic()
            try:
                result: harness.BenchResult = module.run(options, dataset)
            except Exception as exc:
                # One failing benchmark must not lose the others' figures; the run still fails.
                harness.log(f"{name} FAILED: {exc}\n{traceback.format_exc()}")
                result = harness.BenchResult(name, details={"error": str(exc), "traceback": traceback.format_exc()})
                result.add("FAILED", None, "", note=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                failed.append(name)
            result.details["seconds"] = round(time.monotonic() - began, 1)
            results.append(result)
    figures = [figure for result in results for figure in result.figures]
    report["figures"] = harness.figures_json(figures)
    report["benchmarks"] = {result.name: result.details for result in results}
    report["machine"]["load_average_at_end"] = harness.machine_info()["load_average_1_5_15"]
    report["finished_at"] = datetime.datetime.now(datetime.UTC)
    report["seconds"] = round(time.monotonic() - clock, 1)
    report["failed"] = failed
    path = harness.write_report(report, started=started)
    print(harness.format_table(figures))
    print(f"\n{len(figures)} figures in {report['seconds']} s; report: {path}")
    if failed:
        print(f"failed: {', '.join(failed)} (tracebacks on stderr and in the report)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        sys.exit(2)
