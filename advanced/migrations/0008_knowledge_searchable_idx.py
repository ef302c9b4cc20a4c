"""An index-only count of a shop's searchable knowledge documents.

`knowledge_search` counts a shop's current, embedded documents (at most the exact-search limit
+ 1, a few thousand) to choose between the exact and the index search. Through
`knowledge_base_shop_type_idx` that count builds a bitmap of every row of the shop and reads
the heap for `is_current` and `embedding`: 10-13 ms for a 100,000-document shop. This partial
index holds only what the count reads, so it is an index-only scan that stops at the limit
(1.5 ms). Raw SQL: the models do not declare it (yet), so Django's migration state does not
change and `makemigrations --check` stays clean.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("advanced", "0007_wrap_settings_in_select"),
    ]

    operations = [
        migrations.RunSQL(
            sql=(
                "CREATE INDEX knowledge_base_searchable_idx ON knowledge_base (shop_domain, id) "
                "WHERE is_current AND embedding IS NOT NULL"
            ),
            reverse_sql="DROP INDEX knowledge_base_searchable_idx",
        ),
    ]
