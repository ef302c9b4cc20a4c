# Written by hand: Django's database cache table is not a model. The same table
# `manage.py createcachetable` makes for CACHES["default"] (tenancy/api/throttling.py), created
# here so that every path that migrates (make run, make test, a deploy) has it.

from django.db import migrations

CREATE = """
CREATE TABLE IF NOT EXISTS api_cache (
    cache_key varchar(255) NOT NULL PRIMARY KEY,
    value text NOT NULL,
    expires timestamp with time zone NOT NULL
);
CREATE INDEX IF NOT EXISTS api_cache_expires ON api_cache (expires);
"""
DROP = "DROP TABLE IF EXISTS api_cache;"


class Migration(migrations.Migration):
    dependencies = [("tenancy", "0004_shop_view_all_shops_permission")]

    operations = [migrations.RunSQL(CREATE, DROP)]
