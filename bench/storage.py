"""Storage: bytes per row of each table with its indexes, extrapolated to 1000 shops for a year.

ad_campaigns, ad_performance and knowledge_base hold the run's data set; every other table gets
`--storage-rows` sample rows of plausible content written here (and removed afterwards, so the
later benchmarks see only the data set). After VACUUM (ANALYZE), bytes per row is
`pg_total_relation_size` (heap + TOAST + every index) / the exact row count. Free text is
incompressible hex, so TOAST compression does not flatter the figures. Not counted: WAL,
backups, bloat from updates and deletes (fresh inserts only), free-space and visibility maps
of tables yet to be vacuumed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from django.db import connection

from tenancy.scope import atomic_scope, service_scope

from .data import SHOP_PREFIX, Dataset, shop_sql, uniform_sql
from .harness import BenchResult, Options, execute, log, timed, vacuum_analyze

SCHEMA_ESTIMATE_BYTES = 8 * 10**9
SHOPS = 1000
SAMPLE_USER_PREFIX = f"{SHOP_PREFIX}sample-"
SMALL_SAMPLE = 10_000


@dataclass(frozen=True)
class Assumption:
    """Rows one shop adds to a table in a year, and why."""

    table: str
    rows_per_shop_year: float
    basis: str


ASSUMPTIONS: tuple[Assumption, ...] = (
    Assumption("shops", 1, "the shop itself"),
    Assumption("users", 3, "3 people per shop"),
    Assumption("shop_memberships", 3, "3 people per shop"),
    Assumption("seo_audits", 365, "one crawl a day"),
    Assumption("seo_rankings", 36_500, "100 tracked keywords x 1 engine x 1 location x 365 days"),
    Assumption("ad_campaigns", 3, "3 campaigns"),
    Assumption("ad_performance", 1_095, "3 campaigns x 365 days (1.1M rows a year at 1000 shops)"),
    Assumption("social_posts", 365, "one post a day"),
    Assumption("social_analytics", 2_555, "7 daily snapshots per post"),
    Assumption("experiments", 12, "one experiment a month"),
    Assumption("experiment_results", 720, "12 experiments x 2 variants x 30 daily snapshots"),
    Assumption("knowledge_base", 200, "200 document versions with a 1536-d embedding (200,000 at 1000 shops)"),
    Assumption("ceo_briefings", 433, "365 daily + 52 weekly + 12 monthly + 4 quarterly"),
    Assumption("onboarding_progress", 30, "3 people x 10 steps"),
    Assumption("feature_tours", 30, "3 people x 10 tours"),
)
SAMPLE_TABLES = (
    "seo_audits",
    "seo_rankings",
    "social_analytics",
    "social_posts",
    "experiment_results",
    "experiments",
    "ceo_briefings",
    "onboarding_progress",
    "feature_tours",
)


def _hex(n_expr: str, chars: int) -> str:
    """`chars` characters of incompressible hex text, distinct per row."""
    pieces = chars // 33 + 1
    digests = f"(SELECT string_agg(md5(({n_expr})::text || ':' || i), ' ') FROM generate_series(1, {pieces}) i)"
    return f"left({digests}, {chars})"


def _sample_sql(options: Options) -> list[tuple[str, str]]:
    """(table, INSERT) for every sample table; row n belongs to shop n % shops + 1, and j is
    its ordinal within that shop (what keeps natural keys unique)."""
    s = options.shops

    def u(salt: int) -> str:
        return uniform_sql("n", 100 + salt, options.seed)

    shop = shop_sql(f"n %% {s} + 1")
    j = f"(n / {s})"
    series = "generate_series(0, %(rows)s - 1) n"
    users = f"md5('{SAMPLE_USER_PREFIX}' || (n / 10))::uuid"
    return [
        (
            "users",
            f"""INSERT INTO users (id, password, username, first_name, last_name, email, is_superuser, is_staff,
                                   is_active, date_joined)
                SELECT md5('{SAMPLE_USER_PREFIX}' || n)::uuid, '!', '{SAMPLE_USER_PREFIX}' || n, 'Sample', 'User ' || n,
                       '{SAMPLE_USER_PREFIX}' || n || '@example.com', false, false, true, now()
                  FROM generate_series(0, (%(rows)s + 9) / 10 - 1) n""",
        ),
        (
            "seo_audits",
            f"""INSERT INTO seo_audits (shop_domain, crawled_at, pages_crawled, avg_lcp, avg_fid, avg_cls,
                                        technical_score, content_score, performance_score, critical_issues,
                                        high_priority_issues)
                SELECT {shop}, timestamptz '2024-01-01 03:00+00' + {j} * interval '1 day',
                       (50 + 950 * {u(1)})::int, round((1200 + 3000 * {u(2)})::numeric, 2),
                       round((10 + 200 * {u(3)})::numeric, 2), round((0.3 * {u(4)})::numeric, 4),
                       (100 * {u(5)})::int, (100 * {u(6)})::int, (100 * {u(7)})::int, (5 * {u(8)})::int,
                       (20 * {u(9)})::int
                  FROM {series}""",
        ),
        (
            "seo_rankings",
            f"""INSERT INTO seo_rankings (shop_domain, keyword, position, url, search_volume, search_engine, location,
                                          featured_snippet, tracked_at, tracked_on)
                SELECT {shop}, 'organic cotton shirt ' || ({j} %% 100), 1 + (150 * {u(1)})::int,
                       'https://' || {shop} || '/products/product-' || ({j} %% 100), (10000 * {u(2)})::int,
                       'google', 'US', {u(3)} < 0.05,
                       timestamptz '2024-01-01 06:00+00' + ({j} / 100) * interval '1 day',
                       date '2024-01-01' + ({j} / 100)::int
                  FROM {series}""",
        ),
        (
            "social_posts",
            f"""INSERT INTO social_posts (shop_domain, platform, platform_post_id, post_url, caption, published_at)
                SELECT {shop}, 'instagram', '17890' || lpad(n::text, 13, '0'),
                       'https://www.instagram.com/p/' || left(md5(n::text), 11) || '/', {_hex("n", 200)},
                       timestamptz '2024-01-01 12:00+00' + {j} * interval '1 day'
                  FROM {series}""",
        ),
        (
            "social_analytics",
            # The parent's ordinal is matched with a hash join: its right side depends on n alone.
            f"""WITH p AS (SELECT id, shop_domain, platform, published_at, row_number() OVER (ORDER BY id) - 1 AS rn
                             FROM social_posts),
                     t AS (SELECT count(*) AS total FROM social_posts)
                INSERT INTO social_analytics (social_post_id, shop_domain, platform, measured_at, views, likes,
                                              comments, shares, reach, impressions)
                SELECT p.id, p.shop_domain, p.platform, p.published_at + (n / t.total) * interval '1 day',
                       (20000 * {u(1)})::int, (2000 * {u(2)})::int, (200 * {u(3)})::int, (100 * {u(4)})::int,
                       (15000 * {u(5)})::int, (25000 * {u(6)})::int
                  FROM {series} CROSS JOIN t JOIN p ON p.rn = n %% t.total""",
        ),
        (
            "experiments",
            f"""INSERT INTO experiments (shop_domain, experiment_key, experiment_name, description, variants, status,
                                         started_at, ended_at, primary_metric, confidence_threshold, min_sample_size,
                                         winning_variant, confidence_level)
                SELECT {shop}, 'exp-' || {j}, 'Checkout button colour ' || {j}, {_hex("n", 150)},
                       '[{{"key": "control", "name": "Control", "weight": 0.5, "is_control": true}},
                         {{"key": "variant-a", "name": "Variant A", "weight": 0.5, "is_control": false}}]'::jsonb,
                       'completed', timestamptz '2024-01-01' + {j} * interval '1 day',
                       timestamptz '2024-01-01' + ({j} + 30) * interval '1 day', 'conversion_rate', 0.95, 1000,
                       CASE WHEN {u(1)} < 0.4 THEN 'variant-a' END, round((0.5 + 0.5 * {u(2)})::numeric, 4)
                  FROM {series}""",
        ),
        (
            "experiment_results",
            f"""WITH e AS (SELECT id, shop_domain, row_number() OVER (ORDER BY id) - 1 AS rn FROM experiments),
                     t AS (SELECT count(*) AS total FROM experiments)
                INSERT INTO experiment_results (experiment_id, shop_domain, variant_key, snapshot_date, participants,
                                                conversions, avg_order_value, revenue_per_user,
                                                revenue_per_user_stddev, p_value, confidence_interval_lower,
                                                confidence_interval_upper)
                SELECT e.id, e.shop_domain, CASE WHEN n %% 2 = 0 THEN 'control' ELSE 'variant-a' END,
                       date '2024-01-01' + (n / (2 * t.total))::int, r.participants,
                       (r.participants * 0.05 * {u(2)})::int, round((40 + 60 * {u(3)})::numeric, 2),
                       round((2 + 3 * {u(4)})::numeric, 4), round((5 + 10 * {u(5)})::numeric, 4),
                       round({u(6)}::numeric, 10), round((-0.02 + 0.01 * {u(7)})::numeric, 8),
                       round((0.01 + 0.02 * {u(8)})::numeric, 8)
                  FROM {series}
                 CROSS JOIN t
                  JOIN e ON e.rn = (n / 2) %% t.total
                 CROSS JOIN LATERAL (SELECT (100 + 5000 * {u(1)})::int AS participants) r""",
        ),
        (
            "ceo_briefings",
            f"""INSERT INTO ceo_briefings (shop_domain, briefing_type, period_start, period_end, executive_summary,
                                           key_metrics, insights, generation_model, generation_tokens, feedback_notes)
                SELECT {shop}, 'daily', date '2024-01-01' + {j}::int, date '2024-01-01' + {j}::int,
                       {_hex("n", 1200)},
                       jsonb_build_object('revenue', round((10000 * {u(1)})::numeric, 2),
                                          'orders', (200 * {u(2)})::int, 'sessions', (9000 * {u(3)})::int,
                                          'conversion_rate', round({u(4)}::numeric / 10, 4),
                                          'ad_spend', round((900 * {u(5)})::numeric, 2),
                                          'roas', round((1 + 5 * {u(6)})::numeric, 2),
                                          'top_keyword_position', (1 + 20 * {u(7)})::int,
                                          'social_reach', (50000 * {u(8)})::int),
                       (SELECT jsonb_agg(jsonb_build_object('rank', i, 'title', 'Insight ' || i,
                                                            'detail', md5(n::text || '/' || i) || md5(i::text || n)))
                          FROM generate_series(1, 5) i),
                       'template-v1', (800 + 800 * {u(9)})::int, ''
                  FROM {series}""",
        ),
        (
            "onboarding_progress",
            f"""INSERT INTO onboarding_progress (user_id, shop_domain, step_key, step_order, status, started_at,
                                                 completed_at, attempts, time_spent_seconds)
                SELECT {users}, {shop_sql(f"(n / 10) %% {s} + 1")}, 'step-' || (n %% 10), n %% 10, 'completed',
                       timestamptz '2024-01-01', timestamptz '2024-01-01' + interval '10 minutes',
                       1 + (3 * {u(1)})::int, (600 * {u(2)})::int
                  FROM {series}""",
        ),
        (
            "feature_tours",
            f"""INSERT INTO feature_tours (user_id, tour_key, tour_name, steps, status, current_step, times_shown,
                                           interactions, last_shown_at)
                SELECT {users}, 'tour-' || (n %% 10), 'Tour of feature ' || (n %% 10),
                       (SELECT jsonb_agg(jsonb_build_object('title', 'Step ' || i, 'body', md5(n::text || ':' || i),
                                                            'target', '#feature-' || i))
                          FROM generate_series(1, 5) i),
                       'active', (4 * {u(1)})::int, (10 * {u(2)})::int, (30 * {u(3)})::int, timestamptz '2024-06-01'
                  FROM {series}""",
        ),
    ]


@dataclass(frozen=True)
class TableSize:
    table: str
    rows: int
    heap_bytes: int
    # The TOAST table with its index; maps: the free space and visibility maps.
    toast_bytes: int
    maps_bytes: int
    index_bytes: int
    total_bytes: int

    @property
    def bytes_per_row(self) -> float | None:
        return self.total_bytes / self.rows if self.rows else None


def _sizes() -> list[TableSize]:
    found = []
    with atomic_scope(service_scope()), connection.cursor() as cursor:
        for assumption in ASSUMPTIONS:
            table = assumption.table
            # Summed over the leaves of the partition tree: a partitioned table holds nothing
            # itself (a plain table is its own single leaf).
            cursor.execute(
                "SELECT coalesce(sum(pg_relation_size(t.relid)), 0), coalesce(sum(pg_table_size(t.relid)), 0), "
                "coalesce(sum((SELECT pg_total_relation_size(NULLIF(reltoastrelid, 0)) FROM pg_class "
                "WHERE oid = t.relid)), 0), coalesce(sum(pg_indexes_size(t.relid)), 0), "
                "coalesce(sum(pg_total_relation_size(t.relid)), 0) "
                "FROM (SELECT relid FROM pg_partition_tree(%s::regclass) WHERE isleaf "
                "UNION ALL SELECT %s::regclass WHERE NOT EXISTS (SELECT FROM pg_partition_tree(%s::regclass))) t",
                [table, table, table],
            )
            sizes = cursor.fetchone()
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
            counted = cursor.fetchone()
            assert sizes is not None and counted is not None
            heap, table_size, toast, indexes, total = (int(v) for v in sizes)
            rows = int(counted[0])
            found.append(TableSize(table, rows, heap, toast, table_size - heap - toast, indexes, total))
    return found


def run(options: Options, dataset: Dataset) -> BenchResult:
    result = BenchResult("storage")
    log(f"storage: {options.storage_rows:,} sample rows in each of {len(SAMPLE_TABLES)} other tables")
    seconds: dict[str, float] = {}
    for table, sql in _sample_sql(options):
        with atomic_scope(service_scope()):
            seconds[table] = round(timed(partial(execute, sql, {"rows": options.storage_rows})) / 1e9, 2)
    vacuum_analyze(*(a.table for a in ASSUMPTIONS))
    assumptions = {a.table: a for a in ASSUMPTIONS}
    total_year = 0.0
    per_table: list[dict[str, Any]] = []
    for size in _sizes():
        assumption = assumptions[size.table]
        per_row = size.bytes_per_row
        year_rows = assumption.rows_per_shop_year * SHOPS
        year_bytes = per_row * year_rows if per_row is not None else 0.0
        total_year += year_bytes
        small = size.rows < SMALL_SAMPLE
        per_table.append(
            asdict(size)
            | {
                "bytes_per_row": round(per_row, 1) if per_row is not None else None,
                "heap_bytes_per_row": round(size.heap_bytes / size.rows, 1) if size.rows else None,
                "toast_bytes_per_row": round(size.toast_bytes / size.rows, 1) if size.rows else None,
                "index_bytes_per_row": round(size.index_bytes / size.rows, 1) if size.rows else None,
                "rows_per_shop_year": assumption.rows_per_shop_year,
                "basis": assumption.basis,
                "rows_1000_shops_year": year_rows,
                "bytes_1000_shops_year": round(year_bytes),
                "small_sample": small,
            }
        )
        caveat = " (small sample: fixed overhead inflates it)" if small else ""
        note = (
            f"{size.rows:,} rows measured{caveat}; x {year_rows:,.0f} rows/yr ({assumption.basis}) "
            f"= {year_bytes / 1e9:.3f} GB"
        )
        if size.rows and size.toast_bytes > size.heap_bytes / 2:
            note += (
                f" (heap {size.heap_bytes / size.rows:,.0f}, TOAST {size.toast_bytes / size.rows:,.0f}, "
                f"indexes {size.index_bytes / size.rows:,.0f} B/row)"
            )
        result.add(
            f"{size.table}: bytes per row incl. indexes",
            round(per_row, 1) if per_row is not None else None,
            "B",
            note=note,
        )
    result.add(
        "extrapolated: 1000 shops x 1 year, all tables",
        round(total_year / 1e9, 2),
        "GB",
        target="schema estimate ~8 GB",
        met=total_year <= SCHEMA_ESTIMATE_BYTES,
        note=f"{total_year / SCHEMA_ESTIMATE_BYTES:.2f}x the estimate; assumptions in the report",
    )
    largest = sorted(per_table, key=lambda t: -float(t["bytes_1000_shops_year"]))[:3]
    result.details = {
        "method": "pg_total_relation_size (heap + TOAST + indexes) / exact count(*), after VACUUM (ANALYZE); "
        "fresh inserts (no bloat); WAL and backups not counted",
        "shops": SHOPS,
        "schema_estimate_bytes": SCHEMA_ESTIMATE_BYTES,
        "extrapolated_bytes": round(total_year),
        "largest": [t["table"] for t in largest],
        "tables": per_table,
        "assumptions": {a.table: {"rows_per_shop_year": a.rows_per_shop_year, "basis": a.basis} for a in ASSUMPTIONS},
        "sample_rows": options.storage_rows,
        "sample_generation_seconds": seconds,
        "content": "free text is hex digests (incompressible): titles, captions, summaries at stated lengths; "
        "knowledge_base: 594-character content + 1536-d vector (TOAST, uncompressed)",
    }
    _remove_samples()
    return result


def _remove_samples() -> None:
    """The sample rows served only this benchmark; the ones after it see the data set alone."""
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(SAMPLE_TABLES)}")
        cursor.execute("DELETE FROM users WHERE username LIKE %s", [SAMPLE_USER_PREFIX + "%"])
