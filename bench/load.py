"""Load over real HTTP: the production server (gunicorn, debug off) under many shops at once.

    python -m bench.load [--requests 10000] [--concurrency 16] [--shops 20] [--workers 3]
                         [--max-seconds 240] [--write-share 0.1] [--days 14]
                         [--recycle-every 200] [--recycle-requests 3000]

Seeds demo data (every table) for `--shops` shops in its own database (`bench_load` on the
embedded server, or DATABASE_URL), mints a token per shop owner, starts gunicorn with
`--workers` sync workers exactly as `make serve` does, and sends `--requests` requests from
`--concurrency` client threads: GET lists of every resource, mixed with bulk upserts
(ad-performance and seo-rankings, 25 rows each) for the caller's own shop. Every row of every
answer is checked: a row of another shop (or another user's) counts as a leak and must be 0.
Prints requests/s, p50/p95/p99 and errors, and writes bench/results/load-<timestamp>.json
(docs/performance.md, HTTP load). Bounded: it stops at `--max-seconds` whatever the count.

Then the recycle run (`--recycle-every`, 0 skips it): `--recycle-requests` more on a server that
recycles each worker every `--recycle-every` requests (jitter: half as many more) and is reloaded
(SIGHUP) halfway, reporting requests/s, errors and the longest gap without an answer under
`recycle` in the report: what worker recycles and a deploy's reload cost the clients.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import itertools
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Every list endpoint of the API (docs/api.md); each is read with its default page.
READ_RESOURCES = (
    "ad-campaigns",
    "ad-performance",
    "seo-audits",
    "seo-rankings",
    "social-posts",
    "social-analytics",
    "experiments",
    "experiment-results",
    "knowledge-documents",
    "ceo-briefings",
    "onboarding-progress",
    "feature-tours",
)
BULK_ROWS = 25


@dataclass(frozen=True)
class Tenant:
    """One shop as the load sees it: its owner's token and ids to write under."""

    shop: str
    user_id: str
    token: str
    campaign_ids: tuple[int, ...]


@dataclass(frozen=True)
class Call:
    kind: str  # "read:<resource>" or "write:<resource>"
    method: str
    path: str
    body: bytes | None


@dataclass
class Outcome:
    kind: str
    status: int
    seconds: float
    foreign_rows: int
    rows: int
    error: str = ""
    # When the answer (or the error) came, in seconds from the start of the run.
    finished_at: float = 0.0


def longest_gap(finished_at: Sequence[float], *, start: float, end: float) -> float:
    """The longest time in [start, end] without an answer: between the start and the first
    answer, between two answers, or between the last answer and the end. Under steady load
    that is how long the server was unavailable; a worker that never comes back shows too."""
    times = sorted(t for t in finished_at if start <= t <= end)
    edges = [start, *times, end]
    return max(later - earlier for earlier, later in itertools.pairwise(edges))


