"""The columns a client or a file supplies for each measurement table (the rest are derived,
generated or audit columns). Shared by the API's serializers and the file import, so both
accept the same columns; neither owns the list."""

from __future__ import annotations

AD_PERFORMANCE_ROW_INPUTS = ("campaign_id", "date", "impressions", "clicks", "conversions", "cost", "revenue")

SEO_RANKING_INPUTS = (
    "keyword",
    "position",
    "url",
    "search_volume",
    "search_engine",
    "location",
    "featured_snippet",
    "tracked_at",
    "tracked_on",
)

SOCIAL_ANALYTICS_COUNTERS = ("views", "likes", "comments", "shares", "reach", "impressions")
SOCIAL_ANALYTICS_ROW_INPUTS = ("social_post_id", "measured_at", *SOCIAL_ANALYTICS_COUNTERS)
