"""Synthetic data at a chosen scale, written fast by the server.

Rows are produced by `INSERT ... SELECT ... FROM generate_series(...)` inside a `service_role`
scope (the policies still apply: `USING (true)`), so no row crosses the wire. Pseudo-random
values come from `hashint8(n, seed)`: deterministic for a seed, so two runs at the same scale
write the same rows, and re-inserting a range (the retention benchmark) writes them again.

Vectors are synthetic and clustered (labelled so in the report): numpy draws them and they are
loaded with one binary COPY per chunk into an UNLOGGED staging table, then moved into
`knowledge_base` with one INSERT ... SELECT as `service_role`.

Shops are `bench-00001.myshopify.com` ...; the benchmark refuses a database holding any other
shop or user, so it never touches data it did not write.
"""

from __future__ import annotations

import datetime
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import connection

from tenancy.partitions import partitions_ensure
from tenancy.scope import atomic_scope, service_scope

from .harness import BenchError, Options, execute, log, scalar, timed

SHOP_PREFIX = "bench-"
SHOP_SUFFIX = ".myshopify.com"
USER_NAME = "bench-owner"
# Day 0 of ad_performance: the first of a month, so "the oldest month" is a whole month.
START_DATE = datetime.date(2024, 1, 1)
CAMPAIGN_KEY_PREFIX = "bench-c-"
EMBEDDING_MODEL = "synthetic-clustered"
DIMENSIONS = 1536
SUBTOPICS = 8
# Norms of the synthetic vectors' parts: topic centroid 1, subtopic offset, per-document noise.
SUBTOPIC_NORM = 0.5
NOISE_NORM = 0.35
VECTOR_CHUNK = 5_000
STAGING_VECTORS = "bench_vectors"
STAGING_TABLES = ("bench_vectors", "bench_copy_target", "bench_ingest_staging")
# Tables TRUNCATE ... CASCADE reaches from these two: every tenant table and the memberships.
ROOT_TABLES = ("shops", "users")


def shop_domain(number: int) -> str:
    """The domain of bench shop `number` (1-based); the SQL generators compute the same."""
    return f"{SHOP_PREFIX}{number:05d}{SHOP_SUFFIX}"


def shop_sql(number_expr: str) -> str:
    """SQL for the domain of the 1-based shop number `number_expr` (as `shop_domain`)."""
    return f"format('{SHOP_PREFIX}%%s{SHOP_SUFFIX}', lpad(({number_expr})::text, 5, '0'))"


def uniform_sql(n_expr: str, salt: int, seed: int) -> str:
    """A deterministic pseudo-random float8 in [0, 1) for row `n_expr`, stream `salt`."""
    return f"((hashint8(({n_expr})::bigint * 64 + {salt} + {seed * 1_000_003}) & 2147483647)::float8 / 2147483648.0)"


@dataclass(frozen=True)
class VectorShop:
    """A shop whose knowledge base the vector benchmark searches, and its synthetic topics."""

    number: int
    domain: str
    documents: int
    topics: tuple[int, ...]


@dataclass
class Dataset:
    """What the generator wrote, for the benchmarks to use."""

    shops: int
    campaigns: int
    ad_rows: int
    days: int
    start_date: datetime.date
    end_date: datetime.date
    api_shop: str
    user_id: str
    token: str
    documents: int = 0
    vector_shops: list[VectorShop] = field(default_factory=list)
    topic_centroids: np.ndarray[Any, np.dtype[np.float32]] | None = None
    subtopic_offsets: np.ndarray[Any, np.dtype[np.float32]] | None = None
    vector_generator: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "shops": self.shops,
            "campaigns": self.campaigns,
            "ad_performance_rows": self.ad_rows,
            "ad_performance_days": self.days,
            "ad_performance_dates": [self.start_date, self.end_date],
            "api_shop": self.api_shop,
            "knowledge_documents": self.documents,
            "vector_shops": [
                {"domain": s.domain, "documents": s.documents, "topics": len(s.topics)} for s in self.vector_shops
            ],
            "vector_generator": self.vector_generator,
            "generation_seconds": self.timings_s,
        }


# --- reset -------------------------------------------------------------------------------


def refuse_foreign_data() -> None:
    """Refuse a database holding shops or users the benchmark did not create. Runs before the
    benchmark migrates anything, so pointing it at a development database changes nothing."""
    if scalar("SELECT to_regclass('shops') IS NULL OR to_regclass('users') IS NULL"):
        return
    foreign_shops = scalar("SELECT count(*) FROM shops WHERE shop_domain NOT LIKE %s", [SHOP_PREFIX + "%"])
    foreign_users = scalar("SELECT count(*) FROM users WHERE username NOT LIKE %s", [SHOP_PREFIX + "%"])
    if foreign_shops or foreign_users:
        raise BenchError(
            f"database {connection.settings_dict['NAME']!r} holds {foreign_shops} shops and {foreign_users} users "
            "the benchmark did not create; it empties its database on every run, so give it one of its own "
            "(by default the database 'bench' on the embedded server; with DATABASE_URL, a scratch database)"
        )


