"""RLS overhead: one shop's newest 100 rows of ad_performance, three ways.

(a) `rls`: as `authenticated` in the shop's scope (set_config of the role and the settings, what
    every API request does), with no shop filter in the SQL: the `ad_performance_tenant` policy supplies
    `shop_domain = current_setting('app.current_shop', true)`.
(b) `explicit`: the same SELECT with an explicit `WHERE shop_domain = %s`, as `service_role`.
    That role is not BYPASSRLS; its policy is `USING (true)`, which the planner folds away, so
    the plan is the one a role without row level security gets for the explicit filter. The
    difference (a) - (b) is therefore the cost of the filter coming from the policy (a STABLE
    `current_setting()` call, planned without the value) instead of from the SQL (a constant the
    planner sees).
(c) `api`: `GET /api/v1/ad-performance/?page_size=100` through Django's test client, in
    process (no network, no server), with a real bearer token and `X-Shop-Domain`: token check,
    membership lookup, scope, cursor pagination (it fetches 101 rows), serialisation, JSON.

(a) and (b) time only the SELECT (execute + fetch) inside a transaction whose scope is already
set; entering and leaving the scope is timed on its own. The variants alternate in every
round, so drift on a shared machine hits all of them alike.
"""

from __future__ import annotations

import time
from typing import Any

from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from growth.models import AdPerformance
from tenancy.scope import enter_scope, service_scope, shop_scope

from .data import Dataset
from .harness import BenchError, BenchResult, Options, Stats, explain, log, ratio, timed

PAGE = 100
API_PATH = f"/api/v1/ad-performance/?page_size={PAGE}"
TARGET_RLS = 1.10
TARGET_API = 2.0


def _columns() -> str:
    return ", ".join(connection.ops.quote_name(f.column) for f in AdPerformance._meta.concrete_fields)


