"""The planner-level SQL of the knowledge base: every expression whose exact text decides which
index PostgreSQL may use. The indexes (models.KnowledgeDocument.Meta.indexes) and the searches
(querysets.py, services/search.py, services/refine.py) both take them from here.

Invariants (each measured; break one and a search silently reads the shop's rows):

1. Literals, not parameters, where an index expression or a partial index predicate must be
   matched. A prepared statement (DATABASE_PREPARED_STATEMENTS, from its sixth execution) may
   run a generic plan, made without the parameters' values: `embedding_model = $1` proves no
   partial predicate and `subvector(embedding, $1, $2)` matches no index expression. So the
   model names (IsLocalModel, IsRefinedModel, IsNotRefinedModel) and the slice of the local
   model's vectors (LocalEmbedding) are written into the SQL; the model names are constants of
   the code, never input, and checked below to need no quoting.
2. `<>`, never `NOT (... = ...)`, in a partial index's predicate and in the queries that must
   prove it (IsNotRefinedModel, NotEqual, not_refined): PostgreSQL rewrites a query's
   NOT (a = b) into a <> b before proving a predicate, but keeps the index's predicate as
   written, so a NOT (=) predicate is never proven.
3. An exact search orders by `distance + 0` (exact_distance): no index matches that
   expression, so the planner computes every candidate's distance and sorts, whatever its
   estimates say; an index search orders by the bare `<=>` the index serves.

Guarded by EXPLAIN tests (generic plans included), which must stay green:
- tests/advanced/test_knowledge_local_index.py,
  test_a_prepared_statement_s_generic_plan_still_walks_the_hnsw_index (LocalEmbedding, IsLocalModel);
- tests/advanced/test_knowledge_refined.py,
  test_the_refined_and_unrefined_filters_prove_their_partial_indexes_in_a_generic_plan
  (refined_current, not_refined);
- tests/advanced/test_knowledge_search.py and test_knowledge_local_index.py: the scan each
  search reports (exact or index) and its results against an exhaustive ordering.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from django.db import models
from django.db.models import ExpressionWrapper, F, FloatField, Func, Q, Value
from django.db.models.functions import Cast
from pgvector.django import CosineDistance, VectorField

from .embeddings import EMBEDDING_DIMENSIONS, LOCAL_EMBEDDING_MODEL, WORDLLAMA_DIMENSIONS
from .embeddings_transformer import REFINED_MODEL

# The local model's vectors fill the last WORDLLAMA_DIMENSIONS of the column, after zeros
# (advanced/knowledge/embeddings.py): subvector(embedding, LOCAL_SLICE_START, WORDLLAMA_DIMENSIONS).
LOCAL_SLICE_START = EMBEDDING_DIMENSIONS - WORDLLAMA_DIMENSIONS + 1

# The literals below are constants of the code, never input; keep them names that need no quoting.
assert re.fullmatch(r"[A-Za-z0-9_.-]+", LOCAL_EMBEDDING_MODEL), LOCAL_EMBEDDING_MODEL
assert re.fullmatch(r"[A-Za-z0-9_.-]+", REFINED_MODEL), REFINED_MODEL


def local_embedding(column: str = "embedding") -> Cast:
    """The local model's part of a 1536-d column, as the vector(256) its HNSW index holds
    (the index's definition; a query uses `LocalEmbedding`, which renders the same SQL)."""
    part = Func(
        F(column),
        Value(LOCAL_SLICE_START),
        Value(WORDLLAMA_DIMENSIONS),
        function="subvector",
        output_field=VectorField(dimensions=EMBEDDING_DIMENSIONS),
    )
    return Cast(part, VectorField(dimensions=WORDLLAMA_DIMENSIONS))


class LocalEmbedding(Func):
    """`(subvector(column, 1281, 256))::vector(256)` with the numbers written into the SQL.

    With parameters instead (as `local_embedding()` renders in a query), a prepared statement's
    generic plan (DATABASE_PREPARED_STATEMENTS, from its sixth execution) could not match the
    HNSW index's expression, and the search sorted every candidate exactly: 55 ms p50 instead
    of 12 on a 10,000-document shop (bench/retrieval.py)."""

    template = (
        f"(subvector(%(expressions)s, {LOCAL_SLICE_START}, {WORDLLAMA_DIMENSIONS}))::vector({WORDLLAMA_DIMENSIONS})"
    )
    output_field = VectorField(dimensions=WORDLLAMA_DIMENSIONS)


class IsLocalModel(Func):
    """`embedding_model = '<the local model>'`, the literal in the SQL: only then does a generic
    plan prove the HNSW index's partial predicate (a parameter could be any model)."""

    template = "%(expressions)s = '" + LOCAL_EMBEDDING_MODEL + "'"
    output_field = models.BooleanField()


class IsRefinedModel(Func):
    """`refined_model = '<the refined model>'` as a literal, for the same reason as IsLocalModel:
    a generic plan must prove the refined HNSW index's partial predicate."""

    template = "%(expressions)s = '" + REFINED_MODEL + "'"
    output_field = models.BooleanField()


class IsNotRefinedModel(Func):
    """`refined_model <> '<the refined model>'`. Written as `<>`, not `NOT (... = ...)`:
    PostgreSQL turns a query's NOT (a = b) into a <> b before proving a partial index's
    predicate, but keeps an index predicate as written, so a NOT (=) predicate was never
    proven and the count of documents not yet refined read the shop's rows (53-75 ms on the
    10,000-document shop)."""

    template = "%(expressions)s <> '" + REFINED_MODEL + "'"
    output_field = models.BooleanField()


class NotEqual(Func):
    """`(a <> b)` of two columns (see IsNotRefinedModel for why not NOT (a = b))."""

    template = "(%(expressions)s)"
    arg_joiner = " <> "
    output_field = models.BooleanField()


def not_refined() -> Q:
    """Current-or-not rows without a current refined vector: another model, or a digest of
    another text. The predicate of knowledge_base_unrefined_idx, and what the queries write:
    with it a search's count of the documents not yet refined is an index probe (it read the
    shop's rows before: 53 of a 95 ms search on the 10,000-document shop)."""
    return Q(IsNotRefinedModel(F("refined_model"))) | Q(NotEqual(F("refined_digest"), F("text_digest")))


def refined_current() -> Q:
    """Rows whose refined vector is of the refined model and of the row's present text (the
    refine job sets the vector, model and digest together). The model is a literal in the SQL
    (IsRefinedModel), so that this is the predicate of knowledge_base_refined_idx in generic
    plans too."""
    return Q(IsRefinedModel(F("refined_model"))) & Q(refined_digest=F("text_digest"))


def local_distance(vector: Sequence[float]) -> CosineDistance:
    """Cosine distance of the local model's 256 dimensions to the last 256 of `vector` (the
    rest are zeros: the distance is the same), in the shape its HNSW index serves."""
    return CosineDistance(LocalEmbedding(F("embedding")), list(vector)[-WORDLLAMA_DIMENSIONS:])


def exact_distance(distance: CosineDistance) -> ExpressionWrapper:
    """`distance + 0`: an expression no index matches, so ordering by it is an exact search."""
    return ExpressionWrapper(distance + 0.0, output_field=FloatField())
