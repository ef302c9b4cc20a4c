"""A cursor that sends vectors as binary parameters, for the bulk vector UPDATEs of
re-embedding (reembed.py) and refining (refine.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import connection
from pgvector.psycopg.vector import register_vector_info
from psycopg.types import TypeInfo

from .errors import EmbeddingUnavailable


@contextmanager
def binary_vector_cursor() -> Iterator[psycopg.Cursor[Any]]:
    """A psycopg cursor of Django's connection (same transaction) with pgvector's binary dumper.

    Django's cursors bind parameters client-side (as SQL literals, text only): formatting 1,536
    reprs a row, parsed back by the server, made the text, not the model, the bottleneck of
    re-embedding (bench/retrieval.py). A cursor of psycopg's own binds them server-side, and
    pgvector's dumper packs each float32 row as the server stores it. The dumpers are
    registered on this cursor only: the rest of the connection loads and dumps vectors as
    Django's VectorField expects. Callers execute with `prepare=False`: never a named
    prepared statement, for PgBouncer in transaction mode (DATABASE_PREPARED_STATEMENTS=0).
    """
    connection.ensure_connection()
    raw = connection.connection
    assert raw is not None
    info = raw.adapters.types.get("vector") or TypeInfo.fetch(raw, "vector")
    if info is None:  # pragma: no cover - the migrations create the extension
        raise EmbeddingUnavailable("The vector type is not installed in this database.")
    with psycopg.Cursor(raw) as cursor:
        register_vector_info(cursor, info)  # type: ignore[arg-type]  # any AdaptContext; typed for connections
        yield cursor