@dataclass
class LoadResult:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    stopped_by_deadline: bool = False

    def summary(self) -> dict[str, Any]:
        latencies = np.array([outcome.seconds * 1000 for outcome in self.outcomes]) if self.outcomes else np.zeros(1)
        errors = [outcome for outcome in self.outcomes if outcome.error or outcome.status >= 400]
        by_kind: dict[str, list[float]] = {}
        for outcome in self.outcomes:
            by_kind.setdefault(outcome.kind, []).append(outcome.seconds * 1000)
        return {
            "requests": len(self.outcomes),
            "seconds": round(self.seconds, 2),
            "requests_per_second": round(len(self.outcomes) / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(float(np.percentile(latencies, 50)), 1),
            "p95_ms": round(float(np.percentile(latencies, 95)), 1),
            "p99_ms": round(float(np.percentile(latencies, 99)), 1),
            "max_ms": round(float(latencies.max()), 1),
            # Answers only: an error ends no gap.
            "longest_gap_s": round(
                longest_gap(
                    [o.finished_at for o in self.outcomes if not (o.error or o.status >= 400)],
                    start=0.0,
                    end=self.seconds,
                ),
                2,
            ),
            "errors": len(errors),
            "error_examples": sorted({f"{e.kind} {e.status} {e.error}"[:200] for e in errors})[:10],
            "rows_returned": sum(outcome.rows for outcome in self.outcomes),
            "foreign_rows": sum(outcome.foreign_rows for outcome in self.outcomes),
            "stopped_by_deadline": self.stopped_by_deadline,
            "by_kind": {
                kind: {
                    "requests": len(values),
                    "p50_ms": round(float(np.percentile(values, 50)), 1),
                    "p95_ms": round(float(np.percentile(values, 95)), 1),
                }
                for kind, values in sorted(by_kind.items())
            },
        }


def plan_calls(tenant: Tenant, *, count: int, write_share: float, rng: random.Random) -> list[Call]:
    """`count` calls for one tenant: reads of every resource in turn, writes at `write_share`."""
    calls: list[Call] = []
    today = datetime.datetime.now(datetime.UTC).date()
    for index in range(count):
        if rng.random() < write_share:
            if index % 2 and tenant.campaign_ids:
                campaign = rng.choice(tenant.campaign_ids)
                rows = [
                    {
                        "campaign_id": campaign,
                        "date": (today - datetime.timedelta(days=day + 1)).isoformat(),
                        "impressions": rng.randint(1000, 5000),
                        "clicks": rng.randint(10, 100),
                        "conversions": str(rng.randint(0, 9)),  # decimals are JSON strings
                        "cost": f"{rng.uniform(5, 50):.2f}",
                        "revenue": f"{rng.uniform(0, 200):.2f}",
                    }
                    for day in range(BULK_ROWS)
                ]
                calls.append(
                    Call("write:ad-performance", "POST", "/api/v1/ad-performance/bulk/", json.dumps(rows).encode())
                )
            else:
                tracked = datetime.datetime.combine(today - datetime.timedelta(days=1), datetime.time(6), datetime.UTC)
                rows = [
                    {"keyword": f"load keyword {n}", "position": rng.randint(1, 100), "tracked_at": tracked.isoformat()}
                    for n in range(BULK_ROWS)
                ]
                calls.append(
                    Call("write:seo-rankings", "POST", "/api/v1/seo-rankings/bulk/", json.dumps(rows).encode())
                )
        else:
            resource = READ_RESOURCES[(index + rng.randrange(len(READ_RESOURCES))) % len(READ_RESOURCES)]
            calls.append(Call(f"read:{resource}", "GET", f"/api/v1/{resource}/", None))
    return calls


def foreign_rows(payload: Any, tenant: Tenant) -> tuple[int, int]:
    """(rows, rows that are not the tenant's) of a list or bulk answer."""
    if not isinstance(payload, dict):
        return 0, 0
    results = payload.get("results")
    if not isinstance(results, list):
        return 0, 0
    foreign = 0
    for row in results:
        if "shop_domain" in row:
            foreign += row["shop_domain"] != tenant.shop
        elif "user" in row:
            foreign += str(row["user"]) != tenant.user_id
    return len(results), foreign


def drive(
    base_url: str,
    work: Sequence[tuple[Tenant, Call]],
    *,
    concurrency: int,
    deadline_seconds: float,
    host: str = "127.0.0.1",
    halfway: Callable[[], None] | None = None,
) -> LoadResult:
    """Send `work` from `concurrency` threads, each with its own connection; check every row.
    `halfway` is called once, by the thread that takes the middle call of `work`."""
    address, port = base_url.removeprefix("http://").split(":")
    result = LoadResult()
    lock = threading.Lock()
    position = 0
    started = time.perf_counter()
    deadline = started + deadline_seconds

    def worker() -> None:
        nonlocal position
        conn = http.client.HTTPConnection(address, int(port), timeout=60)
        local: list[Outcome] = []
        while True:
            with lock:
                if position >= len(work):
                    break
                if time.perf_counter() > deadline:
                    result.stopped_by_deadline = True
                    break
                tenant, call = work[position]
                position += 1
                at_halfway = position == len(work) // 2
            if at_halfway and halfway is not None:
                halfway()
            headers = {
                "Host": host,
                "Authorization": f"Bearer {tenant.token}",
                "X-Shop-Domain": tenant.shop,
                "Accept": "application/json",
            }
            if call.body is not None:
                headers["Content-Type"] = "application/json"
            began = time.perf_counter()
            try:
                conn.request(call.method, call.path, body=call.body, headers=headers)
                response = conn.getresponse()
                body = response.read()
                elapsed = time.perf_counter() - began
                rows, foreign = foreign_rows(json.loads(body), tenant) if body else (0, 0)
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                error = "" if response.status < 400 else body[:200].decode(errors="replace")
                answered = began + elapsed - started
                local.append(Outcome(call.kind, response.status, elapsed, foreign, rows, error, answered))
            except (OSError, http.client.HTTPException, ValueError) as exc:
                conn.close()
                now = time.perf_counter()
                failure = f"{type(exc).__name__}: {exc}"
                local.append(Outcome(call.kind, 0, now - began, 0, 0, failure, now - started))
        conn.close()
        with lock:
            result.outcomes.extend(local)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - started
    return result


def interleave(tenants: Sequence[Tenant], *, total: int, write_share: float, seed: int) -> list[tuple[Tenant, Call]]:
    """`total` calls, the tenants taking turns so that concurrent requests are of different shops."""
    rng = random.Random(seed)
    per_tenant = -(-total // len(tenants))
    plans = [plan_calls(tenant, count=per_tenant, write_share=write_share, rng=rng) for tenant in tenants]
    work = [(tenants[t], plans[t][i]) for i in range(per_tenant) for t in range(len(tenants))]
    return work[:total]


# --- the benchmark ---------------------------------------------------------------------------


def tenants_of(shops: int) -> list[Tenant]:
    """The demo shops' owners with a fresh token each (Django must be set up)."""
    from growth.models import AdCampaign
    from tenancy.api.authentication import token_mint
    from tenancy.demo import demo_shop_domain
    from tenancy.models import User
    from tenancy.scope import atomic_scope, service_scope

    found: list[Tenant] = []
    with atomic_scope(service_scope()):
        for index in range(1, shops + 1):
            domain = demo_shop_domain(index)
            owner = User.objects.get(username=f"demo-{index}-owner")
            campaigns = tuple(AdCampaign.objects.filter(shop_id=domain).values_list("id", flat=True))
            token = token_mint(user=owner, ttl=datetime.timedelta(hours=2))
            found.append(Tenant(shop=domain, user_id=str(owner.pk), token=token, campaign_ids=campaigns))
    return found


def _cpu(server: int, postmaster: int | None) -> tuple[float, float, float]:
    """CPU seconds so far of the app server's processes, the database's, and this process."""
    from .servers import tree_cpu_seconds

    return (tree_cpu_seconds(server), tree_cpu_seconds(postmaster) if postmaster else 0.0, time.process_time())


def _load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--shops", type=int, default=20)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (make serve's WEB_CONCURRENCY)")
    parser.add_argument("--write-share", type=float, default=0.1, help="share of bulk writes (0.1)")
    parser.add_argument("--days", type=int, default=14, help="days of demo data per shop (14)")
    parser.add_argument("--max-seconds", type=float, default=240, help="stop sending after this long (240)")
    parser.add_argument("--warmup", type=int, default=300, help="untimed requests first (300)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reseed", action="store_true", help="seed the demo shops even if they exist")
    parser.add_argument("--embedded-database", default="bench_load")
    parser.add_argument(
        "--server",
        choices=("sync", "gthread", "granian"),
        default="sync",
        help="gunicorn sync workers (make serve), gunicorn gthread, or granian (if installed): for comparison",
    )
    parser.add_argument("--threads", type=int, default=4, help="threads a worker, for --server gthread (4)")
    parser.add_argument(
        "--recycle-every",
        type=int,
        default=200,
        help="then a second run on a server recycling each worker after this many requests (jitter: half), "
        "reloaded (HUP) halfway; 0 skips it (200)",
    )
    parser.add_argument("--recycle-requests", type=int, default=3000, help="requests of the recycle run (3000)")
    args = parser.parse_args(argv)
    if args.shops < 20 and args.requests >= 10_000:
        print("note: the issue's figure is for at least 20 shops", file=sys.stderr)

    if not os.environ.get("DATABASE_URL"):
        os.environ["EMBEDDED_DATABASE_NAME"] = args.embedded_database
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    from config.embedded import prepare

    prepare()
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from tenancy.demo import demo_data_seed
    from tenancy.models import Shop
    from tenancy.scope import atomic_scope, service_scope

    from . import harness
    from .servers import database_url, gunicorn, parent_pid, production_env

    started_at = datetime.datetime.now(datetime.UTC)
    harness.log(f"database {connection.settings_dict['NAME']!r}: migrating and seeding {args.shops} demo shops")
    call_command("migrate", interactive=False, verbosity=0)
    with atomic_scope(service_scope()):
        foreign = Shop.objects.exclude(domain__regex=r"^demo-[0-9]+\.myshopify\.com$").count()
        seeded = Shop.objects.filter(domain__regex=r"^demo-[0-9]+\.myshopify\.com$").count()
    if foreign:
        raise SystemExit(f"refusing: the database holds {foreign} shops that are not demo shops")
    # Seeding is idempotent but not free (about a minute for 20 shops): a database that already
    # has the shops is used as it is (--reseed to run it anyway).
    if seeded < args.shops or args.reseed:
        demo_data_seed(shops=args.shops, days=args.days)
    tenants = tenants_of(args.shops)
    work = interleave(tenants, total=args.requests, write_share=args.write_share, seed=args.seed)
    warmup = interleave(tenants, total=args.warmup, write_share=args.write_share, seed=args.seed + 1)

    folder = Path(tempfile.mkdtemp(prefix="bench-load-"))
    env = production_env(
        DATABASE_URL=database_url(connection.get_connection_params()),
        JWT_SECRET=settings.JWT_SECRET,
        DJANGO_SECURE_SSL_REDIRECT="0",
        # The throttle still runs (its cache lookups are part of a request); it never refuses.
        API_THROTTLE_RATE="100000000/minute",
    )
    # The database server's process tree (the postmaster, parent of this backend) is measured
    # only when it runs on this machine (the embedded server).
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = int(cursor.fetchone()[0])
    local_database = str(connection.get_connection_params().get("host", "")).startswith("/")
    postmaster = parent_pid(backend) if local_database else None
    connection.close()
    load_before = _load_average()
    with gunicorn(
        env, workers=args.workers, log_path=folder / "server.log", kind=args.server, threads=args.threads
    ) as server:
        harness.log(
            f"{args.server} server, {args.workers} workers on {server.base_url}; warm-up {len(warmup)} requests"
        )
        drive(server.base_url, warmup, concurrency=args.concurrency, deadline_seconds=60)
        harness.log(f"sending {len(work)} requests from {args.concurrency} threads (at most {args.max_seconds:.0f} s)")
        before = _cpu(server.process.pid, postmaster)
        result = drive(server.base_url, work, concurrency=args.concurrency, deadline_seconds=args.max_seconds)
        after = _cpu(server.process.pid, postmaster)
        log_lines = sum(1 for _ in (folder / "server.log").open())
    recycle: dict[str, Any] | None = None
    if args.recycle_every:
        recycle = _recycle_run(args, env, tenants, folder)
    summary = result.summary()
    # CPU milliseconds a request cost each process, whatever else ran on the machine: on two
    # idle cores the throughput would be about 2000 ms / their sum.
    requests = max(1, summary["requests"])
    app_ms, db_ms, client_ms = (round((b - a) * 1000 / requests, 2) for a, b in zip(before, after, strict=True))
    summary["cpu_ms_per_request"] = {
        "app_server": app_ms,
        "database": db_ms if postmaster else None,
        "load_client": client_ms,
    }
    if postmaster:
        summary["requests_per_second_on_two_idle_cores"] = round(2000 / (app_ms + db_ms + client_ms), 1)
    report = {
        "benchmark": "load",
        "started_at": started_at,
        "machine": harness.machine_info() | {"load_average_before": load_before, "load_average_after": _load_average()},
        "git": harness.git_revision(),
        "options": vars(args),
        "server": {"kind": args.server, "workers": args.workers, "log_lines": log_lines},
        "shops": len(tenants),
        "result": summary,
        "recycle": recycle,
    }
    harness.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = harness.RESULTS_DIR / f"load-{started_at:%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(
        f"HTTP load: {summary['requests']} requests, {len(tenants)} shops, concurrency {args.concurrency}, "
        f"{args.workers} {args.server} workers: {summary['requests_per_second']} requests/s, "
        f"p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms, p99 {summary['p99_ms']} ms, "
        f"errors {summary['errors']}, rows of another shop {summary['foreign_rows']} "
        f"(load average {load_before[0]} before); report: {path}"
    )
    cpu = summary["cpu_ms_per_request"]
    print(
        f"  CPU per request: app server {cpu['app_server']} ms, database {cpu['database']} ms, "
        f"load client {cpu['load_client']} ms; on two idle cores about "
        f"{summary.get('requests_per_second_on_two_idle_cores')} requests/s"
    )
    for kind, figures in summary["by_kind"].items():
        print(
            f"  {kind:32} {figures['requests']:6} requests  p50 {figures['p50_ms']:7} ms  p95 {figures['p95_ms']:7} ms"
        )
    failed = summary["errors"] or summary["foreign_rows"]
    if recycle is not None:
        print(
            f"Recycle run: {recycle['requests']} requests, each worker recycled after {args.recycle_every} requests "
            f"(+0-{recycle['max_requests_jitter']}), one reload (HUP) halfway: {recycle['requests_per_second']} "
            f"requests/s, longest gap without an answer {recycle['longest_gap_s']} s, errors {recycle['errors']}, "
            f"workers booted {recycle['workers_booted']}, timed out {recycle['workers_timed_out']}, "
            f"p99 {recycle['p99_ms']} ms, max {recycle['max_ms']} ms"
        )
        failed = failed or recycle["errors"] or recycle["foreign_rows"]
    return 1 if failed else 0


