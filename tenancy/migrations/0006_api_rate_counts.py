# Written by hand: the rate-limit counters are not a model (tenancy/ratelimit.py reads and writes
# them with one statement). They replace Django's database cache table, which only DRF's
# throttles used.

from django.db import migrations

CREATE = """
CREATE UNLOGGED TABLE api_rate_counts (
    key text NOT NULL,
    slot bigint NOT NULL,
    hits integer NOT NULL CONSTRAINT api_rate_counts_hits_positive CHECK (hits > 0),
    expires_at timestamp with time zone NOT NULL,
    CONSTRAINT api_rate_counts_pkey PRIMARY KEY (key, slot)
);
CREATE INDEX api_rate_counts_expires ON api_rate_counts (expires_at);
-- Counted by the app's login role outside any scope; the scope roles (which default privileges
-- give every new table) have no business with whom the API counts (user ids, client addresses).
REVOKE ALL ON api_rate_counts FROM PUBLIC, anon, authenticated, back_office, service_role;
DROP TABLE IF EXISTS api_cache;
"""
DROP = """
DROP TABLE IF EXISTS api_rate_counts;
CREATE TABLE IF NOT EXISTS api_cache (
    cache_key varchar(255) NOT NULL PRIMARY KEY,
    value text NOT NULL,
    expires timestamp with time zone NOT NULL
);
CREATE INDEX IF NOT EXISTS api_cache_expires ON api_cache (expires);
"""


class Migration(migrations.Migration):
    dependencies = [("tenancy", "0005_api_cache_table")]

    operations = [migrations.RunSQL(CREATE, DROP)]