def reset_database() -> None:
    """Empty the benchmark's database (after `refuse_foreign_data` and the migrations)."""
    refuse_foreign_data()
    with connection.cursor() as cursor:
        for table in STAGING_TABLES:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        # The owner may truncate: TRUNCATE is not subject to row level security.
        cursor.execute(f"TRUNCATE {', '.join(ROOT_TABLES)} RESTART IDENTITY CASCADE")
    restore_knowledge_index()


def restore_knowledge_index() -> None:
    """Put the IVFFlat index back as the migration leaves it: lists=100, built on an empty
    table (the state before anyone runs rebuild_knowledge_index)."""
    from advanced.knowledge.services import IVFFLAT_DEFAULT_LISTS, knowledge_index_rebuild

    knowledge_index_rebuild(lists=IVFFLAT_DEFAULT_LISTS)


# --- shops, the API user, campaigns and their daily performance ---------------------------


def generate_base(options: Options) -> Dataset:
    from tenancy.api.authentication import token_mint
    from tenancy.models import User

    timings: dict[str, float] = {}
    campaigns = options.shops * options.campaigns_per_shop
    days = math.ceil(options.rows / campaigns)
    log(f"generating {options.shops} shops, {campaigns} campaigns, {options.rows:,} ad_performance rows")

    def shops() -> None:
        with atomic_scope(service_scope()):
            execute(
                f"INSERT INTO shops (shop_domain, name, is_active) "
                f"SELECT {shop_sql('i')}, 'Bench shop ' || i, true FROM generate_series(1, %s) i",
                [options.shops],
            )

    timings["shops"] = timed(shops) / 1e9
    user = User.objects.create_user(username=USER_NAME, email=f"{USER_NAME}@example.com", password=None)
    # The owner of every bench shop: the membership lookup of a request finds one row of many.
    execute(
        "INSERT INTO shop_memberships (user_id, shop_domain, role) "
        "SELECT %s, shop_domain, 'owner' FROM shops WHERE shop_domain LIKE %s",
        [user.pk, SHOP_PREFIX + "%"],
    )

    def campaigns_insert() -> None:
        with atomic_scope(service_scope()):
            execute(
                f"""
                INSERT INTO ad_campaigns (shop_domain, platform, platform_campaign_id, campaign_name, daily_budget,
                                          currency, bid_strategy, campaign_status, start_date)
                SELECT {shop_sql("rn %% %(shops)s + 1")},
                       (ARRAY['google_ads', 'microsoft_ads', 'meta_ads'])[1 + rn %% 3],
                       '{CAMPAIGN_KEY_PREFIX}' || rn,
                       'Campaign ' || rn,
                       round((20 + 480 * {uniform_sql("rn", 1, options.seed)})::numeric, 2),
                       'USD', 'maximize_conversions', 'active', %(start)s
                  FROM generate_series(0, %(campaigns)s - 1) rn
                """,
                {"shops": options.shops, "campaigns": campaigns, "start": START_DATE},
            )

    timings["ad_campaigns"] = timed(campaigns_insert) / 1e9

    timings["ad_performance"] = timed(lambda: insert_ad_performance(options, 0, options.rows)) / 1e9
    # The shop of the list benchmarks: a shop of ordinary size, not the first or the last.
    api_shop = shop_domain(options.shops // 2 + 1)
    token = token_mint(user=user, ttl=datetime.timedelta(hours=12))
    return Dataset(
        shops=options.shops,
        campaigns=campaigns,
        ad_rows=options.rows,
        days=days,
        start_date=START_DATE,
        end_date=START_DATE + datetime.timedelta(days=days - 1),
        api_shop=api_shop,
        user_id=str(user.pk),
        token=token,
        timings_s=timings,
    )


def insert_ad_performance(options: Options, first: int, last: int) -> int:
    """Write rows `first` <= n < `last` of the series: row n is campaign n % campaigns on day
    n // campaigns, so rows arrive a day at a time for every shop, as daily ingestion writes them."""
    campaigns = options.shops * options.campaigns_per_shop
    u = [uniform_sql("n", salt, options.seed) for salt in range(10, 16)]
    # The series starts in 2024, before the retention window the migrate-time partitions
    # cover; without its months' partitions the rows would all land in the DEFAULT partition.
    partitions_ensure(today=datetime.datetime.now(datetime.UTC).date(), since=START_DATE)
    with atomic_scope(service_scope()):
        return execute(
            f"""
            WITH c AS (
                SELECT id, shop_domain, substr(platform_campaign_id, {len(CAMPAIGN_KEY_PREFIX) + 1})::int AS rn
                  FROM ad_campaigns
                 WHERE platform_campaign_id LIKE '{CAMPAIGN_KEY_PREFIX}%%'
            )
            INSERT INTO ad_performance (campaign_id, shop_domain, date, impressions, clicks, conversions, cost,
                                        revenue)
            SELECT c.id, c.shop_domain, %(start)s::date + (g.n / %(campaigns)s)::int, g.impressions, g.clicks,
                   g.conversions, g.cost, round(g.conversions * (20 + 100 * {u[4]})::numeric, 2)
              FROM (
                    SELECT n, impressions, clicks,
                           round((clicks * 0.12 * {u[2]})::numeric, 2) AS conversions,
                           round((clicks * (0.2 + 1.8 * {u[3]}))::numeric, 2) AS cost
                      FROM (
                            SELECT n, impressions, floor(impressions * 0.08 * {u[1]})::int AS clicks
                              FROM (
                                    SELECT n, (100 + 4900 * {u[0]})::int AS impressions
                                      FROM generate_series(%(first)s::bigint, %(last)s::bigint - 1) n
                                   ) a
                           ) b
                   ) g
              JOIN c ON c.rn = g.n %% %(campaigns)s
             ORDER BY g.n
            """,
            {"start": START_DATE, "campaigns": campaigns, "first": first, "last": last},
        )


# --- knowledge base: clustered synthetic vectors -----------------------------------------


def vector_shop_sizes(documents: int) -> tuple[int, ...]:
    """Shops of 100, 10,000 and 100,000 documents, each where the table holds at least twice
    as many documents (so the shop shares its table with others)."""
    return tuple(size for size in (100, 10_000, 100_000) if documents >= 2 * size)


def _copy_header() -> bytes:
    return b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)


