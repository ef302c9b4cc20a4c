from django.db import migrations

# Keyword search reads every current row of the shop (under row level security `@@` cannot use
# the GIN index: docs/performance.md), so the heap row is what it pays for. With both vectors in
# it (the default model's, compressed in place by 0011's MAIN storage, ~1.2 kB, and the refined
# 384-d one, 1.5 kB) a row was ~3 kB: the 10,000-document shop filled 2,598 heap pages and a
# keyword query read them all (EXPLAIN: 14.5 ms). Now the vector is compressed and moved out of
# line (EXTENDED), and a row is toasted down to 1 kB instead of 2 kB: the same shop fits in
# 1,114 pages, keyword search 8.4 ms; `search_vector` (MAIN) stays in the row uncompressed for
# all but the longest documents. A vector is read from TOAST only for rows a search returns, or
# by an exact search (at most HNSW_EXACT_SEARCH_MAX_CANDIDATES rows; the HNSW indexes hold their
# own copies). Existing rows keep their layout until they are next written (reembed_knowledge,
# the refine job, an edit) or the table is rewritten (VACUUM FULL).


class Migration(migrations.Migration):
    dependencies = [("advanced", "0014_knowledge_refined_embedding")]

    operations = [
        migrations.RunSQL(
            [
                "ALTER TABLE knowledge_base ALTER COLUMN embedding SET STORAGE EXTENDED",
                "ALTER TABLE knowledge_base SET (toast_tuple_target = 1024)",
            ],
            reverse_sql=[
                "ALTER TABLE knowledge_base RESET (toast_tuple_target)",
                "ALTER TABLE knowledge_base ALTER COLUMN embedding SET STORAGE MAIN",
            ],
        ),
    ]
