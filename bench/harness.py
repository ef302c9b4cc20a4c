"""What every benchmark shares: options, timing, statistics, the figures table, the report.

Nothing here imports a model at import time: `bench.__main__` configures Django (and picks
the database) before any benchmark module is imported.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BENCHMARKS = ("rls", "vectors", "storage", "ingest", "retention", "experiments")
RESULTS_DIR = Path(__file__).resolve().parent / "results"


class BenchError(RuntimeError):
    """The benchmark cannot run as asked (a shared database, an impossible scale, a failed check)."""


@dataclass(frozen=True)
class Options:
    """The scale and the measuring parameters of one run (all recorded in the report)."""

    scale: str
    shops: int
    rows: int
    documents: int
    campaigns_per_shop: int
    ingest_rows: int
    ingest_batch: int
    storage_rows: int
    queries: int
    k: int
    repeats: int
    warmup: int
    seed: int
    maintenance_work_mem: str = ""
    only: tuple[str, ...] = BENCHMARKS
    # Simulated experiments per setting of the experiments benchmark.
    experiment_sims: int = 1000

    def runs(self, name: str) -> bool:
        return name in self.only


@dataclass(frozen=True)
class Stats:
    """Summary of repeated wall-clock timings, in milliseconds."""

    n: int
    median_ms: float
    p95_ms: float
    min_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of(cls, samples_ns: Sequence[int]) -> Stats:
        if not samples_ns:
            raise ValueError("no samples")
        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        return cls(
            n=len(ms),
            median_ms=round(float(np.median(ms)), 4),
            # Linear interpolation between closest ranks (numpy's default).
            p95_ms=round(float(np.percentile(ms, 95)), 4),
            min_ms=round(float(ms.min()), 4),
            max_ms=round(float(ms.max()), 4),
            mean_ms=round(float(ms.mean()), 4),
        )


def timed(fn: Callable[[], object]) -> int:
    """Wall time of one call, in nanoseconds."""
    started = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - started


@dataclass(frozen=True)
class Figure:
    """One row of the printed table (and of the report's `figures`)."""

    benchmark: str
    name: str
    value: float | None
    unit: str
    target: str = ""
    # None: the figure has no target (or was not measured).
    met: bool | None = None
    note: str = ""
    # Fixed decimals for the printed value (recall 1.000, not 1); None: by magnitude.
    decimals: int | None = None

    def cell(self) -> str:
        if self.value is None:
            return "-"
        if self.decimals is not None:
            return f"{self.value:,.{self.decimals}f}"
        if float(self.value).is_integer():
            return f"{int(self.value):,}"
        if abs(self.value) >= 1000:
            return f"{self.value:,.0f}"
        if abs(self.value) >= 10:
            return f"{self.value:.1f}"
        return f"{self.value:.3g}"


@dataclass
class BenchResult:
    """A benchmark's figures (the table) and everything behind them (plans, settings, raw stats)."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(
        self,
        name: str,
        value: float | None,
        unit: str,
        *,
        target: str = "",
        met: bool | None = None,
        note: str = "",
        decimals: int | None = None,
    ) -> None:
        self.figures.append(Figure(self.name, name, value, unit, target, met, note, decimals))


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the machine and the software -------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    memory = _memory_bytes()
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_bytes": memory,
        "memory_gib": round(memory / 2**30, 1) if memory else None,
        "platform": platform.platform(),
        "hostname": platform.node(),
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def git_revision() -> dict[str, Any]:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": bool(dirty)}


def software_versions() -> dict[str, Any]:
    import django
    import psycopg
    import rest_framework
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT version(), current_setting('server_version'), "
            "(SELECT extversion FROM pg_extension WHERE extname = 'vector')"
        )
        row = cursor.fetchone()
    assert row is not None
    return {
        "postgresql": str(row[1]),
        "postgresql_full": str(row[0]),
        "pgvector": row[2],
        "django": django.get_version(),
        "djangorestframework": rest_framework.VERSION,
        "psycopg": psycopg.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


SERVER_SETTINGS = (
    "shared_buffers",
    "effective_cache_size",
    "work_mem",
    "maintenance_work_mem",
    "max_parallel_workers_per_gather",
    "max_parallel_maintenance_workers",
    "jit",
    "random_page_cost",
    "synchronous_commit",
    "fsync",
    "wal_level",
)


def server_settings() -> dict[str, str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)", [list(SERVER_SETTINGS)]
        )
        return {str(name): str(value) for name, value in cursor.fetchall()}


# --- the table and the report ------------------------------------------------------------


def status(figure: Figure) -> str:
    if figure.met is None:
        return ""
    return "met" if figure.met else "NOT MET"


def format_table(figures: Sequence[Figure]) -> str:
    headers = ("benchmark", "figure", "value", "unit", "target", "status", "note")
    rows = [(f.benchmark, f.name, f.cell(), f.unit, f.target, status(f), f.note) for f in figures]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    # The note is last and left unpadded: it may be long.
    widths[-1] = 0

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(width) if index == 2 else cell.ljust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(headers), line(["-" * max(w, 4) for w in widths])]
    out.extend(line(row) for row in rows)
    return "\n".join(out)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_report(report: dict[str, Any], *, started: datetime.datetime) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{started:%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2, default=_jsonable) + "\n")
    return path


def figures_json(figures: Sequence[Figure]) -> list[dict[str, Any]]:
    return [{**asdict(f), "status": status(f) or None} for f in figures]


# --- SQL helpers ------------------------------------------------------------------------


def execute(sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> int:
    """Run one statement on Django's connection; returns the row count."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def scalar(sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else row[0]


def explain(sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of one statement in the current transaction and scope: the
    plan's lines and the server-side execution time."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, SETTINGS) " + sql, params)
        lines = [str(row[0]) for row in cursor.fetchall()]
    execution = next((line for line in lines if line.startswith("Execution Time:")), "")
    planning = next((line for line in lines if line.startswith("Planning Time:")), "")

    def ms(text: str) -> float | None:
        try:
            return float(text.split(":", 1)[1].strip().split()[0])
        except (IndexError, ValueError):
            return None

    return {"plan": lines, "execution_ms": ms(execution), "planning_ms": ms(planning)}


def vacuum_analyze(*tables: str) -> None:
    """VACUUM (ANALYZE) as the tables' owner, outside any transaction: fresh statistics and a
    visibility map, the steady state a production table is in between loads."""
    from django.db import connection

    assert not connection.in_atomic_block, "VACUUM cannot run inside a transaction"
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(table)}")


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 4)
