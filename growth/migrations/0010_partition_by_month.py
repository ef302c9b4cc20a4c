"""Partition ad_performance, seo_rankings and social_analytics by month, so that retention
drops whole months and a month's queries read one partition.

PostgreSQL cannot partition a table in place, so each table is rebuilt under its own name
(`tenancy.partitions.PartitionByMonth`); the statements below are the frozen names of every
index, key and foreign key, as the plain tables had them, with the partition key added to the
primary key (a unique index of a partitioned table must contain the partition key; the
natural-key unique indexes already do). The policies are re-created as 0008 left them.
Rows land in the DEFAULT partition; the post-migrate `partitions_ensure` moves them into
monthly partitions.
"""

from __future__ import annotations

from django.db import migrations

from tenancy.partitions import PartitionByMonth
from tenancy.rls import SecureTable

SHOP = "shop_domain = (SELECT current_setting('app.current_shop', true))"
STAFF = (
    "(current_setting('app.staff_shops', true) = '*' OR shop_domain = ANY "
    "(string_to_array(current_setting('app.staff_shops', true), ',')))"
)


def secure(table: str) -> list[str]:
    """The row level security 0008 left on `table`, re-applied to the rebuilt table."""
    policies = [
        {"name": f"{table}_tenant", "role": "authenticated", "using": SHOP, "check": SHOP},
        {"name": f"{table}_back_office", "role": "back_office", "using": STAFF, "check": STAFF},
        {"name": f"{table}_service", "role": "service_role", "using": "true", "check": "true"},
    ]
    return SecureTable(table=table, policies=policies).forwards_sql()


def keyed(table: str, primary_key: str, rest: list[str]) -> list[str]:
    return [f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({primary_key})", *rest]


def foreign_key(table: str, name: str, key: str, referenced: str, rest: str) -> list[str]:
    """ADD CONSTRAINT ... FOREIGN KEY, validated by the owner. PostgreSQL validates a new
    foreign key with one query as the current user, under the referenced table's row level
    security; FORCE makes that apply to the owner, which would see no parent row. FORCE is
    lifted for the statement only, inside the migration's transaction (which holds the
    referenced table's lock until it commits)."""
    return [
        f"ALTER TABLE {referenced} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({key}) REFERENCES {referenced} {rest}",
        f"ALTER TABLE {referenced} FORCE ROW LEVEL SECURITY",
    ]


SHARED = ["id", "created_by", "created_at", "updated_at"]

AD_PERFORMANCE = [
    "CREATE UNIQUE INDEX ad_performance_campaign_date_idx ON ad_performance (campaign_id, date DESC)",
    "CREATE INDEX ad_performance_roas_idx ON ad_performance (roas DESC NULLS LAST)",
    "CREATE INDEX ad_performance_shop_date_idx ON ad_performance (shop_domain, date DESC, id DESC)",
    "ALTER TABLE ad_performance ADD CONSTRAINT ad_performance_shop_domain_bdf83d0e_fk_shops_shop_domain "
    "FOREIGN KEY (shop_domain) REFERENCES shops (shop_domain) DEFERRABLE INITIALLY DEFERRED",
    *foreign_key(
        "ad_performance",
        "growth_adperformance_campaign_shop_fk",
        "campaign_id, shop_domain",
        "ad_campaigns",
        "(id, shop_domain) ON DELETE CASCADE",
    ),
]
SEO_RANKINGS = [
    "ALTER TABLE seo_rankings ADD CONSTRAINT growth_seoranking_daily_uniq "
    "UNIQUE (shop_domain, keyword, search_engine, location, tracked_on)",
    "CREATE INDEX seo_rankings_keyword_hist_idx ON seo_rankings (shop_domain, keyword, tracked_at DESC)",
    'CREATE INDEX seo_rankings_top100_idx ON seo_rankings ("position") WHERE "position" <= 100',
    "ALTER TABLE seo_rankings ADD CONSTRAINT seo_rankings_shop_domain_102ef8a8_fk_shops_shop_domain "
    "FOREIGN KEY (shop_domain) REFERENCES shops (shop_domain) DEFERRABLE INITIALLY DEFERRED",
]
SOCIAL_ANALYTICS = [
    "CREATE INDEX social_analytics_engage_idx ON social_analytics (engagement_rate DESC NULLS LAST)",
    "CREATE UNIQUE INDEX social_analytics_post_measured_idx ON social_analytics (social_post_id, measured_at DESC)",
    "ALTER TABLE social_analytics ADD CONSTRAINT social_analytics_shop_domain_ba7bb3ea_fk_shops_shop_domain "
    "FOREIGN KEY (shop_domain) REFERENCES shops (shop_domain) DEFERRABLE INITIALLY DEFERRED",
    *foreign_key(
        "social_analytics",
        "growth_socialanalytics_post_shop_fk",
        "social_post_id, shop_domain, platform",
        "social_posts",
        "(id, shop_domain, platform) ON DELETE CASCADE",
    ),
]


class Migration(migrations.Migration):
    dependencies = [
        ("growth", "0009_ad_performance_shop_date_index"),
        ("tenancy", "0003_auth_uid"),
    ]

    operations = [
        PartitionByMonth(
            table="ad_performance",
            column="date",
            columns=[
                *SHARED,
                *["date", "impressions", "clicks", "conversions", "cost", "revenue", "campaign_id", "shop_domain"],
            ],
            indexes=keyed("ad_performance", "id, date", AD_PERFORMANCE),
            plain_indexes=keyed("ad_performance", "id", AD_PERFORMANCE),
            secure=secure("ad_performance"),
        ),
        PartitionByMonth(
            table="seo_rankings",
            column="tracked_on",
            columns=[
                *SHARED,
                *["keyword", "position", "url", "search_volume", "search_engine", "location"],
                *["featured_snippet", "tracked_at", "tracked_on", "shop_domain"],
            ],
            indexes=keyed("seo_rankings", "id, tracked_on", SEO_RANKINGS),
            plain_indexes=keyed("seo_rankings", "id", SEO_RANKINGS),
            secure=secure("seo_rankings"),
        ),
        PartitionByMonth(
            table="social_analytics",
            column="measured_at",
            columns=[
                *SHARED,
                *["platform", "measured_at", "views", "likes", "comments", "shares", "reach", "impressions"],
                *["shop_domain", "social_post_id"],
            ],
            indexes=keyed("social_analytics", "id, measured_at", SOCIAL_ANALYTICS),
            plain_indexes=keyed("social_analytics", "id", SOCIAL_ANALYTICS),
            secure=secure("social_analytics"),
        ),
    ]