def _recycle_run(
    args: argparse.Namespace, env: dict[str, str], tenants: Sequence[Tenant], folder: Path
) -> dict[str, Any]:
    """The same mix on a server whose workers are recycled every `--recycle-every` requests and
    which is reloaded (SIGHUP to the master, what a deploy does) halfway: what a recycle or a
    reload costs the clients. While onnxruntime's thread hung the exit, each exiting
    worker was killed only at --timeout (60 s)."""
    from . import harness
    from .servers import gunicorn

    work = interleave(tenants, total=args.recycle_requests, write_share=args.write_share, seed=args.seed + 2)
    jitter = args.recycle_every // 2
    log_path = folder / "recycle.log"
    with gunicorn(
        env, workers=args.workers, log_path=log_path, max_requests=args.recycle_every, max_requests_jitter=jitter
    ) as server:
        harness.log(
            f"recycle run: {len(work)} requests, workers recycled every {args.recycle_every} (+0-{jitter}) requests, "
            "a reload halfway"
        )
        master = server.process.pid
        result = drive(
            server.base_url,
            work,
            concurrency=args.concurrency,
            deadline_seconds=args.max_seconds,
            halfway=lambda: os.kill(master, signal.SIGHUP),
        )
        log = log_path.read_text(errors="replace")
    summary = result.summary()
    return {
        "max_requests": args.recycle_every,
        "max_requests_jitter": jitter,
        "reloads": 1,
        # gunicorn's own lines: every fork of a worker, and workers killed by --timeout.
        "workers_booted": log.count("Booting worker"),
        "workers_timed_out": log.count("WORKER TIMEOUT"),
    } | {key: summary[key] for key in (
        "requests", "seconds", "requests_per_second", "longest_gap_s", "errors", "error_examples",
        "foreign_rows", "p50_ms", "p95_ms", "p99_ms", "max_ms", "stopped_by_deadline",
    )}  # fmt: skip


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
