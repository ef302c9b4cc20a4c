"""Vector search: recall@k of `knowledge_search` against exact search, and its latency.

The documents are synthetic clustered vectors (see bench/data.py), not real embeddings. For each
vector shop (100, 10,000 and, at full scale, 100,000 documents, all in the one table) the same
queries run:

- `exact`: the ground truth, an exact k-NN in the shop's scope (`ORDER BY (embedding <=> q) + 0,
  id`, which no index serves), timed as a reference;
- `service`: `advanced.knowledge.services.knowledge_search(vector=q, k=k)` as configured: exact
  up to `exact_search_limit` candidates (KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES, or the
  break-even computed from the physical index), above it its index branch (IVFFlat settings,
  iterative scan, and planner settings that leave the IVFFlat scan as the plan);
- `index path`: the same service with that threshold at 0, so every shop takes the index branch
  (skipped for shops above the threshold: it is `service` again);
- `exact path`: the same service with that threshold out of reach, so every shop takes the
  exact branch (skipped for shops at or below the threshold: it is `service` again);
- `IVFFlat plan`: the index branch with seq scans, bitmap scans and sorts disabled for the
  transaction, so the plan is the IVFFlat scan: what the index itself returns at each size.

Every run records whether the plan of its search statement used the IVFFlat index at all.

Twice: `before` with the index as the migration leaves it (lists=100, built on an empty
table), and `after` `manage.py rebuild_knowledge_index` (lists fitted to the rows).
"""

from __future__ import annotations

import io
import re
import time
from collections import Counter
from typing import Any

import numpy as np
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings

from advanced.knowledge.services import (
    INDEX_NAME,
    exact_search_limit,
    ivfflat_index_state,
    ivfflat_search_settings,
    knowledge_search,
)
from advanced.knowledge.services.index import INDEX_PLAN_SETTINGS
from tenancy.scope import atomic_scope, shop_scope

from .data import SUBTOPICS, Dataset, VectorShop, sample_vectors
from .harness import BenchError, BenchResult, Options, Stats, explain, log

TARGET_RECALL = 0.95
SERVICE = "service"
INDEX_PATH = "index path"
EXACT_PATH = "exact path"
IVFFLAT_PLAN = "IVFFlat plan"
MODES = (SERVICE, INDEX_PATH, EXACT_PATH, IVFFLAT_PLAN)
# A threshold no shop reaches: the exact branch for everyone.
NO_INDEX = 10**9
# Planner settings that leave the ordered IVFFlat scan as the only plan without a disabled node.
STEER_OFF = ("enable_seqscan", "enable_bitmapscan", "enable_sort")
EXACT_SQL = (
    "SELECT id FROM knowledge_base WHERE is_current AND embedding IS NOT NULL "
    "ORDER BY (embedding <=> %s::vector) + 0, id LIMIT %s"
)


def _text(vector: np.ndarray[Any, Any]) -> str:
    # repr() of the float32 value as a double: PostgreSQL parses it back to the same float4.
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


_VECTOR_LITERAL = re.compile(r"'\[[-+0-9.eE, ]+\]'")


def _elide(sql: str) -> str:
    """A statement or plan line without its 1536-number vector literals (the report stays readable)."""
    return _VECTOR_LITERAL.sub("'[vector]'", sql)


def _elide_plan(plan: dict[str, Any]) -> dict[str, Any]:
    return {**plan, "plan": [_elide(line) for line in plan.get("plan", [])]}