def run(options: Options, dataset: Dataset) -> BenchResult:
    result = BenchResult("rls")
    shop = dataset.api_shop
    columns = _columns()
    sql_rls = f"SELECT {columns} FROM ad_performance ORDER BY date DESC, id DESC LIMIT {PAGE}"
    sql_explicit = (
        f"SELECT {columns} FROM ad_performance WHERE shop_domain = %s ORDER BY date DESC, id DESC LIMIT {PAGE}"
    )
    # Diagnostic, not one of the three: the policy's expression wrapped in a sub-select, which
    # PostgreSQL evaluates once (an InitPlan) instead of once per row it filters.
    sql_initplan = (
        f"SELECT {columns} FROM ad_performance WHERE shop_domain = (SELECT current_setting('app.current_shop', true)) "
        f"ORDER BY date DESC, id DESC LIMIT {PAGE}"
    )
    tenant = shop_scope(shop=shop, subject=dataset.user_id, member_role="owner")
    service = service_scope()
    service_with_shop = service_scope(shop=shop)
    client = Client()
    headers = {"Authorization": f"Bearer {dataset.token}", "X-Shop-Domain": shop}

    def query(sql: str, params: list[Any] | None) -> tuple[int, list[int]]:
        with connection.cursor() as cursor:
            started = time.perf_counter_ns()
            cursor.execute(sql, params)
            rows = cursor.fetchall()
            elapsed = time.perf_counter_ns() - started
        return elapsed, [int(row[0]) for row in rows]

    def rls_once() -> tuple[int, list[int]]:
        with transaction.atomic(), enter_scope(tenant):
            return query(sql_rls, None)

    def explicit_once() -> tuple[int, list[int]]:
        with transaction.atomic(), enter_scope(service):
            return query(sql_explicit, [shop])

    def initplan_once() -> tuple[int, list[int]]:
        # service_role with the shop set, so current_setting() answers as it does for a tenant.
        with transaction.atomic(), enter_scope(service_with_shop):
            return query(sql_initplan, None)

    def api_once() -> tuple[int, Any]:
        started = time.perf_counter_ns()
        response = client.get(API_PATH, headers=headers)
        elapsed = time.perf_counter_ns() - started
        if response.status_code != 200:
            raise BenchError(f"GET {API_PATH} answered {response.status_code}: {response.content[:500]!r}")
        return elapsed, response

    def scope_only() -> None:
        with transaction.atomic(), enter_scope(tenant):
            pass

    log(f"rls: {options.repeats} rounds of (a) rls, (b) explicit WHERE, (c) API for {shop}")
    _, ids_rls = rls_once()
    _, ids_explicit = explicit_once()
    _, ids_initplan = initplan_once()
    _, first = api_once()
    api_ids = [int(row["id"]) for row in first.json()["results"]]
    if len(ids_rls) != PAGE or not ids_rls == ids_explicit == ids_initplan == api_ids:
        raise BenchError(
            f"the variants disagree: rls {len(ids_rls)} rows, explicit {len(ids_explicit)}, "
            f"initplan {len(ids_initplan)}, api {len(api_ids)}; same ids: "
            + str(ids_rls == ids_explicit == ids_initplan == api_ids)
        )
    for _ in range(options.warmup):
        rls_once()
        explicit_once()
        initplan_once()
        api_once()
        scope_only()
    samples: dict[str, list[int]] = {"rls": [], "explicit": [], "initplan": [], "api": [], "scope": []}
    for _ in range(options.repeats):
        samples["rls"].append(rls_once()[0])
        samples["explicit"].append(explicit_once()[0])
        samples["initplan"].append(initplan_once()[0])
        samples["api"].append(api_once()[0])
        samples["scope"].append(timed(scope_only))
    stats = {name: Stats.of(values) for name, values in samples.items()}

    # What the API runs, and the plans of all three (one EXPLAIN ANALYZE each, not timed above).
    with CaptureQueriesContext(connection) as captured:
        api_once()
    api_queries = [q["sql"] for q in captured.captured_queries]
    list_sql = next((q for q in api_queries if 'FROM "ad_performance"' in q and "ORDER BY" in q), None)
    with transaction.atomic(), enter_scope(tenant):
        plan_rls = explain(sql_rls)
        plan_api = explain(list_sql) if list_sql else None
    with transaction.atomic(), enter_scope(service):
        plan_explicit = explain(sql_explicit, [shop])
    with transaction.atomic(), enter_scope(service_with_shop):
        plan_initplan = explain(sql_initplan)

    a, b, c = stats["rls"].median_ms, stats["explicit"].median_ms, stats["api"].median_ms
    rls_ratio, api_ratio = ratio(a, b), ratio(c, b)
    at_scale = "target set at 1000 shops / 1M rows" if dataset.ad_rows < 1_000_000 else ""
    result.add("(a) SELECT as authenticated via RLS, median", a, "ms", note=f"p95 {stats['rls'].p95_ms:.2f} ms")
    result.add(
        "(b) SELECT + explicit WHERE (service_role), median", b, "ms", note=f"p95 {stats['explicit'].p95_ms:.2f} ms"
    )
    result.add(
        "(c) GET /api/v1/ad-performance/?page_size=100, median",
        c,
        "ms",
        note=f"p95 {stats['api'].p95_ms:.2f} ms; {len(api_queries)} SQL statements a request",
    )
    result.add("scope enter + exit (its own transaction), median", stats["scope"].median_ms, "ms")
    result.add(
        "(a)/(b) RLS overhead on the query",
        rls_ratio,
        "x",
        target=f"<= {TARGET_RLS}",
        met=None if rls_ratio is None else rls_ratio <= TARGET_RLS,
        note=at_scale,
    )
    result.add(
        "(c)/(b) API vs raw SQL",
        api_ratio,
        "x",
        target=f"<= {TARGET_API}",
        met=None if api_ratio is None else api_ratio <= TARGET_API,
        note=at_scale,
    )
    result.add(
        "diagnostic: WHERE shop_domain = (SELECT current_setting(...)) / (b)",
        ratio(stats["initplan"].median_ms, b),
        "x",
        note=f"median {stats['initplan'].median_ms:.2f} ms: the policy's expression as a sub-select (evaluated once)",
    )
    result.add(
        "server execution (a) / (b), EXPLAIN ANALYZE once",
        ratio(plan_rls["execution_ms"], plan_explicit["execution_ms"]),
        "x",
        note=f"(a) {plan_rls['execution_ms']} ms, (b) {plan_explicit['execution_ms']} ms",
    )
    result.details = {
        "shop": shop,
        "rows_in_shop": dataset.ad_rows // dataset.shops,
        "page_size": PAGE,
        "what_is_measured": {
            "rls": "SELECT ... ORDER BY date DESC, id DESC LIMIT 100 as authenticated in the shop's scope; the "
            "ad_performance_tenant policy adds shop_domain = current_setting('app.current_shop', true). "
            "Timed: execute + fetch, scope already entered.",
            "explicit": "the same SELECT with WHERE shop_domain = %s as service_role, whose policy USING (true) "
            "the planner removes: the plan of a role without row level security. Timed like (a).",
            "api": "GET /api/v1/ad-performance/?page_size=100 through django.test.Client in process: "
            "authentication, membership lookup, scope, cursor pagination (101 rows fetched), serialisation, "
            "JSON rendering. The connection is reused between requests (as with DATABASE_CONN_MAX_AGE > 0).",
            "initplan": "diagnostic: WHERE shop_domain = (SELECT current_setting('app.current_shop', true)) as "
            "service_role with the shop set: what (a) would cost if the policy wrapped current_setting() in a "
            "sub-select, which PostgreSQL evaluates once per statement instead of once per row. Timed like (a).",
            "scope": "BEGIN; enter_scope(shop_scope) (1 statement); restore (1 statement); COMMIT",
        },
        "sql": {"rls": sql_rls, "explicit": sql_explicit, "initplan": sql_initplan, "api_statements": api_queries},
        "stats": {name: vars(value) for name, value in stats.items()},
        "ratios": {"rls_over_explicit": rls_ratio, "api_over_explicit": api_ratio},
        "targets": {"rls_over_explicit_max": TARGET_RLS, "api_over_explicit_max": TARGET_API},
        "plans": {"rls": plan_rls, "explicit": plan_explicit, "initplan": plan_initplan, "api_list_query": plan_api},
        "same_rows_in_all_variants": True,
    }
    return result