# One binary COPY tuple: four int4 columns, then a pgvector value (dim, unused, floats).
_ROW_DTYPE = np.dtype(
    [
        ("fields", ">i2"),
        ("len_doc", ">i4"),
        ("doc", ">i4"),
        ("len_shop", ">i4"),
        ("shop", ">i4"),
        ("len_topic", ">i4"),
        ("topic", ">i4"),
        ("len_sub", ">i4"),
        ("sub", ">i4"),
        ("len_vec", ">i4"),
        ("dim", ">u2"),
        ("unused", ">u2"),
        ("vec", ">f4", (DIMENSIONS,)),
    ]
)


def _binary_rows(
    doc: np.ndarray[Any, Any],
    shop: np.ndarray[Any, Any],
    topic: np.ndarray[Any, Any],
    sub: np.ndarray[Any, Any],
    vectors: np.ndarray[Any, Any],
) -> bytes:
    rows = np.zeros(len(doc), dtype=_ROW_DTYPE)
    rows["fields"] = 5
    for name, values in (("doc", doc), ("shop", shop), ("topic", topic), ("sub", sub)):
        rows[f"len_{name}"] = 4
        rows[name] = values
    rows["len_vec"] = 4 + 4 * DIMENSIONS
    rows["dim"] = DIMENSIONS
    rows["vec"] = vectors
    return rows.tobytes()