def _queries(options: Options, dataset: Dataset, shop: VectorShop, count: int, salt: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng([options.seed, shop.number, salt])
    topics = rng.choice(np.asarray(shop.topics), size=count)
    subs = rng.integers(0, SUBTOPICS, size=count)
    return sample_vectors(rng, dataset, topics, subs)


def _index_state() -> dict[str, Any]:
    with transaction.atomic():
        state = ivfflat_index_state()
        size = None
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_relation_size(to_regclass(%s))", [INDEX_NAME])
            row = cursor.fetchone()
            size = int(row[0]) if row and row[0] is not None else None
    if state is None:
        return {"index": None}
    return {
        "index": INDEX_NAME,
        "lists": state.lists,
        "pgvector": ".".join(map(str, state.pgvector_version)),
        "rows": state.rows,
        "search_settings": ivfflat_search_settings(state),
        "planner_settings": INDEX_PLAN_SETTINGS,
        "exact_search_max_candidates": exact_search_limit(state),
        "exact_search_max_candidates_setting": settings.KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES,
        "index_bytes": size,
    }


def _measure_shop(
    options: Options,
    dataset: Dataset,
    shop: VectorShop,
    queries: np.ndarray[Any, Any],
    warmups: np.ndarray[Any, Any],
    truth: list[list[int]],
    *,
    mode: str,
) -> dict[str, Any]:
    scope = shop_scope(shop=shop.domain, subject=dataset.user_id, member_role="owner")
    threshold = {SERVICE: settings.KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES, EXACT_PATH: NO_INDEX}.get(mode, 0)
    expected = min(options.k, shop.documents)
    samples: list[int] = []
    recalls: list[float] = []
    scans: Counter[str] = Counter()
    short = 0
    with override_settings(KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES=threshold), atomic_scope(scope):
        if mode == IVFFLAT_PLAN:
            with connection.cursor() as cursor:
                cursor.execute("SELECT " + ", ".join(f"set_config('{name}', 'off', true)" for name in STEER_OFF))
        for vector in warmups:
            knowledge_search(vector=[float(x) for x in vector], k=options.k)
        for vector, wanted in zip(queries, truth, strict=True):
            as_list = [float(x) for x in vector]
            started = time.perf_counter_ns()
            found = knowledge_search(vector=as_list, k=options.k)
            samples.append(time.perf_counter_ns() - started)
            ids = [document.pk for document in found.documents]
            scans[str(found.scan)] += 1
            short += len(ids) < expected
            recalls.append(len(set(ids) & set(wanted)) / len(wanted))
        # The statements of one call, and the plan of its search (the statement ordering by
        # distance), run after the settings the service applied before it.
        with CaptureQueriesContext(connection) as captured:
            knowledge_search(vector=[float(x) for x in queries[0]], k=options.k)
        statements = [q["sql"] for q in captured.captured_queries]
        search = next((i for i, sql in enumerate(statements) if "<=>" in sql and "ORDER BY" in sql), None)
        count = next((sql for sql in statements if sql.startswith("SELECT COUNT(*)")), None)
        plan: dict[str, Any] = {}
        count_plan: dict[str, Any] = {}
        with transaction.atomic(), connection.cursor() as cursor:
            if count is not None:
                count_plan = explain(count)
            if search is not None:
                for sql in statements[:search]:
                    if sql.startswith("SELECT set_config"):
                        cursor.execute(sql)
                plan = explain(statements[search])
    stats = Stats.of(samples)
    return {
        "mode": mode,
        "planner_settings": dict.fromkeys(STEER_OFF, "off") if mode == IVFFLAT_PLAN else {},
        "plan_uses_ivfflat": any(INDEX_NAME in line for line in plan.get("plan", [])),
        "documents": shop.documents,
        "queries": len(queries),
        "recall_mean": round(float(np.mean(recalls)), 4),
        "recall_min": round(float(np.min(recalls)), 4),
        "queries_short_of_k": short,
        "every_query_k_rows": short == 0,
        "scans": dict(scans),
        "latency": vars(stats),
        "statements": [_elide(sql) for sql in statements],
        "search_plan": _elide_plan(plan),
        "count_plan": count_plan,
    }


def _exact(options: Options, dataset: Dataset, shop: VectorShop, queries: np.ndarray[Any, Any]) -> dict[str, Any]:
    scope = shop_scope(shop=shop.domain, subject=dataset.user_id, member_role="owner")
    truth: list[list[int]] = []
    samples: list[int] = []
    with atomic_scope(scope), connection.cursor() as cursor:
        for vector in queries:
            text = _text(vector)
            started = time.perf_counter_ns()
            cursor.execute(EXACT_SQL, [text, options.k])
            rows = cursor.fetchall()
            samples.append(time.perf_counter_ns() - started)
            truth.append([int(row[0]) for row in rows])
        plan = _elide_plan(explain(EXACT_SQL, [_text(queries[0]), options.k]))
    if any(len(ids) != min(options.k, shop.documents) for ids in truth):
        raise BenchError(f"exact search in {shop.domain} returned fewer than k rows")
    return {"truth": truth, "latency": vars(Stats.of(samples)), "plan": plan}


def run(options: Options, dataset: Dataset) -> BenchResult:
    result = BenchResult("vectors")
    if not dataset.vector_shops:
        raise BenchError("no vector shops were generated")
    shops = dataset.vector_shops
    queries = {s.domain: _queries(options, dataset, s, options.queries, 1) for s in shops}
    warmups = {s.domain: _queries(options, dataset, s, min(options.warmup, 5), 2) for s in shops}
    log(f"vectors: exact ground truth for {len(shops)} shops x {options.queries} queries")
    exact = {s.domain: _exact(options, dataset, s, queries[s.domain]) for s in shops}
    phases: dict[str, Any] = {}
    for phase in ("before", "after"):
        if phase == "after":
            log("vectors: manage.py rebuild_knowledge_index")
            out = io.StringIO()
            started = time.monotonic()
            # An empty --maintenance-work-mem leaves the command to size it (what production does).
            memory = options.maintenance_work_mem or None
            call_command("rebuild_knowledge_index", maintenance_work_mem=memory, stdout=out)
            rebuild_seconds = round(time.monotonic() - started, 2)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE knowledge_base")
            phases["rebuild"] = {
                "seconds": rebuild_seconds,
                "command": "manage.py rebuild_knowledge_index"
                + (f" --maintenance-work-mem {memory}" if memory else " (maintenance_work_mem sized by the command)"),
                "output": out.getvalue().splitlines(),
            }
        state = _index_state()
        limit = state.get("exact_search_max_candidates", 0)
        log(
            f"vectors: {phase} rebuild, lists={state.get('lists')}, settings {state.get('search_settings')}, "
            f"exact up to {limit} candidates"
        )
        runs = []
        for shop in shops:
            for mode in MODES:
                if (mode == INDEX_PATH and shop.documents > limit) or (mode == EXACT_PATH and shop.documents <= limit):
                    # The branch the service takes anyway: same as SERVICE.
                    continue
                runs.append(
                    _measure_shop(
                        options,
                        dataset,
                        shop,
                        queries[shop.domain],
                        warmups[shop.domain],
                        exact[shop.domain]["truth"],
                        mode=mode,
                    )
                )
        phases[phase] = {"index": state, "runs": runs}

    for shop in shops:
        stats = exact[shop.domain]["latency"]
        result.add(
            f"exact k-NN SQL, {shop.documents:,} docs, p50",
            stats["median_ms"],
            "ms",
            note=f"p95 {stats['p95_ms']:.2f} ms (ground truth)",
        )
    for phase in ("before", "after"):
        state = phases[phase]["index"]
        index_settings = {**state.get("search_settings", {}), **state.get("planner_settings", {})}
        settings_text = ", ".join(f"{k}={v}" for k, v in index_settings.items())
        result.add(
            f"{phase} rebuild: IVFFlat lists",
            state.get("lists"),
            "",
            note=(
                f"index branch: {settings_text}; exact up to {state.get('exact_search_max_candidates'):,} "
                f"candidates ({state.get('rows'):,} rows indexed)"
            ),
        )
        for run_ in phases[phase]["runs"]:
            service = run_["mode"] == SERVICE
            label = run_["mode"]
            ok = run_["recall_mean"] >= TARGET_RECALL and run_["every_query_k_rows"]
            scans = ", ".join(f"{k} {v}" for k, v in sorted(run_["scans"].items()))
            scans += "; plan: " + ("IVFFlat index scan" if run_["plan_uses_ivfflat"] else "no index (exact scan)")
            result.add(
                f"{phase}: recall@{options.k} {label}, {run_['documents']:,} docs",
                run_["recall_mean"],
                "",
                target=f">= {TARGET_RECALL}, k rows" if service else "",
                met=ok if service else None,
                decimals=3,
                note=(
                    f"min {run_['recall_min']}; short of k: {run_['queries_short_of_k']}/{run_['queries']}; "
                    f"scans: {scans}"
                ),
            )
            result.add(
                f"{phase}: latency {label}, {run_['documents']:,} docs, p50",
                run_["latency"]["median_ms"],
                "ms",
                note=f"p95 {run_['latency']['p95_ms']:.2f} ms",
            )
    result.add(
        "rebuild_knowledge_index", phases["rebuild"]["seconds"], "s", note=" / ".join(phases["rebuild"]["output"])
    )
    result.details = {
        "label": "synthetic clustered vectors, not real embeddings",
        "generator": dataset.vector_generator,
        "k": options.k,
        "queries_per_shop": options.queries,
        "shops": [{"domain": s.domain, "documents": s.documents, "topics": len(s.topics)} for s in shops],
        "table_documents": dataset.documents,
        "exact": {d: {"latency": v["latency"], "plan": v["plan"]} for d, v in exact.items()},
        "phases": phases,
        "targets": {"recall_at_k_min": TARGET_RECALL, "every_query_k_rows": True, "applies_to": "service"},
        "what_is_measured": {
            "exact": EXACT_SQL + " in the shop's scope (authenticated); the ground truth",
            SERVICE: "knowledge_search(vector=q, k) in the shop's scope, settings as configured",
            INDEX_PATH: "knowledge_search with KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES=0: always the service's index "
            "branch (IVFFlat settings applied); the planner still chooses the plan. Skipped where the shop has more "
            "candidates than the threshold (identical to service).",
            EXACT_PATH: f"knowledge_search with KNOWLEDGE_EXACT_SEARCH_MAX_CANDIDATES={NO_INDEX}: always the exact "
            "branch. Skipped where the shop has at most the threshold's candidates (identical to service).",
            IVFFLAT_PLAN: "as index path, with enable_seqscan, enable_bitmapscan and enable_sort off in the "
            "transaction, so the planner takes the IVFFlat index scan: what the index itself returns",
            "plan": "plan_uses_ivfflat: whether EXPLAIN of the search statement shows knowledge_base_embedding_idx",
            "latency": "wall time of one knowledge_search call (count, index settings, search), scope already entered",
        },
    }
    return result