def _shop_documents(options: Options, sizes: tuple[int, ...]) -> list[int]:
    """Documents per shop (index 0 is shop 1): the vector shops first, the rest spread evenly."""
    if len(sizes) >= options.shops:
        raise BenchError(f"--shops must exceed the {len(sizes)} vector shops; got {options.shops}")
    rest = options.documents - sum(sizes)
    others = options.shops - len(sizes)
    spread = [rest // others + (1 if i < rest % others else 0) for i in range(others)]
    return [*sizes, *spread]


def _topics(rng: np.random.Generator, documents: int, topics: int) -> tuple[int, ...]:
    """A shop writes about a few topics, more as it has more documents (about 250 a topic)."""
    count = min(topics, max(2, documents // 250))
    return tuple(int(t) for t in rng.choice(topics, size=count, replace=False))


def sample_vectors(
    rng: np.random.Generator,
    dataset: Dataset,
    topic: np.ndarray[Any, Any],
    sub: np.ndarray[Any, Any],
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Vectors around (topic, subtopic) centres: what documents and queries are drawn from."""
    assert dataset.topic_centroids is not None and dataset.subtopic_offsets is not None
    noise = rng.standard_normal((len(topic), DIMENSIONS)).astype(np.float32) * (NOISE_NORM / math.sqrt(DIMENSIONS))
    result: np.ndarray[Any, np.dtype[np.float32]] = (
        dataset.topic_centroids[topic] + dataset.subtopic_offsets[topic, sub] + noise
    ).astype(np.float32)
    return result


def generate_vectors(options: Options, dataset: Dataset) -> None:
    sizes = vector_shop_sizes(options.documents)
    if not sizes:
        raise BenchError(f"--documents must be at least 200 (a 100-document shop and others); got {options.documents}")
    per_shop = _shop_documents(options, sizes)
    rng = np.random.default_rng(options.seed)
    topics = max(16, options.documents // 500)
    centroids = rng.standard_normal((topics, DIMENSIONS)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    offsets = rng.standard_normal((topics, SUBTOPICS, DIMENSIONS)).astype(np.float32)
    offsets *= SUBTOPIC_NORM / np.linalg.norm(offsets, axis=2, keepdims=True)
    dataset.topic_centroids, dataset.subtopic_offsets = centroids, offsets
    shop_topics = [_topics(rng, count, topics) for count in per_shop]
    dataset.vector_shops = [
        VectorShop(number=i + 1, domain=shop_domain(i + 1), documents=size, topics=shop_topics[i])
        for i, size in enumerate(sizes)
    ]
    dataset.documents = options.documents
    dataset.vector_generator = {
        "label": "synthetic clustered vectors (not real embeddings)",
        "dimensions": DIMENSIONS,
        "topics": topics,
        "subtopics_per_topic": SUBTOPICS,
        "norms": {"topic_centroid": 1.0, "subtopic_offset": SUBTOPIC_NORM, "noise": NOISE_NORM},
        "topics_per_shop": "min(topics, max(2, documents // 250))",
        "queries": "drawn like documents from the searched shop's own topics (not stored documents)",
        "embedding_model": EMBEDDING_MODEL,
        "content": "594 characters of hex digests (incompressible), title 'Synthetic document N'",
        "seed": options.seed,
    }
    shop_of = np.repeat(np.arange(1, options.shops + 1, dtype=np.int32), per_shop)
    topic_of = np.empty(options.documents, dtype=np.int32)
    start = 0
    for count, chosen in zip(per_shop, shop_topics, strict=True):
        topic_of[start : start + count] = rng.choice(np.asarray(chosen), size=count)
        start += count
    sub_of = rng.integers(0, SUBTOPICS, size=options.documents, dtype=np.int32)
    # Documents arrive over time from every shop: a shop's rows are spread over the table.
    order = rng.permutation(options.documents)
    shop_of, topic_of, sub_of = shop_of[order], topic_of[order], sub_of[order]
    log(f"generating {options.documents:,} synthetic {DIMENSIONS}-d vectors in {topics} topics")

    def stage() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE UNLOGGED TABLE {STAGING_VECTORS} (doc_no integer PRIMARY KEY, shop_no integer NOT NULL, "
                f"topic integer NOT NULL, subtopic integer NOT NULL, embedding vector({DIMENSIONS}) NOT NULL)"
            )
            with cursor.copy(
                f"COPY {STAGING_VECTORS} (doc_no, shop_no, topic, subtopic, embedding) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.write(_copy_header())
                for begin in range(0, options.documents, VECTOR_CHUNK):
                    end = min(begin + VECTOR_CHUNK, options.documents)
                    vectors = sample_vectors(rng, dataset, topic_of[begin:end], sub_of[begin:end])
                    copy.write(
                        _binary_rows(
                            np.arange(begin, end, dtype=np.int32),
                            shop_of[begin:end],
                            topic_of[begin:end],
                            sub_of[begin:end],
                            vectors,
                        )
                    )
                copy.write(struct.pack(">h", -1))

    dataset.timings_s["vectors_staging_copy"] = timed(stage) / 1e9

    def move() -> None:
        with atomic_scope(service_scope()):
            execute(
                f"""
                INSERT INTO knowledge_base (shop_domain, document_key, title, content, document_type, embedding,
                                            embedding_model, version, is_current, tags, source_url)
                SELECT {shop_sql("v.shop_no")}, 'doc-' || v.doc_no, 'Synthetic document ' || v.doc_no,
                       (SELECT string_agg(md5(v.doc_no || ':' || i), ' ') FROM generate_series(1, 18) i),
                       (ARRAY['faq', 'policy', 'product', 'guide', 'brand', 'playbook', 'note'])[1 + v.doc_no %% 7],
                       v.embedding, %s, 1, true,
                       ARRAY['topic-' || v.topic, 'subtopic-' || v.topic || '-' || v.subtopic]::varchar(100)[], ''
                  FROM {STAGING_VECTORS} v
                 ORDER BY v.doc_no
                """,
                [EMBEDDING_MODEL],
            )

    dataset.timings_s["knowledge_base_insert"] = timed(move) / 1e9
    execute(f"DROP TABLE {STAGING_VECTORS}")
